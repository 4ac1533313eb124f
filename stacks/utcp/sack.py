"""Selective acknowledgements (RFC 2018).

:class:`ReceiveQueue` holds out-of-order data and reports the SACK blocks
a receiver sends; :class:`Scoreboard` records what the peer has SACKed so
the sender retransmits only the holes.  Both work on absolute sequence
numbers (see :mod:`.seq`).
"""

from __future__ import annotations

import bisect


class ReceiveQueue:
    """Out-of-order segments above RCV.NXT, merged into disjoint blocks."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._blocks: dict[int, bytearray] = {}
        self._recent: list[int] = []     # block starts, most recently changed first
        self.fin: int | None = None      # sequence number of a FIN seen out of order

    def __len__(self) -> int:
        return len(self._starts)

    @property
    def buffered(self) -> int:
        return sum(len(b) for b in self._blocks.values())

    def add(self, seq: int, data: bytes) -> None:
        """Store ``data`` at ``seq``, merging with overlapping or adjacent blocks."""
        if not data:
            return
        start, end = seq, seq + len(data)
        merged = bytearray(data)
        i = bisect.bisect_left(self._starts, start)
        if i > 0:
            prev = self._starts[i - 1]
            if prev + len(self._blocks[prev]) >= start:
                i -= 1
        while i < len(self._starts) and self._starts[i] <= end:
            s = self._starts[i]
            block = self._blocks[s]
            e = s + len(block)
            if s < start:
                merged = block[:start - s] + merged
                start = s
            if e > end:
                merged += block[end - s:]
                end = e
            del self._starts[i]
            del self._blocks[s]
            if s in self._recent:
                self._recent.remove(s)
        self._starts.insert(i, start)
        self._blocks[start] = merged
        self._recent.insert(0, start)

    def pop_ready(self, rcv_nxt: int) -> bytes:
        """Remove and return the data that now continues the stream at ``rcv_nxt``."""
        out = bytearray()
        while self._starts and self._starts[0] <= rcv_nxt:
            s = self._starts.pop(0)
            block = self._blocks.pop(s)
            if s in self._recent:
                self._recent.remove(s)
            skip = rcv_nxt - s
            if skip < len(block):
                out += block[skip:]
                rcv_nxt += len(block) - skip
        return bytes(out)

    def blocks(self, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` SACK blocks, the most recently changed first (RFC 2018 section 4)."""
        return [(s, s + len(self._blocks[s])) for s in self._recent[:limit]]


class Scoreboard:
    """Sequence ranges above SND.UNA that the peer has selectively acknowledged."""

    def __init__(self) -> None:
        self._ranges: list[list[int]] = []    # sorted, disjoint [start, end)

    def __bool__(self) -> bool:
        return bool(self._ranges)

    def ranges(self) -> list[tuple[int, int]]:
        return [(s, e) for s, e in self._ranges]

    def clear(self) -> None:
        self._ranges.clear()

    def add(self, start: int, end: int) -> bool:
        """Record a block; return whether it told us something new."""
        if end <= start:
            return False
        new = [start, end]
        out: list[list[int]] = []
        grew = True
        for s, e in self._ranges:
            if e < new[0] or s > new[1]:
                out.append([s, e])
            else:
                if s <= new[0] and e >= new[1]:
                    grew = False
                new = [min(s, new[0]), max(e, new[1])]
        out.append(new)
        out.sort()
        self._ranges = out
        return grew

    def advance(self, snd_una: int) -> None:
        """Forget everything below the cumulative acknowledgement."""
        kept = []
        for s, e in self._ranges:
            if e > snd_una:
                kept.append([max(s, snd_una), e])
        self._ranges = kept

    @property
    def sacked_bytes(self) -> int:
        return sum(e - s for s, e in self._ranges)

    @property
    def highest(self) -> int | None:
        return self._ranges[-1][1] if self._ranges else None

    def sacked_at(self, seq: int) -> int | None:
        """If ``seq`` is SACKed, the end of its range."""
        for s, e in self._ranges:
            if s <= seq < e:
                return e
            if s > seq:
                break
        return None

    def next_sacked(self, seq: int) -> int | None:
        """Start of the first SACKed range beginning after ``seq``."""
        for s, _ in self._ranges:
            if s > seq:
                return s
        return None

    def first_hole(self, start: int) -> int | None:
        """The first unSACKed sequence number at or above ``start`` that lies below a SACKed
        range — that is, data a SACK shows is missing (RFC 6675's IsLost, simplified to one
        later SACKed byte)."""
        seq = start
        for s, e in self._ranges:
            if e <= seq:
                continue
            if s > seq:
                return seq
            seq = e
        return None
