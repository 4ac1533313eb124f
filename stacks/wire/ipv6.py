"""IPv6 (RFC 8200): the fixed header and the standard extension headers.

Parsing walks hop-by-hop, routing, fragment, destination-options and AH
headers and stops at the first other header, which is the upper-layer
protocol (ESP and "no next header" included).  It also stops right after a
fragment header whose offset is not zero, since what follows is the middle
of a datagram, not a header.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv6Address

from ._addresses import ipv6_from_bytes
from ._buffer import byte_view
from ._fast_init import fast_constructor, faster_init
from .errors import MalformedPacket

HEADER_LEN = 40

HOP_BY_HOP = 0
ROUTING = 43
FRAGMENT = 44
AUTH = 51
DEST_OPTIONS = 60
NO_NEXT_HEADER = 59
EXTENSION_HEADERS = frozenset({HOP_BY_HOP, ROUTING, FRAGMENT, AUTH, DEST_OPTIONS})

_HEADER = struct.Struct("!IHBB16s16s")
_FRAGMENT_BODY = struct.Struct("!HI")  # after the next-header and reserved bytes
_U16 = struct.Struct("!H")


@dataclass(frozen=True, slots=True)
class Ipv6Fragment:
    """The fields of a fragment header; ``offset`` in bytes (a multiple of 8)."""

    offset: int
    more_fragments: bool
    ident: int


@dataclass(frozen=True, slots=True)
class Ipv6ExtensionHeader:
    """One extension header: its type (the protocol number that announces it)
    and its body, the bytes after its next-header and length bytes.

    Body sizes: hop-by-hop, routing and destination options 6 + 8k bytes;
    fragment exactly 6; AH 6 + 4k bytes (k >= 0 and the whole at most 2 KiB).
    """

    kind: int
    body: bytes

    @classmethod
    def fragment(cls, offset: int, more_fragments: bool, ident: int) -> Ipv6ExtensionHeader:
        if offset % 8 or not 0 <= offset < 65536:
            raise ValueError(f"IPv6: fragment offset {offset} is not a multiple of 8 below 65536")
        try:
            body = _FRAGMENT_BODY.pack(offset | int(bool(more_fragments)), ident)
        except struct.error as exc:
            raise ValueError(f"IPv6: fragment identification out of range: {exc}") from None
        return cls(FRAGMENT, body)

    def as_fragment(self) -> Ipv6Fragment:
        if self.kind != FRAGMENT or len(self.body) != 6:
            raise ValueError("IPv6: not a fragment header")
        word, ident = _FRAGMENT_BODY.unpack(self.body)
        return Ipv6Fragment(word & 0xFFF8, bool(word & 1), ident)

    @property
    def wire_len(self) -> int:
        return 2 + len(self.body)

    def length_byte(self) -> int:
        """The header's own length field, checking that the body size is encodable."""
        size = 2 + len(self.body)
        kind = self.kind
        if kind == FRAGMENT:
            if size != 8:
                raise ValueError(f"IPv6: fragment header body is {len(self.body)} bytes, not 6")
            return 0
        if kind == AUTH:
            if size % 4 or not 8 <= size <= (255 + 2) * 4:
                raise ValueError(f"IPv6: AH of {size} bytes; need a multiple of 4 from 8")
            return size // 4 - 2
        if kind in (HOP_BY_HOP, ROUTING, DEST_OPTIONS):
            if size % 8 or not 8 <= size <= 256 * 8:
                raise ValueError(f"IPv6: extension header of {size} bytes; need a multiple of 8")
            return size // 8 - 1
        raise ValueError(f"IPv6: {kind} is not an extension header type")


class Ipv6Packet:
    """Length-checked view of an IPv6 packet and its extension-header chain.

    After construction, :attr:`protocol` is the upper-layer protocol,
    :attr:`payload_offset` where its header starts, and :attr:`end` the end
    of the payload the payload length announces (bytes after it are link
    padding).  With ``truncated=True`` the payload may run past the buffer,
    as in the quote inside an ICMPv6 error.
    """

    __slots__ = ("buffer", "protocol", "payload_offset", "end", "extension_offsets")

    def __init__(self, data, *, truncated: bool = False) -> None:
        buf = byte_view(data)
        n = len(buf)
        if n < HEADER_LEN:
            raise MalformedPacket(f"IPv6: {n} bytes is shorter than the 40-byte header")
        if buf[0] >> 4 != 6:
            raise MalformedPacket(f"IPv6: version field is {buf[0] >> 4}, not 6")
        end = HEADER_LEN + _U16.unpack_from(buf, 4)[0]
        if end > n:
            if not truncated:
                raise MalformedPacket(
                    f"IPv6: payload length {end - HEADER_LEN} is beyond the {n - HEADER_LEN} "
                    "bytes after the header")
            end = n
        next_header = buf[6]
        offset = HEADER_LEN
        offsets = []
        while next_header in EXTENSION_HEADERS:
            if offset + 8 > end:
                raise MalformedPacket(
                    f"IPv6: extension header {next_header} at offset {offset} is truncated")
            if next_header == HOP_BY_HOP and offset != HEADER_LEN:
                raise MalformedPacket("IPv6: hop-by-hop options header is not the first header")
            if next_header == FRAGMENT:
                size = 8
            elif next_header == AUTH:
                size = (buf[offset + 1] + 2) * 4
            else:
                size = (buf[offset + 1] + 1) * 8
            if offset + size > end:
                raise MalformedPacket(
                    f"IPv6: extension header {next_header} of {size} bytes runs past the payload")
            offsets.append((next_header, offset, size))
            previous = next_header
            next_header = buf[offset]
            offset += size
            if previous == FRAGMENT and _U16.unpack_from(buf, offset - 6)[0] & 0xFFF8:
                break  # a later fragment: the rest is data, not headers
        self.buffer = buf
        self.protocol = next_header
        self.payload_offset = offset
        self.end = end
        self.extension_offsets = offsets

    @property
    def payload(self) -> memoryview:
        """The upper-layer header and data."""
        return self.buffer[self.payload_offset:self.end]


@faster_init
@dataclass(frozen=True, slots=True)
class Ipv6Repr:
    """An IPv6 header with its extension headers, without the payload length.

    ``protocol`` is the upper-layer protocol (the next header of the last
    extension header, or of the fixed header when there are none).
    """

    src: IPv6Address
    dst: IPv6Address
    protocol: int
    hop_limit: int = 64
    traffic_class: int = 0
    flow_label: int = 0
    extension_headers: tuple[Ipv6ExtensionHeader, ...] = ()

    @classmethod
    def parse(cls, data) -> Ipv6Repr:
        return cls.parse_with_payload(data)[0]

    @classmethod
    def parse_with_payload(cls, data) -> tuple[Ipv6Repr, memoryview]:
        """The header chain and a view of the upper-layer payload."""
        packet = Ipv6Packet(data)
        return cls._from_packet(packet), packet.payload

    @classmethod
    def parse_truncated(cls, data) -> tuple[Ipv6Repr, memoryview]:
        """Parse the start of a packet quoted in an ICMPv6 error, whose payload
        length may exceed the bytes present."""
        packet = Ipv6Packet(data, truncated=True)
        return cls._from_packet(packet), packet.payload

    @classmethod
    def _from_packet(cls, packet: Ipv6Packet) -> Ipv6Repr:
        buf = packet.buffer
        word, _, _, hop_limit, src, dst = _HEADER.unpack_from(buf)
        extensions = tuple(Ipv6ExtensionHeader(kind, bytes(buf[offset + 2:offset + size]))
                           for kind, offset, size in packet.extension_offsets)
        return _build_ipv6(ipv6_from_bytes(src), ipv6_from_bytes(dst), packet.protocol,
                           hop_limit, (word >> 20) & 0xFF, word & 0xFFFFF, extensions)

    @property
    def next_header(self) -> int:
        """The fixed header's next-header field."""
        return self.extension_headers[0].kind if self.extension_headers else self.protocol

    @property
    def header_len(self) -> int:
        return HEADER_LEN + sum(2 + len(ext.body) for ext in self.extension_headers)

    @property
    def fragment(self) -> Ipv6Fragment | None:
        """The fields of the fragment header, if there is one."""
        for ext in self.extension_headers:
            if ext.kind == FRAGMENT:
                return ext.as_fragment()
        return None

    def emit_into(self, buffer: bytearray | memoryview, offset: int, payload_len: int) -> int:
        """Write the header chain for an upper-layer payload of ``payload_len`` bytes."""
        if not (isinstance(self.src, IPv6Address) and isinstance(self.dst, IPv6Address)):
            raise ValueError("IPv6: src and dst must be IPv6Address")
        if not (0 <= self.traffic_class < 256 and 0 <= self.flow_label < 1 << 20):
            raise ValueError(f"IPv6: traffic class or flow label out of range in {self}")
        extensions = self.extension_headers
        if self.protocol in EXTENSION_HEADERS and not (
                extensions and extensions[-1].kind == FRAGMENT
                and extensions[-1].as_fragment().offset):
            raise ValueError(f"IPv6: protocol {self.protocol} is an extension header; "
                             "put it in extension_headers")
        header_len = self.header_len
        if header_len - HEADER_LEN + payload_len > 0xFFFF:
            raise ValueError(f"IPv6: payload of {header_len - HEADER_LEN + payload_len} bytes "
                             "needs a jumbogram, which is not supported")
        if header_len + offset > len(buffer):
            raise ValueError("IPv6: buffer too small for the header chain")
        try:
            _HEADER.pack_into(buffer, offset, 6 << 28 | self.traffic_class << 20 | self.flow_label,
                              header_len - HEADER_LEN + payload_len, self.next_header,
                              self.hop_limit, self.src.packed, self.dst.packed)
        except struct.error as exc:
            raise ValueError(f"IPv6: field out of range: {exc}") from None
        at = offset + HEADER_LEN
        for i, ext in enumerate(extensions):
            if i and ext.kind == HOP_BY_HOP:
                raise ValueError("IPv6: hop-by-hop options must be the first extension header")
            following = extensions[i + 1].kind if i + 1 < len(extensions) else self.protocol
            if not 0 <= following < 256:
                raise ValueError(f"IPv6: protocol {following} out of range")
            buffer[at] = following
            buffer[at + 1] = ext.length_byte()
            buffer[at + 2:at + 2 + len(ext.body)] = ext.body
            at += 2 + len(ext.body)
        return header_len

    def emit(self, payload=b"") -> bytes:
        buffer = bytearray(self.header_len + len(payload))
        n = self.emit_into(buffer, 0, len(payload))
        buffer[n:] = payload
        return bytes(buffer)


# Parsers build one of these per packet: the fast path of Ipv6Repr(...).
_build_ipv6 = fast_constructor(Ipv6Repr)
