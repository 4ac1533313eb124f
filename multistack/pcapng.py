"""pcapng files (the format Wireshark writes), with a comment per packet.

:class:`PcapngWriter` writes one section: a Section Header Block, an
Interface Description Block per interface (:meth:`PcapngWriter.add_interface`;
nanosecond time stamps, ``if_tsresol`` = 9) and an Enhanced Packet Block per
frame, whose ``opt_comment`` Wireshark shows as the packet's comment
(``frame.comment``, or ``pkt_comment`` in older versions).  :func:`read_pcapng`
reads such files back (both byte orders, any ``if_tsresol``), for tests and
tools.  Format: draft-ietf-opsawg-pcapng.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from .errors import MultiStackError
from .pcap import LINKTYPE_ETHERNET, CaptureFileWriter


SHB_TYPE = 0x0A0D0D0A
IDB_TYPE = 0x00000001
EPB_TYPE = 0x00000006
_BYTE_ORDER_MAGIC = 0x1A2B3C4D

OPT_ENDOFOPT = 0
OPT_COMMENT = 1
SHB_USERAPPL = 4
IF_NAME = 2
IF_TSRESOL = 9


class PcapngFormatError(MultiStackError):
    """A file is not a pcapng capture this module understands, or is cut short."""


def _pad4(n: int) -> int:
    return -n % 4


def _options(opts: list[tuple[int, bytes]], e: str = "<") -> bytes:
    """Options as a block carries them, ended by opt_endofopt (none: empty)."""
    if not opts:
        return b""
    out = bytearray()
    for code, value in opts:
        if len(value) > 0xFFFF:
            raise ValueError(f"pcapng option {code} is {len(value)} bytes (at most 65535)")
        out += struct.pack(e + "HH", code, len(value)) + value + b"\0" * _pad4(len(value))
    out += struct.pack(e + "HH", OPT_ENDOFOPT, 0)
    return bytes(out)


def _block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


class PcapngWriter(CaptureFileWriter):
    """Writes Ethernet frames with optional comments to a pcapng file
    (little-endian, nanosecond time stamps).

    ``target`` is a path or a binary file object opened for writing.  Each
    block is flushed at once, so the file is readable while it grows.
    """

    def __init__(self, target: str | os.PathLike | BinaryIO, *,
                 application: str = "multistack"):
        super().__init__(target)
        self._snaplens: list[int] = []
        body = struct.pack("<IHHq", _BYTE_ORDER_MAGIC, 1, 0, -1)   # section length unknown
        body += _options([(SHB_USERAPPL, application.encode())])
        self._put(_block(SHB_TYPE, body))

    def _put(self, block: bytes) -> None:
        if self._file.closed:
            raise ValueError("write to a closed PcapngWriter")
        self._file.write(block)
        self._file.flush()

    def add_interface(self, name: str | None = None, *, snaplen: int = 65535,
                      linktype: int = LINKTYPE_ETHERNET) -> int:
        """Describe an interface; returns its id for :meth:`write`."""
        opts = [(IF_TSRESOL, bytes([9]))]
        if name:
            opts.insert(0, (IF_NAME, name.encode("utf-8", "surrogateescape")))
        body = struct.pack("<HHI", linktype, 0, snaplen) + _options(opts)
        self._put(_block(IDB_TYPE, body))
        self._snaplens.append(snaplen)
        return len(self._snaplens) - 1

    def write(self, frame: bytes, time_ns: int, *, interface: int = 0,
              original_length: int | None = None, comment: str | None = None) -> None:
        """One frame (its captured bytes) at ``time_ns`` (ns since the epoch).
        ``original_length`` is the frame's length on the wire when ``frame``
        holds only its first bytes."""
        if not 0 <= interface < len(self._snaplens):
            raise ValueError(f"pcapng: no interface {interface} (add_interface first)")
        data = bytes(frame)[: self._snaplens[interface]]
        orig = len(frame) if original_length is None else original_length
        if orig < len(data):
            raise ValueError(f"pcapng: original length {orig} < captured {len(data)}")
        ts = max(0, int(time_ns))
        body = struct.pack("<IIIII", interface, ts >> 32, ts & 0xFFFFFFFF, len(data), orig)
        body += data + b"\0" * _pad4(len(data))
        body += _options([(OPT_COMMENT, comment.encode())] if comment else [])
        self._put(_block(EPB_TYPE, body))
        self.frames_written += 1


@dataclass(frozen=True)
class PcapngInterface:
    linktype: int
    snaplen: int
    name: str | None
    tsresol: int = 6            # exponent of 10 (or, with the high bit, of 2)


@dataclass(frozen=True)
class PcapngPacket:
    interface: int
    time_ns: int
    data: bytes
    original_length: int
    comments: list[str] = field(default_factory=list)


def _parse_options(raw: bytes, e: str) -> list[tuple[int, bytes]]:
    out = []
    pos = 0
    while pos + 4 <= len(raw):
        code, length = struct.unpack_from(e + "HH", raw, pos)
        pos += 4
        if code == OPT_ENDOFOPT:
            break
        if pos + length > len(raw):
            raise PcapngFormatError("pcapng option runs past its block")
        out.append((code, raw[pos:pos + length]))
        pos += length + _pad4(length)
    return out


def _ticks_to_ns(ticks: int, tsresol: int) -> int:
    if tsresol & 0x80:
        return ticks * 10**9 // (1 << (tsresol & 0x7F))
    exp = tsresol
    return ticks * 10**(9 - exp) if exp <= 9 else ticks // 10**(exp - 9)


def _blocks(source: str | os.PathLike | BinaryIO | bytes
            ) -> Iterator[tuple[list[PcapngInterface], PcapngPacket | None]]:
    """(interfaces so far, packet or None) after each interface and packet
    block.  Other block types are skipped."""
    if isinstance(source, (bytes, bytearray)):
        raw = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            raw = f.read()
    else:
        raw = source.read()
    if not raw:
        raise PcapngFormatError("not a pcapng file (empty)")
    pos = 0
    e = "<"
    ifaces: list[PcapngInterface] = []
    while pos < len(raw):
        if pos + 12 > len(raw):
            raise PcapngFormatError(f"pcapng: block header cut short at byte {pos}")
        btype = struct.unpack_from("<I", raw, pos)[0]
        if btype == SHB_TYPE:
            magic = raw[pos + 8:pos + 12]
            if magic == struct.pack("<I", _BYTE_ORDER_MAGIC):
                e = "<"
            elif magic == struct.pack(">I", _BYTE_ORDER_MAGIC):
                e = ">"
            else:
                raise PcapngFormatError("pcapng: bad byte-order magic")
            ifaces = []
        elif pos == 0:
            raise PcapngFormatError("not a pcapng file (no Section Header Block)")
        length = struct.unpack_from(e + "I", raw, pos + 4)[0]
        if length < 12 or length % 4 or pos + length > len(raw):
            raise PcapngFormatError(f"pcapng: bad block length {length} at byte {pos}")
        if struct.unpack_from(e + "I", raw, pos + length - 4)[0] != length:
            raise PcapngFormatError(f"pcapng: trailing length mismatch at byte {pos}")
        body = raw[pos + 8:pos + length - 4]
        btype = struct.unpack_from(e + "I", raw, pos)[0]
        if btype == SHB_TYPE:
            major = struct.unpack_from(e + "H", body, 4)[0]
            if major != 1:
                raise PcapngFormatError(f"pcapng: version {major} (1 expected)")
        elif btype == IDB_TYPE:
            linktype, _, snaplen = struct.unpack_from(e + "HHI", body, 0)
            opts = dict(_parse_options(body[8:], e))
            name = opts[IF_NAME].decode("utf-8", "surrogateescape") if IF_NAME in opts else None
            tsresol = opts[IF_TSRESOL][0] if IF_TSRESOL in opts else 6
            ifaces.append(PcapngInterface(linktype, snaplen, name, tsresol))
            yield list(ifaces), None
        elif btype == EPB_TYPE:
            iface, hi, lo, caplen, orig = struct.unpack_from(e + "IIIII", body, 0)
            if iface >= len(ifaces):
                raise PcapngFormatError(f"pcapng: packet of undescribed interface {iface}")
            if 20 + caplen > len(body):
                raise PcapngFormatError("pcapng: packet data runs past its block")
            data = body[20:20 + caplen]
            opts = _parse_options(body[20 + caplen + _pad4(caplen):], e)
            comments = [v.decode("utf-8", "replace") for c, v in opts if c == OPT_COMMENT]
            ns = _ticks_to_ns((hi << 32) | lo, ifaces[iface].tsresol)
            yield list(ifaces), PcapngPacket(iface, ns, data, orig, comments)
        pos += length


def iter_pcapng(source: str | os.PathLike | BinaryIO | bytes) -> Iterator[PcapngPacket]:
    """The packets (Enhanced Packet Blocks) of a pcapng file, in order."""
    for _, packet in _blocks(source):
        if packet is not None:
            yield packet


def read_pcapng(source: str | os.PathLike | BinaryIO | bytes
                ) -> tuple[list[PcapngInterface], list[PcapngPacket]]:
    """The interfaces and packets of a pcapng file (of its last section)."""
    ifaces: list[PcapngInterface] = []
    packets = []
    for ifaces, packet in _blocks(source):
        if packet is not None:
            packets.append(packet)
    return ifaces, packets
