"""TCP segments (RFC 9293) with the options UTCP uses.

Options: MSS (RFC 9293), window scale and timestamps (RFC 7323), SACK-permitted
and SACK (RFC 2018), NOP and EOL.  Unknown options are skipped by their length;
a length byte that is missing, below 2, past the options area or wrong for a
known option makes the segment malformed.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from ._buffer import byte_view
from ._fast_init import fast_constructor, faster_init
from .checksum import (checksum, partial_sum, pseudo_header_sum, transport_checksum,
                       transport_checksum_ok)
from .errors import MalformedPacket

PROTOCOL = 6
HEADER_LEN = 20
MAX_OPTIONS_LEN = 40

_HEADER = struct.Struct("!HHIIBBHHH")
_U16 = struct.Struct("!H")
_TIMESTAMP = struct.Struct("!II")
_NOP_NOP_TIMESTAMP = b"\x01\x01\x08\x0a"

OPT_EOL = 0
OPT_NOP = 1
OPT_MSS = 2
OPT_WINDOW_SCALE = 3
OPT_SACK_PERMITTED = 4
OPT_SACK = 5
OPT_TIMESTAMP = 8


class TcpFlags(enum.IntFlag):
    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80

    # Segment handling tests and combines flags all the time; enum's own operators
    # build each result through the enum constructor, a table lookup is far cheaper.
    def __and__(self, other):
        if not isinstance(other, int):
            return NotImplemented
        return FLAGS_BY_VALUE[int.__and__(self, other)]      # within 0..255, as self is

    def __or__(self, other):
        if not isinstance(other, int):
            return NotImplemented
        value = int.__or__(self, other)
        return FLAGS_BY_VALUE[value] if 0 <= value < 256 else TcpFlags(value)

    __rand__ = __and__
    __ror__ = __or__


#: TcpFlags by value (0..255): indexing is much cheaper than calling the enum, so
#: per-segment code computes flags as plain ints and converts once.
FLAGS_BY_VALUE = tuple(TcpFlags(value) for value in range(256))


class TcpPacket:
    """Length-checked view of a TCP segment in a buffer.

    The constructor checks that the fixed header and the whole header the
    data offset announces fit in the buffer; the accessors then read fields
    without further checks.  Nothing is copied.
    """

    __slots__ = ("buffer", "header_len")

    def __init__(self, data) -> None:
        buf = byte_view(data)
        if len(buf) < HEADER_LEN:
            raise MalformedPacket(f"TCP: {len(buf)} bytes is shorter than the 20-byte header")
        header_len = (buf[12] >> 4) * 4
        if header_len < HEADER_LEN:
            raise MalformedPacket(f"TCP: data offset {header_len // 4} is below the minimum of 5")
        if header_len > len(buf):
            raise MalformedPacket(
                f"TCP: data offset {header_len // 4} ({header_len} bytes) is beyond the "
                f"{len(buf)}-byte segment")
        self.buffer = buf
        self.header_len = header_len

    def fields(self) -> tuple[int, int, int, int, int, int, int, int, int]:
        """(src_port, dst_port, seq, ack, offset byte, flags, window, checksum, urgent)."""
        return _HEADER.unpack_from(self.buffer)

    @property
    def src_port(self) -> int:
        return _U16.unpack_from(self.buffer, 0)[0]

    @property
    def dst_port(self) -> int:
        return _U16.unpack_from(self.buffer, 2)[0]

    @property
    def flags(self) -> TcpFlags:
        return FLAGS_BY_VALUE[self.buffer[13]]

    @property
    def checksum(self) -> int:
        return _U16.unpack_from(self.buffer, 16)[0]

    @property
    def options(self) -> memoryview:
        return self.buffer[HEADER_LEN:self.header_len]

    @property
    def payload(self) -> memoryview:
        return self.buffer[self.header_len:]


def _parse_options(opts: memoryview):
    """Decode the options area: (mss, window_scale, sack_permitted, sack_blocks, timestamp)."""
    mss = window_scale = timestamp = None
    sack_permitted = False
    sack_blocks: tuple[tuple[int, int], ...] = ()
    i = 0
    n = len(opts)
    while i < n:
        kind = opts[i]
        if kind == OPT_EOL:
            break
        if kind == OPT_NOP:
            i += 1
            continue
        if i + 1 >= n:
            raise MalformedPacket(f"TCP: option {kind} at offset {i} has no length byte")
        length = opts[i + 1]
        if length < 2:
            raise MalformedPacket(f"TCP: option {kind} has length {length}, below 2")
        end = i + length
        if end > n:
            raise MalformedPacket(
                f"TCP: option {kind} of length {length} runs past the {n}-byte options area")
        if kind == OPT_MSS:
            if length != 4:
                raise MalformedPacket(f"TCP: MSS option has length {length}, not 4")
            mss = _U16.unpack_from(opts, i + 2)[0]
        elif kind == OPT_WINDOW_SCALE:
            if length != 3:
                raise MalformedPacket(f"TCP: window scale option has length {length}, not 3")
            window_scale = opts[i + 2]
        elif kind == OPT_SACK_PERMITTED:
            if length != 2:
                raise MalformedPacket(f"TCP: SACK-permitted option has length {length}, not 2")
            sack_permitted = True
        elif kind == OPT_SACK:
            if length < 10 or (length - 2) % 8:
                raise MalformedPacket(
                    f"TCP: SACK option has length {length}, not 2 + 8 × (1..4) blocks")
            count = (length - 2) // 8
            edges = struct.unpack_from(f"!{2 * count}I", opts, i + 2)
            sack_blocks = tuple(zip(edges[0::2], edges[1::2]))
        elif kind == OPT_TIMESTAMP:
            if length != 10:
                raise MalformedPacket(f"TCP: timestamp option has length {length}, not 10")
            timestamp = _TIMESTAMP.unpack_from(opts, i + 2)
        i = end
    return mss, window_scale, sack_permitted, sack_blocks, timestamp


@faster_init
@dataclass(frozen=True, slots=True)
class TcpRepr:
    """A TCP segment, header fields decoded.

    ``window`` is the raw header field (unscaled).  ``window_scale`` is the
    shift count as sent; RFC 7323 says a receiver treats values above 14
    as 14, which is the socket's job, not the parser's.
    """

    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: TcpFlags
    window: int
    urgent: int = 0
    mss: int | None = None
    window_scale: int | None = None
    sack_permitted: bool = False
    sack_blocks: tuple[tuple[int, int], ...] = ()
    timestamp: tuple[int, int] | None = None
    payload: bytes = b""

    @classmethod
    def parse(cls, data, src: IPv4Address | IPv6Address, dst: IPv4Address | IPv6Address,
              *, verify_checksum: bool = True) -> TcpRepr:
        """Decode a whole segment (exactly the IP payload) sent from ``src`` to ``dst``.

        Raises MalformedPacket on anything bad, including a wrong checksum
        when ``verify_checksum`` is true.  The payload is copied out, so the
        result stays valid after the buffer is reused.
        """
        packet = TcpPacket(data)
        buf = packet.buffer
        if verify_checksum and not transport_checksum_ok(src, dst, PROTOCOL, buf):
            raise MalformedPacket("TCP: bad checksum")
        src_port, dst_port, seq, ack, _, flags, window, _, urgent = _HEADER.unpack_from(buf)
        header_len = packet.header_len
        if header_len == HEADER_LEN + 12 and buf[HEADER_LEN:HEADER_LEN + 4] == _NOP_NOP_TIMESTAMP:
            # The options of nearly every segment of a connection with timestamps.
            mss = window_scale = None
            sack_permitted = False
            sack_blocks = ()
            timestamp = _TIMESTAMP.unpack_from(buf, HEADER_LEN + 4)
        elif header_len > HEADER_LEN:
            mss, window_scale, sack_permitted, sack_blocks, timestamp = _parse_options(
                buf[HEADER_LEN:header_len])
        else:
            mss = window_scale = timestamp = None
            sack_permitted = False
            sack_blocks = ()
        return build_tcp_repr(src_port, dst_port, seq, ack, FLAGS_BY_VALUE[flags], window, urgent,
                              mss, window_scale, sack_permitted, sack_blocks, timestamp,
                              bytes(buf[header_len:]))

    @property
    def options_len(self) -> int:
        """Bytes of options :meth:`emit` writes (a multiple of 4)."""
        n = 0
        if self.mss is not None:
            n += 4
        if self.timestamp is not None:
            n += 12  # SACK-permitted rides in the timestamp's two padding bytes
        elif self.sack_permitted:
            n += 4
        if self.window_scale is not None:
            n += 4
        if self.sack_blocks:
            n += 4 + 8 * len(self.sack_blocks)
        return n

    @property
    def header_len(self) -> int:
        return HEADER_LEN + self.options_len

    @property
    def segment_len(self) -> int:
        """Sequence space the segment consumes: payload plus one each for SYN and FIN."""
        flags = int(self.flags)             # a plain int: no enum operators
        return len(self.payload) + (flags & 1) + (flags >> 1 & 1)      # FIN bit 0, SYN bit 1

    def _options(self) -> bytes:
        # The layout Linux writes: MSS, SACK-permitted/timestamps, window scale,
        # SACK blocks, each padded with NOPs to a 4-byte boundary.
        if self.mss is None and self.window_scale is None and not self.sack_permitted \
                and not self.sack_blocks:
            # the common cases: no options, or timestamps alone
            if self.timestamp is None:
                return b""
            return _NOP_NOP_TIMESTAMP + _TIMESTAMP.pack(*self.timestamp)
        parts = []
        if self.mss is not None:
            parts.append(struct.pack("!BBH", OPT_MSS, 4, self.mss))
        if self.timestamp is not None:
            lead = b"\x04\x02" if self.sack_permitted else b"\x01\x01"
            parts.append(lead + struct.pack("!BBII", OPT_TIMESTAMP, 10, *self.timestamp))
        elif self.sack_permitted:
            parts.append(b"\x01\x01\x04\x02")
        if self.window_scale is not None:
            parts.append(struct.pack("!BBBB", OPT_NOP, OPT_WINDOW_SCALE, 3, self.window_scale))
        if self.sack_blocks:
            count = len(self.sack_blocks)
            if count > 4:
                raise ValueError(f"TCP: {count} SACK blocks; at most 4 fit")
            edges = [edge for block in self.sack_blocks for edge in block]
            if len(edges) != 2 * count:
                raise ValueError("TCP: each SACK block is a (left, right) pair")
            parts.append(struct.pack(f"!BBBB{2 * count}I", OPT_NOP, OPT_NOP, OPT_SACK,
                                     2 + 8 * count, *edges))
        options = b"".join(parts)
        if len(options) > MAX_OPTIONS_LEN:
            raise ValueError(f"TCP: options need {len(options)} bytes; at most 40 fit")
        return options

    def emit_into(self, buffer: bytearray | memoryview, offset: int,
                  src: IPv4Address | IPv6Address, dst: IPv4Address | IPv6Address) -> int:
        """Write the segment, checksum included, at ``buffer[offset:]``; return its length."""
        try:
            options = self._options()
            header_len = HEADER_LEN + len(options)
            end = offset + header_len + len(self.payload)
            if end > len(buffer):
                raise ValueError(f"TCP: segment needs {end - offset} bytes, buffer has "
                                 f"{len(buffer) - offset}")
            _HEADER.pack_into(buffer, offset, self.src_port, self.dst_port, self.seq, self.ack,
                              (header_len // 4) << 4, self.flags, self.window, 0, self.urgent)
        except struct.error as exc:
            raise ValueError(f"TCP: field out of range: {exc}") from None
        buffer[offset + HEADER_LEN:offset + header_len] = options
        buffer[offset + header_len:end] = self.payload
        segment = memoryview(buffer)[offset:end]
        _U16.pack_into(buffer, offset + 16, transport_checksum(src, dst, PROTOCOL, segment))
        return end - offset

    def emit(self, src: IPv4Address | IPv6Address, dst: IPv4Address | IPv6Address) -> bytes:
        """The whole segment with its checksum over the pseudo-header of ``src``/``dst``."""
        payload = self.payload
        try:
            options = self._options()
            head = _HEADER.pack(self.src_port, self.dst_port, self.seq, self.ack,
                                (HEADER_LEN + len(options)) << 2, self.flags, self.window, 0,
                                self.urgent) + options
        except struct.error as exc:
            raise ValueError(f"TCP: field out of range: {exc}") from None
        # The header's length is a multiple of 4, so its sum chains into the payload's.
        pseudo = pseudo_header_sum(src, dst, PROTOCOL, len(head) + len(payload))
        value = checksum(payload, partial_sum(head, pseudo))
        return b"".join((head[:16], _U16.pack(value), head[18:], payload))


#: TcpRepr(...) for code that builds one per segment (parsers, senders): the same
#: arguments and result, built faster.
build_tcp_repr = fast_constructor(TcpRepr)
