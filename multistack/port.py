"""The Port interface: the one abstraction user-level stacks run on.

A port moves whole Ethernet frames in batches.  Receiving hands out
memoryviews that, where the backend allows it, point straight into ring
buffers; they stay valid until the next :meth:`Port.recv_batch` call (or
:meth:`Port.close`), so a stack parses or copies what it keeps before then.
Sending queues frames; :meth:`Port.sync` pushes the queued batch out with
one system call.  :meth:`Port.fileno` is readable when frames are waiting,
for ``trio.lowlevel.wait_readable``.

Backends that share a NIC with the OS stack (the kernel module) only carry
the 3-tuples a port has registered; backends that own a whole link (the
in-memory pair, TAP) carry everything and refuse registration.
"""

from __future__ import annotations

import abc
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import UnsupportedOperation

Frame = bytes | bytearray | memoryview

PROTOCOLS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}


@dataclass
class PortStats:
    """Counters of one port.  ``extra`` holds backend-specific counters,
    such as TX rejections by reason in the kernel backend."""

    rx_frames: int = 0
    rx_bytes: int = 0
    rx_dropped: int = 0
    tx_frames: int = 0
    tx_bytes: int = 0
    tx_dropped: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def snapshot(self) -> "PortStats":
        """An independent copy, so a caller's view does not move on."""
        return PortStats(**{**vars(self), "extra": dict(self.extra)})

    def as_dict(self) -> dict[str, int]:
        counters = {k: v for k, v in vars(self).items() if k != "extra"}
        counters.update(self.extra)
        return counters


def queue_frames(queue: list[bytes], capacity: int, frames: Iterable[Frame]) -> int:
    """Copy ``frames`` onto a software TX ``queue`` up to ``capacity``.

    For backends whose TX queue lives in Python (memory pair, TAP); returns
    how many were queued, as :meth:`Port.send_batch` does.
    """
    queued = 0
    for frame in frames:
        if len(queue) >= capacity:
            break
        queue.append(bytes(frame))
        queued += 1
    return queued


class Port(abc.ABC):
    """A virtual port carrying Ethernet frames."""

    #: Human-readable name, e.g. the interface it is on.
    name: str
    #: Ethernet address frames are sent from.
    mac: bytes
    #: Largest IP packet (Ethernet payload) the link carries.
    mtu: int

    @abc.abstractmethod
    def recv_batch(self, max_frames: int = 256) -> list[memoryview]:
        """Return up to ``max_frames`` received frames, oldest first.

        Returns an empty list when nothing is waiting; never blocks.  The
        views from the previous call are released by this call.
        """

    @abc.abstractmethod
    def send_batch(self, frames: Iterable[Frame]) -> int:
        """Queue frames for transmission and return how many were queued.

        Frames past the returned count did not fit (TX ring full) and were
        not queued; the caller keeps them and retries after :meth:`sync`.
        """

    @abc.abstractmethod
    def sync(self) -> None:
        """Transmit every queued frame and reclaim TX space."""

    @abc.abstractmethod
    def fileno(self) -> int:
        """A descriptor that polls readable while received frames wait."""

    @abc.abstractmethod
    def stats(self) -> PortStats:
        """Current counters of this port."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the port and everything it holds.  Idempotent."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """Whether :meth:`close` has run (or the link went away)."""

    # Registration of (protocol, address, port) 3-tuples.  Only backends
    # that share a NIC with the OS stack implement these.

    def claim(self, proto: str, address: str, port: int) -> socket.socket:
        """Create a socket bound to the 3-tuple, register it, return it.

        The caller keeps the socket open for as long as it wants the tuple.
        """
        raise UnsupportedOperation(f"{type(self).__name__} does not register 3-tuples")

    def register(self, proto: str, address: str, port: int, sock: socket.socket) -> None:
        """Register a 3-tuple, proving ownership with a bound ``sock``."""
        raise UnsupportedOperation(f"{type(self).__name__} does not register 3-tuples")

    def unregister(self, proto: str, address: str, port: int) -> None:
        """Give a registered 3-tuple back."""
        raise UnsupportedOperation(f"{type(self).__name__} does not register 3-tuples")

    def __enter__(self) -> "Port":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
