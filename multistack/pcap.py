"""Classic pcap files (the libpcap format tcpdump, Wireshark and scapy read).

:class:`PcapWriter` records Ethernet frames with their time stamps,
:func:`read_pcap` reads them back (for tests), and :class:`CapturePort`
wraps any :class:`~multistack.port.Port` so that everything it receives and
sends lands in a capture file.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from .errors import MultiStackError
from .port import Frame, Port, PortStats

LINKTYPE_ETHERNET = 1
_MAGIC_USEC = 0xA1B2C3D4
_MAGIC_NSEC = 0xA1B23C4D
_GLOBAL_HEADER = struct.Struct("<IHHiIII")  # magic, v2.4, thiszone, sigfigs, snaplen, linktype
_RECORD_HEADER = struct.Struct("<IIII")  # seconds, microseconds, captured length, original length


class PcapFormatError(MultiStackError):
    """A file is not a pcap capture this module understands, or is cut short."""


@dataclass(frozen=True)
class PcapRecord:
    timestamp: float
    data: bytes
    original_length: int


class CaptureFileWriter:
    """What the pcap and pcapng writers share: the file, opened from a path
    (and then closed by :meth:`close`) or given open, and the context
    manager."""

    def __init__(self, target: str | os.PathLike | BinaryIO):
        if isinstance(target, (str, os.PathLike)):
            self._file: BinaryIO = open(target, "wb")
            self._owns_file = True
        else:
            self._file = target
            self._owns_file = False
        self.frames_written = 0

    def close(self) -> None:
        if self._owns_file and not self._file.closed:
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class PcapWriter(CaptureFileWriter):
    """Writes frames to a pcap file (microsecond time stamps, little-endian).

    ``target`` is a path or a binary file object opened for writing.  Each
    record is flushed at once so a capture is readable while it grows and
    after a crash.
    """

    def __init__(self, target: str | os.PathLike | BinaryIO, *, snaplen: int = 65535,
                 linktype: int = LINKTYPE_ETHERNET):
        super().__init__(target)
        self.snaplen = snaplen
        self._file.write(_GLOBAL_HEADER.pack(_MAGIC_USEC, 2, 4, 0, 0, snaplen, linktype))
        self._file.flush()

    def write(self, frame: Frame, timestamp: float) -> None:
        if self._file.closed:
            raise ValueError("write to a closed PcapWriter")
        data = bytes(frame)
        # Timestamps come from trio or mock clocks whose origin is arbitrary;
        # pcap cannot hold negative times.
        micros = max(0, round(timestamp * 1_000_000))
        seconds, micros = divmod(micros, 1_000_000)
        captured = data[: self.snaplen]
        self._file.write(_RECORD_HEADER.pack(seconds & 0xFFFFFFFF, micros, len(captured), len(data)))
        self._file.write(captured)
        self._file.flush()
        self.frames_written += 1


def iter_pcap(source: str | os.PathLike | BinaryIO | bytes) -> Iterator[PcapRecord]:
    """Yield the records of a pcap capture (either byte order, usec or nsec)."""
    if isinstance(source, (bytes, bytearray)):
        stream: BinaryIO = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            stream = io.BytesIO(f.read())
    else:
        stream = source
    header = stream.read(_GLOBAL_HEADER.size)
    if len(header) < _GLOBAL_HEADER.size:
        raise PcapFormatError("file shorter than the pcap global header")
    for order in ("<", ">"):
        (magic,) = struct.unpack(order + "I", header[:4])
        if magic in (_MAGIC_USEC, _MAGIC_NSEC):
            break
    else:
        raise PcapFormatError(f"not a pcap file (magic {header[:4].hex()})")
    divisor = 1e6 if magic == _MAGIC_USEC else 1e9
    record = struct.Struct(order + "IIII")
    while True:
        head = stream.read(record.size)
        if not head:
            return
        if len(head) < record.size:
            raise PcapFormatError("capture ends inside a record header")
        seconds, fraction, captured, original = record.unpack(head)
        data = stream.read(captured)
        if len(data) < captured:
            raise PcapFormatError("capture ends inside a record")
        yield PcapRecord(seconds + fraction / divisor, data, original)


def read_pcap(source: str | os.PathLike | BinaryIO | bytes) -> list[PcapRecord]:
    return list(iter_pcap(source))


class CapturePort(Port):
    """A Port that records every frame received and sent through ``inner``.

    Sent frames are recorded when :meth:`send_batch` accepts them.  ``clock``
    gives the time stamps (seconds; ``time.time`` suits pcap viewers).
    ``close_writer`` false leaves a writer shared by several ports open.
    """

    def __init__(self, inner: Port, writer: PcapWriter, clock, *, close_writer: bool = True):
        self.inner = inner
        self.writer = writer
        self._clock = clock
        self._close_writer = close_writer
        self.name = inner.name
        self.mac = inner.mac
        self.mtu = inner.mtu

    def recv_batch(self, max_frames: int = 256) -> list[memoryview]:
        frames = self.inner.recv_batch(max_frames)
        now = self._clock()
        for frame in frames:
            self.writer.write(frame, now)
        return frames

    def send_batch(self, frames: Iterable[Frame]) -> int:
        frames = list(frames)
        queued = self.inner.send_batch(frames)
        now = self._clock()
        for frame in frames[:queued]:
            self.writer.write(frame, now)
        return queued

    def sync(self) -> None:
        self.inner.sync()

    def fileno(self) -> int:
        return self.inner.fileno()

    def stats(self) -> PortStats:
        return self.inner.stats()

    def close(self) -> None:
        self.inner.close()
        if self._close_writer:
            self.writer.close()

    @property
    def closed(self) -> bool:
        return self.inner.closed

    # The memory port's callback must be set on the port itself, not on the wrapper.
    @property
    def on_in_flight(self):
        return getattr(self.inner, "on_in_flight")

    @on_in_flight.setter
    def on_in_flight(self, callback) -> None:
        self.inner.on_in_flight = callback

    def __getattr__(self, name: str):
        # Optional backend hooks (such as MemoryPort.poll_at) pass through.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
