"""IPv4 headers (RFC 791): options, fragmentation fields, header checksum."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

from ._addresses import ipv4_from_bytes
from ._buffer import byte_view
from ._fast_init import fast_constructor, faster_init
from .checksum import checksum
from .errors import MalformedPacket

HEADER_LEN = 20
MAX_HEADER_LEN = 60

_HEADER = struct.Struct("!BBHHHBBH4s4s")
_U16 = struct.Struct("!H")

FLAG_DF = 0x4000
FLAG_MF = 0x2000
OFFSET_MASK = 0x1FFF

OPT_EOL = 0
OPT_NOP = 1


def check_options(options) -> None:
    """Walk an options area: every option but EOL/NOP needs a length in [2, room left]."""
    i = 0
    n = len(options)
    while i < n:
        kind = options[i]
        if kind == OPT_EOL:
            return
        if kind == OPT_NOP:
            i += 1
            continue
        if i + 1 >= n:
            raise MalformedPacket(f"IPv4: option {kind} at offset {i} has no length byte")
        length = options[i + 1]
        if length < 2 or i + length > n:
            raise MalformedPacket(
                f"IPv4: option {kind} has length {length}, outside 2..{n - i}")
        i += length


def iter_options(options) -> list[tuple[int, bytes]]:
    """The options as (type, data) pairs, NOP and EOL left out."""
    check_options(options)
    result = []
    i = 0
    while i < len(options) and options[i] != OPT_EOL:
        if options[i] == OPT_NOP:
            i += 1
            continue
        length = options[i + 1]
        result.append((options[i], bytes(options[i + 2:i + length])))
        i += length
    return result


class Ipv4Packet:
    """Length-checked view of an IPv4 packet.

    Checks version, IHL >= 5, the header within the buffer, and
    IHL <= total length <= buffer (bytes past total length are link padding
    and are not part of :attr:`payload`).  With ``truncated=True`` the total
    length may exceed the buffer, as in the quote inside an ICMP error.
    """

    __slots__ = ("buffer", "header_len", "total_len")

    def __init__(self, data, *, truncated: bool = False) -> None:
        buf = byte_view(data)
        n = len(buf)
        if n < HEADER_LEN:
            raise MalformedPacket(f"IPv4: {n} bytes is shorter than the 20-byte header")
        first = buf[0]
        if first >> 4 != 4:
            raise MalformedPacket(f"IPv4: version field is {first >> 4}, not 4")
        header_len = (first & 0x0F) * 4
        if header_len < HEADER_LEN:
            raise MalformedPacket(f"IPv4: IHL {header_len // 4} is below the minimum of 5")
        if header_len > n:
            raise MalformedPacket(
                f"IPv4: IHL {header_len // 4} ({header_len} bytes) is beyond the {n}-byte buffer")
        total_len = _U16.unpack_from(buf, 2)[0]
        if total_len < header_len:
            raise MalformedPacket(
                f"IPv4: total length {total_len} is shorter than the {header_len}-byte header")
        if total_len > n:
            if not truncated:
                raise MalformedPacket(
                    f"IPv4: total length {total_len} is beyond the {n}-byte buffer")
            total_len = n
        self.buffer = buf
        self.header_len = header_len
        self.total_len = total_len

    @property
    def header(self) -> memoryview:
        return self.buffer[:self.header_len]

    @property
    def payload(self) -> memoryview:
        return self.buffer[self.header_len:self.total_len]

    def checksum_ok(self) -> bool:
        return checksum(self.buffer[:self.header_len]) == 0


@faster_init
@dataclass(frozen=True, slots=True)
class Ipv4Repr:
    """An IPv4 header without its lengths and checksum, which emit computes.

    ``fragment_offset`` is in bytes (a multiple of 8).  ``options`` is the
    raw options area, a multiple of 4 bytes, at most 40.
    """

    src: IPv4Address
    dst: IPv4Address
    protocol: int
    ttl: int = 64
    dscp: int = 0
    ecn: int = 0
    ident: int = 0
    dont_fragment: bool = False
    more_fragments: bool = False
    fragment_offset: int = 0
    options: bytes = b""

    @classmethod
    def parse(cls, data, *, verify_checksum: bool = True) -> Ipv4Repr:
        return cls.parse_with_payload(data, verify_checksum=verify_checksum)[0]

    @classmethod
    def parse_with_payload(cls, data, *, verify_checksum: bool = True
                           ) -> tuple[Ipv4Repr, memoryview]:
        """The header and a view of exactly the payload the total length announces."""
        packet = Ipv4Packet(data)
        if verify_checksum and not packet.checksum_ok():
            raise MalformedPacket("IPv4: bad header checksum")
        return cls._from_packet(packet), packet.payload

    @classmethod
    def parse_truncated(cls, data) -> tuple[Ipv4Repr, memoryview]:
        """Parse the start of a packet quoted in an ICMP error: the total length
        may exceed the bytes present and the checksum is not checked."""
        packet = Ipv4Packet(data, truncated=True)
        return cls._from_packet(packet), packet.payload

    @classmethod
    def _from_packet(cls, packet: Ipv4Packet) -> Ipv4Repr:
        buf = packet.buffer
        _, tos, _, ident, frag, ttl, protocol, _, src, dst = _HEADER.unpack_from(buf)
        header_len = packet.header_len
        if header_len > HEADER_LEN:
            options = bytes(buf[HEADER_LEN:header_len])
            check_options(options)
        else:
            options = b""
        return _build_ipv4(ipv4_from_bytes(src), ipv4_from_bytes(dst), protocol, ttl, tos >> 2,
                           tos & 3, ident, bool(frag & FLAG_DF), bool(frag & FLAG_MF),
                           (frag & OFFSET_MASK) * 8, options)

    @property
    def header_len(self) -> int:
        return HEADER_LEN + len(self.options)

    @property
    def is_fragment(self) -> bool:
        """True for any piece of a fragmented datagram, the first one included."""
        return self.more_fragments or self.fragment_offset != 0

    def header_bytes(self, payload_len: int) -> bytes:
        """The header, checksum included, for a payload of ``payload_len`` bytes."""
        options = self.options
        header_len = HEADER_LEN + len(options)
        if len(options) % 4 or len(options) > 40:
            raise ValueError(f"IPv4: options of {len(options)} bytes; need a multiple of 4, "
                             "at most 40")
        offset = self.fragment_offset
        if offset % 8 or not 0 <= offset <= OFFSET_MASK * 8:
            raise ValueError(f"IPv4: fragment offset {offset} is not a multiple of 8 in "
                             f"0..{OFFSET_MASK * 8} (out of range)")
        frag = offset >> 3 | (FLAG_DF if self.dont_fragment else 0) \
            | (FLAG_MF if self.more_fragments else 0)
        src, dst = self.src, self.dst
        if not (isinstance(src, IPv4Address) and isinstance(dst, IPv4Address)):
            raise ValueError("IPv4: src and dst must be IPv4Address")
        if not (0 <= self.dscp < 64 and 0 <= self.ecn < 4):
            raise ValueError(f"IPv4: field out of range in {self}")
        try:
            fields = [0x40 | header_len >> 2, self.dscp << 2 | self.ecn, header_len + payload_len,
                      self.ident, frag, self.ttl, self.protocol, 0, src.packed, dst.packed]
            header = _HEADER.pack(*fields) + options
            fields[7] = checksum(header)
            return _HEADER.pack(*fields) + options
        except struct.error as exc:
            raise ValueError(f"IPv4: field out of range: {exc}") from None

    def emit_into(self, buffer: bytearray | memoryview, offset: int, payload_len: int) -> int:
        """Write the header for a payload of ``payload_len`` bytes; return its length."""
        header = self.header_bytes(payload_len)
        if offset + len(header) > len(buffer):
            raise ValueError("IPv4: buffer too small for the header")
        buffer[offset:offset + len(header)] = header
        return len(header)

    def emit(self, payload=b"") -> bytes:
        return self.header_bytes(len(payload)) + payload


# Parsers build one of these per packet: the fast path of Ipv4Repr(...).
_build_ipv4 = fast_constructor(Ipv4Repr)
