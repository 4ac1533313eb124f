"""ICMPv6 (RFC 4443) and the neighbour-discovery messages a host needs (RFC 4861).

Echo, destination unreachable, packet too big (with its MTU), time exceeded,
parameter problem, neighbour solicitation and advertisement (target address
and Ethernet link-layer-address options).  Other types parse too: their
bytes after the checksum are kept in ``data``.  The checksum covers the IPv6
pseudo-header, so parse and emit take the addresses.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from ipaddress import IPv6Address

from ._buffer import byte_view
from ._fast_init import fast_constructor, faster_init
from .checksum import transport_checksum, transport_checksum_ok
from .errors import MalformedPacket
from .ethernet import MacAddress
from .quoted import QuotedPacket, parse_quoted_v6

PROTOCOL = 58
HEADER_LEN = 8
ND_HEADER_LEN = 24

_HEADER = struct.Struct("!BBHI")
_ECHO = struct.Struct("!BBHHH")
_PREFIX = struct.Struct("!BBH")

OPT_SOURCE_LLADDR = 1
OPT_TARGET_LLADDR = 2

NA_ROUTER = 0x80000000
NA_SOLICITED = 0x40000000
NA_OVERRIDE = 0x20000000


class Icmpv6Type(enum.IntEnum):
    DEST_UNREACHABLE = 1
    PACKET_TOO_BIG = 2
    TIME_EXCEEDED = 3
    PARAMETER_PROBLEM = 4
    ECHO_REQUEST = 128
    ECHO_REPLY = 129
    NEIGHBOR_SOLICIT = 135
    NEIGHBOR_ADVERT = 136


_ECHO_TYPES = frozenset({Icmpv6Type.ECHO_REQUEST, Icmpv6Type.ECHO_REPLY})
_ERRORS = frozenset({Icmpv6Type.DEST_UNREACHABLE, Icmpv6Type.PACKET_TOO_BIG,
                     Icmpv6Type.TIME_EXCEEDED, Icmpv6Type.PARAMETER_PROBLEM})
_ND = frozenset({Icmpv6Type.NEIGHBOR_SOLICIT, Icmpv6Type.NEIGHBOR_ADVERT})


_ND_FIELDS = ("target", "source_lladdr", "target_lladdr")
# The fields each type carries; any other type carries only ``data``.
_FIELDS_BY_TYPE = {
    Icmpv6Type.ECHO_REQUEST: ("ident", "seq", "data"),
    Icmpv6Type.ECHO_REPLY: ("ident", "seq", "data"),
    Icmpv6Type.PACKET_TOO_BIG: ("mtu", "data"), Icmpv6Type.PARAMETER_PROBLEM: ("pointer", "data"),
    Icmpv6Type.NEIGHBOR_SOLICIT: _ND_FIELDS, Icmpv6Type.NEIGHBOR_ADVERT: _ND_FIELDS + ("nd_flags",),
}


class Icmpv6Packet:
    """Length-checked view: 4 bytes for any type, 8 for echo and errors,
    24 for neighbour solicitation/advertisement."""

    __slots__ = ("buffer",)

    def __init__(self, data) -> None:
        buf = byte_view(data)
        n = len(buf)
        if n < 4:
            raise MalformedPacket(f"ICMPv6: {n} bytes is shorter than the 4-byte header")
        kind = buf[0]
        need = ND_HEADER_LEN if kind in _ND else \
            HEADER_LEN if (kind in _ECHO_TYPES or kind in _ERRORS) else 4
        if n < need:
            raise MalformedPacket(f"ICMPv6: type {kind} needs {need} bytes, got {n}")
        self.buffer = buf


def _parse_nd_options(opts: memoryview) -> tuple[MacAddress | None, MacAddress | None]:
    """Source and target link-layer addresses; other options are skipped."""
    source = target = None
    i = 0
    n = len(opts)
    while i < n:
        if i + 2 > n:
            raise MalformedPacket(f"ICMPv6: ND option at offset {i} is truncated")
        kind, units = opts[i], opts[i + 1]
        if units == 0:
            raise MalformedPacket(f"ICMPv6: ND option {kind} has length 0")
        end = i + units * 8
        if end > n:
            raise MalformedPacket(f"ICMPv6: ND option {kind} runs past the message")
        if kind in (OPT_SOURCE_LLADDR, OPT_TARGET_LLADDR):
            if units != 1:
                raise MalformedPacket(
                    f"ICMPv6: link-layer address option of {units * 8} bytes; only "
                    "Ethernet (8) is supported")
            address = MacAddress(opts[i + 2:i + 8])
            if kind == OPT_SOURCE_LLADDR:
                source = address
            else:
                target = address
        i = end
    return source, target


@faster_init
@dataclass(frozen=True, slots=True)
class Icmpv6Repr:
    """An ICMPv6 message.

    Which fields mean something depends on ``type``: echo uses ``ident``,
    ``seq`` and ``data``; packet too big ``mtu`` and ``data`` (the quote);
    parameter problem ``pointer`` and ``data``; the other errors ``data``;
    neighbour solicitation ``target`` and ``source_lladdr``; neighbour
    advertisement ``target``, ``nd_flags`` (NA_ROUTER | NA_SOLICITED |
    NA_OVERRIDE) and ``target_lladdr``.  For any other type ``data`` holds
    everything after the checksum.
    """

    type: int
    code: int = 0
    ident: int = 0
    seq: int = 0
    mtu: int = 0
    pointer: int = 0
    target: IPv6Address | None = None
    nd_flags: int = 0
    source_lladdr: MacAddress | None = None
    target_lladdr: MacAddress | None = None
    data: bytes = b""

    @classmethod
    def echo_request(cls, ident: int, seq: int, data: bytes = b"") -> Icmpv6Repr:
        return cls(Icmpv6Type.ECHO_REQUEST, 0, ident=ident, seq=seq, data=data)

    @classmethod
    def echo_reply(cls, ident: int, seq: int, data: bytes = b"") -> Icmpv6Repr:
        return cls(Icmpv6Type.ECHO_REPLY, 0, ident=ident, seq=seq, data=data)

    @classmethod
    def packet_too_big(cls, mtu: int, quoted: bytes) -> Icmpv6Repr:
        return cls(Icmpv6Type.PACKET_TOO_BIG, 0, mtu=mtu, data=quoted)

    @classmethod
    def dest_unreachable(cls, code: int, quoted: bytes) -> Icmpv6Repr:
        return cls(Icmpv6Type.DEST_UNREACHABLE, code, data=quoted)

    @classmethod
    def neighbor_solicit(cls, target: IPv6Address,
                         source_lladdr: MacAddress | None = None) -> Icmpv6Repr:
        return cls(Icmpv6Type.NEIGHBOR_SOLICIT, 0, target=target, source_lladdr=source_lladdr)

    @classmethod
    def neighbor_advert(cls, target: IPv6Address, flags: int,
                        target_lladdr: MacAddress | None = None) -> Icmpv6Repr:
        return cls(Icmpv6Type.NEIGHBOR_ADVERT, 0, target=target, nd_flags=flags,
                   target_lladdr=target_lladdr)

    @classmethod
    def parse(cls, data, src: IPv6Address, dst: IPv6Address, *,
              verify_checksum: bool = True) -> Icmpv6Repr:
        buf = Icmpv6Packet(data).buffer
        if verify_checksum and not transport_checksum_ok(src, dst, PROTOCOL, buf):
            raise MalformedPacket("ICMPv6: bad checksum")
        kind, code, _ = _PREFIX.unpack_from(buf)
        if not (kind in _ECHO_TYPES or kind in _ERRORS or kind in _ND):
            return _build_icmpv6(kind, code, data=bytes(buf[4:]))
        word = _HEADER.unpack_from(buf)[3]  # the view checked these types have 8 bytes
        if kind in _ECHO_TYPES:
            return _build_icmpv6(kind, code, ident=word >> 16, seq=word & 0xFFFF,
                                 data=bytes(buf[HEADER_LEN:]))
        if kind == Icmpv6Type.PACKET_TOO_BIG:
            return _build_icmpv6(kind, code, mtu=word, data=bytes(buf[HEADER_LEN:]))
        if kind == Icmpv6Type.PARAMETER_PROBLEM:
            return _build_icmpv6(kind, code, pointer=word, data=bytes(buf[HEADER_LEN:]))
        if kind in _ERRORS:
            return _build_icmpv6(kind, code, data=bytes(buf[HEADER_LEN:]))
        # Neighbour solicitation or advertisement.
        target = IPv6Address(bytes(buf[8:24]))
        source_ll, target_ll = _parse_nd_options(buf[ND_HEADER_LEN:])
        flags = word & 0xE0000000 if kind == Icmpv6Type.NEIGHBOR_ADVERT else 0
        return _build_icmpv6(kind, code, target=target, nd_flags=flags,
                             source_lladdr=source_ll, target_lladdr=target_ll)

    @property
    def is_error(self) -> bool:
        return self.type in _ERRORS

    @property
    def quoted(self) -> QuotedPacket:
        """The invoking packet of an error message, parsed (MalformedPacket if it is bad)."""
        if not self.is_error:
            raise ValueError(f"ICMPv6: type {self.type} is not an error message")
        return parse_quoted_v6(self.data)

    def _body(self) -> tuple[int | None, bytes]:
        """The 32-bit word after the checksum (or None) and the bytes after it."""
        kind = self.type
        # A field the type does not carry would be silently lost on the wire.
        used = _FIELDS_BY_TYPE.get(kind, ("data",))
        for name in ("ident", "seq", "mtu", "pointer", "target", "nd_flags", "source_lladdr",
                     "target_lladdr", "data"):
            value = getattr(self, name)
            if name not in used and value:
                raise ValueError(f"ICMPv6: type {kind} carries no {name}, got {value!r}")
        if kind in _ECHO_TYPES:
            if not (0 <= self.ident < 65536 and 0 <= self.seq < 65536):
                raise ValueError("ICMPv6: echo identifier or sequence out of range")
            return self.ident << 16 | self.seq, self.data
        if kind == Icmpv6Type.PACKET_TOO_BIG:
            return self.mtu, self.data
        if kind == Icmpv6Type.PARAMETER_PROBLEM:
            return self.pointer, self.data
        if kind in _ERRORS:
            return 0, self.data
        if kind in _ND:
            if not isinstance(self.target, IPv6Address):
                raise ValueError("ICMPv6: neighbour discovery needs an IPv6Address target")
            if self.nd_flags & ~0xE0000000:
                raise ValueError(f"ICMPv6: nd_flags 0x{self.nd_flags:x} has unknown bits")
            options = []
            for kind_, lladdr in ((OPT_SOURCE_LLADDR, self.source_lladdr),
                                  (OPT_TARGET_LLADDR, self.target_lladdr)):
                if lladdr is not None:
                    if len(lladdr) != 6:
                        raise ValueError("ICMPv6: link-layer addresses must be 6 bytes")
                    options.append(bytes((kind_, 1)) + bytes(lladdr))
            word = self.nd_flags if kind == Icmpv6Type.NEIGHBOR_ADVERT else 0
            return word, self.target.packed + b"".join(options)
        return None, self.data

    def emit(self, src: IPv6Address, dst: IPv6Address) -> bytes:
        buffer = bytearray(self.wire_len)
        self.emit_into(buffer, 0, src, dst)
        return bytes(buffer)

    @property
    def wire_len(self) -> int:
        """Bytes :meth:`emit` writes."""
        word, rest = self._body()
        return (4 if word is None else HEADER_LEN) + len(rest)

    @property
    def header_len(self) -> int:
        return 4 if self._body()[0] is None else HEADER_LEN

    def emit_into(self, buffer: bytearray | memoryview, offset: int,
                  src: IPv6Address, dst: IPv6Address) -> int:
        word, rest = self._body()
        try:
            if word is None:
                _PREFIX.pack_into(buffer, offset, self.type, self.code, 0)
                start = offset + 4
            else:
                _HEADER.pack_into(buffer, offset, self.type, self.code, 0, word)
                start = offset + HEADER_LEN
        except struct.error as exc:
            raise ValueError(f"ICMPv6: field out of range: {exc}") from None
        end = start + len(rest)
        if end > len(buffer):
            raise ValueError("ICMPv6: buffer too small for the message")
        buffer[start:end] = rest
        csum = transport_checksum(src, dst, PROTOCOL, memoryview(buffer)[offset:end])
        struct.pack_into("!H", buffer, offset + 2, csum)
        return end - offset


# Parsers build one of these per packet: the fast path of Icmpv6Repr(...).
_build_icmpv6 = fast_constructor(Icmpv6Repr)
