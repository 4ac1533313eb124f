"""ICMP for IPv4 (RFC 792): echo, destination unreachable (with the RFC 1191
next-hop MTU of "fragmentation needed"), time exceeded, parameter problem.

Other types parse too: their bytes after the checksum are kept in ``data``.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from ._buffer import byte_view
from ._fast_init import fast_constructor, faster_init
from .checksum import checksum
from .errors import MalformedPacket
from .quoted import QuotedPacket, parse_quoted_v4

PROTOCOL = 1
HEADER_LEN = 8

_HEADER = struct.Struct("!BBHHH")
_PREFIX = struct.Struct("!BBH")


class Icmpv4Type(enum.IntEnum):
    ECHO_REPLY = 0
    DEST_UNREACHABLE = 3
    ECHO_REQUEST = 8
    TIME_EXCEEDED = 11
    PARAMETER_PROBLEM = 12


class DestUnreachable(enum.IntEnum):
    NET = 0
    HOST = 1
    PROTOCOL = 2
    PORT = 3
    FRAGMENTATION_NEEDED = 4
    SOURCE_ROUTE_FAILED = 5
    ADMIN_PROHIBITED = 13


_ECHO = frozenset({Icmpv4Type.ECHO_REPLY, Icmpv4Type.ECHO_REQUEST})
_ERRORS = frozenset({Icmpv4Type.DEST_UNREACHABLE, Icmpv4Type.TIME_EXCEEDED,
                     Icmpv4Type.PARAMETER_PROBLEM})


# The fields besides ``data`` that each type carries in its second word.
_FIELDS_BY_TYPE = {
    Icmpv4Type.ECHO_REPLY: ("ident", "seq"), Icmpv4Type.ECHO_REQUEST: ("ident", "seq"),
    Icmpv4Type.DEST_UNREACHABLE: ("next_hop_mtu",), Icmpv4Type.PARAMETER_PROBLEM: ("pointer",),
}


class Icmpv4Packet:
    """Length-checked view: 4 bytes for any type, 8 for echo and error types."""

    __slots__ = ("buffer",)

    def __init__(self, data) -> None:
        buf = byte_view(data)
        if len(buf) < 4:
            raise MalformedPacket(f"ICMP: {len(buf)} bytes is shorter than the 4-byte header")
        if len(buf) < HEADER_LEN and (buf[0] in _ECHO or buf[0] in _ERRORS):
            raise MalformedPacket(f"ICMP: type {buf[0]} needs 8 bytes, got {len(buf)}")
        self.buffer = buf


@faster_init
@dataclass(frozen=True, slots=True)
class Icmpv4Repr:
    """An ICMP message.

    Which fields mean something depends on ``type``: echo uses ``ident``,
    ``seq`` and ``data`` (the echoed bytes); destination unreachable uses
    ``next_hop_mtu`` (for code 4) and ``data`` (the quoted packet); time
    exceeded uses ``data``; parameter problem ``pointer`` and ``data``.  For
    any other type ``data`` holds everything after the checksum.
    """

    type: int
    code: int
    ident: int = 0
    seq: int = 0
    next_hop_mtu: int = 0
    pointer: int = 0
    data: bytes = b""

    @classmethod
    def echo_request(cls, ident: int, seq: int, data: bytes = b"") -> Icmpv4Repr:
        return cls(Icmpv4Type.ECHO_REQUEST, 0, ident=ident, seq=seq, data=data)

    @classmethod
    def echo_reply(cls, ident: int, seq: int, data: bytes = b"") -> Icmpv4Repr:
        return cls(Icmpv4Type.ECHO_REPLY, 0, ident=ident, seq=seq, data=data)

    @classmethod
    def dest_unreachable(cls, code: int, quoted: bytes, next_hop_mtu: int = 0) -> Icmpv4Repr:
        return cls(Icmpv4Type.DEST_UNREACHABLE, code, next_hop_mtu=next_hop_mtu, data=quoted)

    @classmethod
    def time_exceeded(cls, code: int, quoted: bytes) -> Icmpv4Repr:
        return cls(Icmpv4Type.TIME_EXCEEDED, code, data=quoted)

    @classmethod
    def parse(cls, data, *, verify_checksum: bool = True) -> Icmpv4Repr:
        buf = Icmpv4Packet(data).buffer
        if verify_checksum and checksum(buf) != 0:
            raise MalformedPacket("ICMP: bad checksum")
        kind, code, _ = _PREFIX.unpack_from(buf)
        if kind in _ECHO:
            _, _, _, ident, seq = _HEADER.unpack_from(buf)
            return _build_icmpv4(kind, code, ident=ident, seq=seq, data=bytes(buf[HEADER_LEN:]))
        if kind == Icmpv4Type.DEST_UNREACHABLE:
            _, _, _, _, mtu = _HEADER.unpack_from(buf)
            return _build_icmpv4(kind, code, next_hop_mtu=mtu, data=bytes(buf[HEADER_LEN:]))
        if kind == Icmpv4Type.PARAMETER_PROBLEM:
            return _build_icmpv4(kind, code, pointer=buf[4], data=bytes(buf[HEADER_LEN:]))
        if kind in _ERRORS:
            return _build_icmpv4(kind, code, data=bytes(buf[HEADER_LEN:]))
        return _build_icmpv4(kind, code, data=bytes(buf[4:]))

    @property
    def is_error(self) -> bool:
        return self.type in _ERRORS

    @property
    def quoted(self) -> QuotedPacket:
        """The invoking packet of an error message, parsed (MalformedPacket if it is bad)."""
        if not self.is_error:
            raise ValueError(f"ICMP: type {self.type} is not an error message")
        return parse_quoted_v4(self.data)

    @property
    def header_len(self) -> int:
        return HEADER_LEN if (self.type in _ECHO or self.type in _ERRORS) else 4

    @property
    def wire_len(self) -> int:
        """Bytes :meth:`emit` writes."""
        return self.header_len + len(self.data)

    def _check_unused_fields(self) -> None:
        # A field the type does not carry would be silently lost on the wire.
        kind = self.type
        used = _FIELDS_BY_TYPE.get(kind, ())
        for name in ("ident", "seq", "next_hop_mtu", "pointer"):
            if name not in used and getattr(self, name):
                raise ValueError(f"ICMP: type {kind} carries no {name}, got {getattr(self, name)}")

    def emit_into(self, buffer: bytearray | memoryview, offset: int = 0) -> int:
        self._check_unused_fields()
        kind = self.type
        try:
            if kind in _ECHO:
                _HEADER.pack_into(buffer, offset, kind, self.code, 0, self.ident, self.seq)
            elif kind == Icmpv4Type.DEST_UNREACHABLE:
                _HEADER.pack_into(buffer, offset, kind, self.code, 0, 0, self.next_hop_mtu)
            elif kind == Icmpv4Type.PARAMETER_PROBLEM:
                _HEADER.pack_into(buffer, offset, kind, self.code, 0, self.pointer << 8, 0)
            elif kind in _ERRORS:
                _HEADER.pack_into(buffer, offset, kind, self.code, 0, 0, 0)
            else:
                _PREFIX.pack_into(buffer, offset, kind, self.code, 0)
        except struct.error as exc:
            raise ValueError(f"ICMP: field out of range: {exc}") from None
        start = offset + self.header_len
        end = start + len(self.data)
        if end > len(buffer):
            raise ValueError("ICMP: buffer too small for the message")
        buffer[start:end] = self.data
        _PREFIX.pack_into(buffer, offset, kind, self.code,
                          checksum(memoryview(buffer)[offset:end]))
        return end - offset

    def emit(self) -> bytes:
        buffer = bytearray(self.wire_len)
        self.emit_into(buffer)
        return bytes(buffer)


# Parsers build one of these per packet: the fast path of Icmpv4Repr(...).
_build_icmpv4 = fast_constructor(Icmpv4Repr)
