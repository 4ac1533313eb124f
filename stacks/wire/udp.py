"""UDP datagrams (RFC 768), checksum over the IPv4 or IPv6 pseudo-header."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from ._buffer import byte_view
from ._fast_init import fast_constructor, faster_init
from .checksum import (checksum, partial_sum, pseudo_header_sum, transport_checksum,
                       transport_checksum_ok)
from .errors import MalformedPacket

PROTOCOL = 17
HEADER_LEN = 8

_HEADER = struct.Struct("!HHHH")
_U16 = struct.Struct("!H")


class UdpPacket:
    """Length-checked view of a UDP datagram: 8 <= length field <= buffer.

    Bytes past the length field are not part of the datagram.
    """

    __slots__ = ("buffer", "length")

    def __init__(self, data) -> None:
        buf = byte_view(data)
        if len(buf) < HEADER_LEN:
            raise MalformedPacket(f"UDP: {len(buf)} bytes is shorter than the 8-byte header")
        length = _HEADER.unpack_from(buf)[2]
        if length < HEADER_LEN:
            raise MalformedPacket(f"UDP: length field {length} is below 8")
        if length > len(buf):
            raise MalformedPacket(
                f"UDP: length field {length} is beyond the {len(buf)}-byte buffer")
        self.buffer = buf
        self.length = length

    @property
    def checksum(self) -> int:
        return _HEADER.unpack_from(self.buffer)[3]

    @property
    def payload(self) -> memoryview:
        return self.buffer[HEADER_LEN:self.length]


@faster_init
@dataclass(frozen=True, slots=True)
class UdpRepr:
    src_port: int
    dst_port: int
    payload: bytes = b""

    @classmethod
    def parse(cls, data, src: IPv4Address | IPv6Address, dst: IPv4Address | IPv6Address,
              *, verify_checksum: bool = True) -> UdpRepr:
        """Decode a datagram sent from ``src`` to ``dst``.

        A zero checksum means "none" over IPv4 and is malformed over IPv6
        (RFC 8200, 8.1); with ``verify_checksum`` false neither is checked.
        """
        packet = UdpPacket(data)
        buf = packet.buffer
        src_port, dst_port, length, wire_checksum = _HEADER.unpack_from(buf)
        if verify_checksum:
            if wire_checksum == 0:
                if src.version == 6:
                    raise MalformedPacket("UDP: zero checksum over IPv6")
            elif not transport_checksum_ok(src, dst, PROTOCOL, buf[:length]):
                raise MalformedPacket("UDP: bad checksum")
        return _build_udp(src_port, dst_port, bytes(buf[HEADER_LEN:length]))

    @property
    def header_len(self) -> int:
        return HEADER_LEN

    def emit_into(self, buffer: bytearray | memoryview, offset: int,
                  src: IPv4Address | IPv6Address, dst: IPv4Address | IPv6Address) -> int:
        length = HEADER_LEN + len(self.payload)
        end = offset + length
        if end > len(buffer):
            raise ValueError(f"UDP: datagram needs {length} bytes, buffer has "
                             f"{len(buffer) - offset}")
        try:
            _HEADER.pack_into(buffer, offset, self.src_port, self.dst_port, length, 0)
        except struct.error as exc:
            raise ValueError(f"UDP: field out of range: {exc}") from None
        buffer[offset + HEADER_LEN:end] = self.payload
        value = transport_checksum(src, dst, PROTOCOL, memoryview(buffer)[offset:end])
        # A computed zero is sent as all ones: zero on the wire means "no checksum".
        _U16.pack_into(buffer, offset + 6, value or 0xFFFF)
        return length

    def emit(self, src: IPv4Address | IPv6Address, dst: IPv4Address | IPv6Address) -> bytes:
        """The whole datagram with its checksum over the pseudo-header of ``src``/``dst``."""
        payload = self.payload
        length = HEADER_LEN + len(payload)
        try:
            header = _HEADER.pack(self.src_port, self.dst_port, length, 0)
        except struct.error as exc:
            raise ValueError(f"UDP: field out of range: {exc}") from None
        value = checksum(payload, partial_sum(header, pseudo_header_sum(src, dst, PROTOCOL,
                                                                        length)))
        # A computed zero is sent as all ones: zero on the wire means "no checksum".
        return header[:6] + _U16.pack(value or 0xFFFF) + payload


# Parsers build one of these per packet: the fast path of UdpRepr(...).
_build_udp = fast_constructor(UdpRepr)
