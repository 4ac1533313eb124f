"""IP datagram reassembly (RFC 791 for IPv4, RFC 8200 4.5 for IPv6), sans-IO.

Fragments go in with the time; whole payloads come out.  Memory is bounded
(datagrams in progress, bytes held), a datagram not complete ``timeout``
seconds after its first fragment is dropped, and overlapping fragments drop
the whole datagram (RFC 5722; the same rule for IPv4, as a guard against
overlap tricks).  Every drop is counted by reason (``drop_fragment_*``) in
``counters``, which a host shares with its own.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

MAX_DATAGRAM = 65535


@dataclass
class _Datagram:
    expires: float
    pieces: dict[int, bytes] = field(default_factory=dict)  # offset -> data
    total: int | None = None  # payload length, known from the last fragment
    held: int = 0


class Reassembler:
    def __init__(self, *, timeout: float = 30.0, max_datagrams: int = 64,
                 max_bytes: int = 1 << 20, counters: Counter[str] | None = None):
        self.timeout = timeout
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self.counters: Counter[str] = counters if counters is not None else Counter()
        self._datagrams: dict[tuple, _Datagram] = {}
        self._held = 0

    def add(self, key: tuple, offset: int, more: bool, data: bytes, now: float) -> bytes | None:
        """Add one fragment of the datagram ``key``; return the whole payload once complete."""
        end = offset + len(data)
        if end > MAX_DATAGRAM or (more and len(data) % 8) or (more and not data):
            self.counters["drop_fragment_bad_length"] += 1
            self._drop(key)
            return None
        datagram = self._datagrams.get(key)
        if datagram is None:
            if len(self._datagrams) >= self.max_datagrams:
                self.counters["drop_fragment_table_full"] += 1
                return None
            datagram = self._datagrams[key] = _Datagram(now + self.timeout)
        if self._held + len(data) > self.max_bytes:
            self.counters["drop_fragment_memory_full"] += 1
            self._drop(key)
            return None
        if not more:
            if datagram.total is not None and datagram.total != end:
                self.counters["drop_fragment_inconsistent"] += 1
                self._drop(key)
                return None
            datagram.total = end
        if (datagram.total is not None and end > datagram.total) or \
                any(offset < o + len(d) and o < end for o, d in datagram.pieces.items()):
            if datagram.pieces.get(offset) == data:  # an exact duplicate is harmless
                return None
            self.counters["drop_fragment_overlap"] += 1
            self._drop(key)
            return None
        datagram.pieces[offset] = bytes(data)
        datagram.held += len(data)
        self._held += len(data)
        if datagram.total is None or datagram.held != datagram.total:
            return None
        del self._datagrams[key]
        self._held -= datagram.held
        self.counters["datagrams_reassembled"] += 1
        return b"".join(datagram.pieces[o] for o in sorted(datagram.pieces))

    def poll_at(self) -> float | None:
        return min((d.expires for d in self._datagrams.values()), default=None)

    def on_timer(self, now: float) -> None:
        for key, datagram in list(self._datagrams.items()):
            if datagram.expires <= now:
                self.counters["drop_fragment_timeout"] += 1
                self._drop(key)

    def in_progress(self) -> int:
        return len(self._datagrams)

    def _drop(self, key: tuple) -> None:
        datagram = self._datagrams.pop(key, None)
        if datagram is not None:
            self._held -= datagram.held
