"""An in-memory pair of connected ports for deterministic stack tests.

``memory_pair()`` returns two :class:`MemoryPort` objects joined by a
simulated link.  Each direction can lose, duplicate, reorder and delay
frames; all randomness comes from ``random.Random`` seeded per direction,
so the same seed and the same traffic give the same run.

Timing: a frame sent at ``t`` becomes receivable when the link's clock
reaches ``t + delay`` (plus ``reorder_delay`` if it was picked for
reordering, which lets later frames overtake it).  The descriptor from
:meth:`MemoryPort.fileno` is readable while frames are receivable; frames
still in flight make no descriptor readable, so a waiter also sleeps until
:meth:`MemoryPort.poll_at`, and learns of new frames in flight through the
``on_in_flight`` callback (the host runtime uses both).  The clock defaults to
trio's current time inside trio (the autojump ``MockClock`` included) and to
``time.monotonic`` outside.
"""

from __future__ import annotations

import heapq
import os
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .errors import PortClosedError
from .pcap import PcapWriter
from .port import Frame, Port, PortStats, queue_frames

ETHERNET_HEADER = 14
VLAN_TAG = 4


def default_clock() -> float:
    """trio's clock inside trio, ``time.monotonic`` outside."""
    try:
        import trio

        return trio.current_time()
    except (ImportError, RuntimeError):
        return time.monotonic()


@dataclass
class Impairment:
    """What one direction of the link does to frames.  Mutable at run time."""

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    #: Extra delay given to a frame picked for reordering.
    reorder_delay: float = 0.002
    #: Called with each frame; returning False drops it (counted as filtered).
    #: For tests that must lose one particular frame.
    drop_if: Callable[[bytes], bool] | None = None

    def validate(self) -> None:
        for name in ("loss", "duplicate", "reorder"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        for name in ("delay", "reorder_delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


class MemoryPort(Port):
    """One end of an in-memory link.  Create pairs with :func:`memory_pair`."""

    def __init__(self, name: str, mac: bytes, mtu: int, impairment: Impairment,
                 rng: random.Random, clock: Callable[[], float], pcap: PcapWriter | None,
                 rx_capacity: int, tx_capacity: int):
        self.name = name
        self.mac = mac
        self.mtu = mtu
        #: Impairment applied to frames this port sends.
        self.tx_impairment = impairment
        self.peer: MemoryPort | None = None
        self._rng = rng
        self._clock = clock
        self._pcap = pcap
        #: Set when memory_pair opened the capture file, so the last close shuts it.
        self._owns_pcap = False
        self._rx_capacity = rx_capacity
        self._tx_capacity = tx_capacity
        self._tx_queue: list[bytes] = []
        self._in_flight: list[tuple[float, int, bytes]] = []  # heap of (due, seq, frame)
        self._ready: deque[bytes] = deque()
        self._seq = 0
        self._lent: list[memoryview] = []
        self._stats = PortStats()
        self._event_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._signalled = False
        self._closed = False
        #: Called when a frame is put in flight towards this port (not yet
        #: receivable, so the descriptor stays quiet): a waiter re-reads poll_at().
        self.on_in_flight: Callable[[], None] | None = None

    # -- Port interface -------------------------------------------------

    def recv_batch(self, max_frames: int = 256) -> list[memoryview]:
        self._check_open()
        self._release_lent()
        self._promote(self._clock())
        batch = []
        while self._ready and len(batch) < max_frames:
            frame = self._ready.popleft()
            view = memoryview(frame)
            batch.append(view)
            self._stats.rx_frames += 1
            self._stats.rx_bytes += len(frame)
            if self._pcap is not None:
                self._pcap.write(frame, self._clock())
        self._lent = batch
        if not self._ready:
            self._unsignal()
        return batch

    def send_batch(self, frames: Iterable[Frame]) -> int:
        self._check_open()
        return queue_frames(self._tx_queue, self._tx_capacity, frames)

    def sync(self) -> None:
        self._check_open()
        queue, self._tx_queue = self._tx_queue, []
        now = self._clock()
        for frame in queue:
            self._transmit(frame, now)

    def fileno(self) -> int:
        self._check_open()
        return self._event_fd

    def stats(self) -> PortStats:
        return self._stats.snapshot()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._release_lent()
        self._tx_queue.clear()
        self._in_flight.clear()
        self._ready.clear()
        os.close(self._event_fd)
        self._event_fd = -1
        if self._owns_pcap and (self.peer is None or self.peer._closed):
            self._pcap.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __del__(self) -> None:
        # A test that forgets close() must not leak the eventfd (as sockets do).
        if not getattr(self, "_closed", True) and getattr(self, "_event_fd", -1) >= 0:
            os.close(self._event_fd)

    # -- Extra hooks ----------------------------------------------------

    def poll_at(self) -> float | None:
        """When the next in-flight frame becomes receivable, or None."""
        if self._closed:
            return None
        self._promote(self._clock())
        return self._in_flight[0][0] if self._in_flight else None

    def pending(self) -> int:
        """Frames queued towards this port, receivable or still in flight."""
        return len(self._ready) + len(self._in_flight)

    # -- Internals ------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise PortClosedError(f"{self.name} is closed")

    def _count(self, key: str, n: int = 1) -> None:
        self._stats.extra[key] = self._stats.extra.get(key, 0) + n

    def _transmit(self, frame: bytes, now: float) -> None:
        if len(frame) < ETHERNET_HEADER:
            self._drop_tx("tx_runt")
            return
        if len(frame) > ETHERNET_HEADER + VLAN_TAG + self.mtu:
            self._drop_tx("tx_oversize")
            return
        peer = self.peer
        if peer is None or peer._closed:
            self._drop_tx("tx_peer_closed")
            return
        self._stats.tx_frames += 1
        self._stats.tx_bytes += len(frame)
        imp = self.tx_impairment
        if imp.drop_if is not None and imp.drop_if(frame):
            self._count("impair_filtered")
            return
        # Draw every random number in the same order whatever the outcome,
        # so that changing one probability leaves the others' pattern alone.
        lose, dup, reorder = self._rng.random(), self._rng.random(), self._rng.random()
        if lose < imp.loss:
            self._count("impair_lost")
            return
        due = now + imp.delay
        if reorder < imp.reorder:
            self._count("impair_reordered")
            due += imp.reorder_delay
        peer._arrive(frame, due, now)
        if dup < imp.duplicate:
            self._count("impair_duplicated")
            peer._arrive(frame, due, now)

    def _drop_tx(self, reason: str) -> None:
        self._stats.tx_dropped += 1
        self._count(reason)

    def _arrive(self, frame: bytes, due: float, now: float) -> None:
        if self.pending() >= self._rx_capacity:
            self._stats.rx_dropped += 1
            return
        self._seq += 1
        heapq.heappush(self._in_flight, (due, self._seq, frame))
        self._promote(now)
        if self._in_flight and self.on_in_flight is not None:
            self.on_in_flight()

    def _promote(self, now: float) -> None:
        while self._in_flight and self._in_flight[0][0] <= now:
            self._ready.append(heapq.heappop(self._in_flight)[2])
        if self._ready:
            self._signal()

    def _signal(self) -> None:
        if not self._signalled:
            os.eventfd_write(self._event_fd, 1)
            self._signalled = True

    def _unsignal(self) -> None:
        if self._signalled:
            try:
                os.eventfd_read(self._event_fd)
            except BlockingIOError:
                pass
            self._signalled = False

    def _release_lent(self) -> None:
        # Real rings reuse the buffer; releasing the views makes a stack that
        # keeps one past the next recv_batch fail loudly here as well.
        for view in self._lent:
            view.release()
        self._lent = []


def memory_pair(*, loss: float = 0.0, duplicate: float = 0.0, reorder: float = 0.0,
                delay: float = 0.0, reorder_delay: float = 0.002, seed: int = 0,
                pcap: str | os.PathLike | PcapWriter | None = None,
                clock: Callable[[], float] | None = None, mtu: int = 1500,
                rx_capacity: int = 4096, tx_capacity: int = 1024,
                names: tuple[str, str] = ("mem0", "mem1"),
                macs: tuple[bytes, bytes] = (bytes.fromhex("020000000001"), bytes.fromhex("020000000002")),
                ) -> tuple[MemoryPort, MemoryPort]:
    """Two connected ports.  The impairments apply to both directions (each
    port's ``tx_impairment`` can be changed afterwards, one direction at a
    time).  ``pcap`` records every frame as a port receives it."""
    if mtu < 68:
        raise ValueError(f"mtu {mtu} is below the IPv4 minimum of 68")
    if rx_capacity < 1 or tx_capacity < 1:
        raise ValueError("capacities must be positive")
    if len(macs) != 2 or any(len(m) != 6 for m in macs):
        raise ValueError("macs must be two 6-byte addresses")
    impairments = [Impairment(loss, duplicate, reorder, delay, reorder_delay) for _ in range(2)]
    for imp in impairments:
        imp.validate()
    writer = PcapWriter(pcap) if isinstance(pcap, (str, os.PathLike)) else pcap
    clock = clock or default_clock
    a, b = (
        MemoryPort(names[i], macs[i], mtu, impairments[i], random.Random(f"{seed}/{i}"),
                   clock, writer, rx_capacity, tx_capacity)
        for i in range(2)
    )
    a.peer, b.peer = b, a
    a._owns_pcap = b._owns_pcap = writer is not pcap
    return a, b
