"""Ethernet II frames with an optional IEEE 802.1Q VLAN tag."""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from ._buffer import byte_view
from ._fast_init import fast_constructor, faster_init
from .errors import MalformedPacket

HEADER_LEN = 14
VLAN_HEADER_LEN = 18

_HEADER = struct.Struct("!6s6sH")
_VLAN_HEADER = struct.Struct("!6s6sHHH")
_U16 = struct.Struct("!H")


class EtherType(enum.IntEnum):
    IPV4 = 0x0800
    ARP = 0x0806
    VLAN = 0x8100
    IPV6 = 0x86DD


class MacAddress(bytes):
    """A 6-byte Ethernet address; ``str()`` gives the usual colon form."""

    __slots__ = ()

    def __new__(cls, value: bytes | bytearray | memoryview | str) -> MacAddress:
        if isinstance(value, str):
            return cls.from_str(value)
        self = super().__new__(cls, value)
        if len(self) != 6:
            raise ValueError(f"an Ethernet address has 6 bytes, not {len(self)}")
        return self

    @classmethod
    def from_str(cls, text: str) -> MacAddress:
        parts = text.replace("-", ":").split(":")
        try:
            if len(parts) != 6 or not all(1 <= len(p) <= 2 for p in parts):
                raise ValueError
            return super().__new__(cls, bytes(int(p, 16) for p in parts))
        except ValueError:
            raise ValueError(f"not an Ethernet address: {text!r}") from None

    @property
    def is_multicast(self) -> bool:
        return bool(self[0] & 1)

    @property
    def is_broadcast(self) -> bool:
        return self == BROADCAST

    def __str__(self) -> str:
        return ":".join(f"{b:02x}" for b in self)

    def __repr__(self) -> str:
        return f"MacAddress('{self}')"


BROADCAST = MacAddress(b"\xff" * 6)
_new_bytes = bytes.__new__


@dataclass(frozen=True, slots=True)
class VlanTag:
    """An 802.1Q tag: VLAN id, priority code point, drop-eligible bit."""

    vid: int
    pcp: int = 0
    dei: bool = False

    @property
    def tci(self) -> int:
        if not (0 <= self.vid <= 0xFFF and 0 <= self.pcp <= 7):
            raise ValueError(f"VLAN tag out of range: vid {self.vid}, pcp {self.pcp}")
        return (self.pcp << 13) | (int(self.dei) << 12) | self.vid


class EthernetFrame:
    """Length-checked view of an Ethernet frame (FCS not included)."""

    __slots__ = ("buffer", "header_len")

    def __init__(self, data) -> None:
        buf = byte_view(data)
        if len(buf) < HEADER_LEN:
            raise MalformedPacket(f"Ethernet: {len(buf)} bytes is shorter than the 14-byte header")
        header_len = HEADER_LEN
        if _U16.unpack_from(buf, 12)[0] == EtherType.VLAN:
            if len(buf) < VLAN_HEADER_LEN:
                raise MalformedPacket(
                    f"Ethernet: 802.1Q-tagged frame of {len(buf)} bytes has no room for its "
                    "inner EtherType")
            header_len = VLAN_HEADER_LEN
        self.buffer = buf
        self.header_len = header_len

    @property
    def ethertype(self) -> int:
        """The EtherType of the payload (the inner one on a tagged frame)."""
        return _U16.unpack_from(self.buffer, self.header_len - 2)[0]

    @property
    def payload(self) -> memoryview:
        return self.buffer[self.header_len:]


@faster_init
@dataclass(frozen=True, slots=True)
class EthernetRepr:
    dst: MacAddress
    src: MacAddress
    ethertype: int
    vlan: VlanTag | None = None

    @classmethod
    def parse(cls, data) -> EthernetRepr:
        return cls.parse_with_payload(data)[0]

    @classmethod
    def parse_with_payload(cls, data) -> tuple[EthernetRepr, memoryview]:
        """The header and a view of the payload (padding included; IP trims it)."""
        frame = EthernetFrame(data)
        buf = frame.buffer
        if frame.header_len == HEADER_LEN:
            dst, src, ethertype = _HEADER.unpack_from(buf)
            vlan = None
        else:
            dst, src, _, tci, ethertype = _VLAN_HEADER.unpack_from(buf)
            vlan = VlanTag(tci & 0xFFF, tci >> 13, bool(tci & 0x1000))
        # struct gave exactly 6 bytes each: skip MacAddress's own length check
        return (_build_ethernet(_new_bytes(MacAddress, dst), _new_bytes(MacAddress, src),
                                ethertype, vlan),
                buf[frame.header_len:])

    @property
    def header_len(self) -> int:
        return HEADER_LEN if self.vlan is None else VLAN_HEADER_LEN

    def header_bytes(self) -> bytes:
        """The header (14 bytes, or 18 with a VLAN tag)."""
        dst, src, vlan = self.dst, self.src, self.vlan
        if len(dst) != 6 or len(src) != 6:  # struct would pad or cut them silently
            raise ValueError("Ethernet: addresses must be 6 bytes")
        try:
            if vlan is None:
                if self.ethertype == EtherType.VLAN:
                    raise ValueError("Ethernet: give a VLAN tag through `vlan`, not the EtherType")
                return _HEADER.pack(dst, src, self.ethertype)
            return _VLAN_HEADER.pack(dst, src, EtherType.VLAN, vlan.tci, self.ethertype)
        except struct.error as exc:
            raise ValueError(f"Ethernet: cannot encode header: {exc}") from None

    def emit_into(self, buffer: bytearray | memoryview, offset: int = 0) -> int:
        """Write the header at ``buffer[offset:]``; return its length."""
        header = self.header_bytes()
        if offset + len(header) > len(buffer):
            raise ValueError("Ethernet: buffer too small for the header")
        buffer[offset:offset + len(header)] = header
        return len(header)

    def emit(self, payload=b"") -> bytes:
        return self.header_bytes() + payload


# Parsers build one of these per packet: the fast path of EthernetRepr(...).
_build_ethernet = fast_constructor(EthernetRepr)
