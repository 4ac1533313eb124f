"""ARP (RFC 826) for IPv4 over Ethernet, the only pairing MultiStack meets."""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

from ._addresses import ipv4_from_bytes
from ._buffer import byte_view
from .errors import MalformedPacket
from .ethernet import MacAddress

PACKET_LEN = 28

_PACKET = struct.Struct("!HHBBH6s4s6s4s")
_PREFIX = struct.Struct("!HHBB")
_ETHERNET_IPV4 = (1, 0x0800, 6, 4)


class ArpOperation(enum.IntEnum):
    REQUEST = 1
    REPLY = 2


class ArpPacket:
    """Length-checked view of an ARP packet; accepts only Ethernet/IPv4."""

    __slots__ = ("buffer",)

    def __init__(self, data) -> None:
        buf = byte_view(data)
        if len(buf) < PACKET_LEN:
            raise MalformedPacket(f"ARP: {len(buf)} bytes is shorter than the 28-byte packet")
        prefix = _PREFIX.unpack_from(buf)
        if prefix != _ETHERNET_IPV4:
            raise MalformedPacket(
                "ARP: only Ethernet/IPv4 is supported, got hardware type {}, protocol "
                "0x{:04x}, lengths {}/{}".format(*prefix))
        self.buffer = buf


@dataclass(frozen=True, slots=True)
class ArpRepr:
    operation: int
    sender_mac: MacAddress
    sender_ip: IPv4Address
    target_mac: MacAddress
    target_ip: IPv4Address

    @classmethod
    def parse(cls, data) -> ArpRepr:
        buf = ArpPacket(data).buffer
        _, _, _, _, op, sha, spa, tha, tpa = _PACKET.unpack_from(buf)
        return cls(op, MacAddress(sha), ipv4_from_bytes(spa), MacAddress(tha), ipv4_from_bytes(tpa))

    def emit(self) -> bytes:
        if len(self.sender_mac) != 6 or len(self.target_mac) != 6:
            raise ValueError("ARP: hardware addresses must be 6 bytes")
        try:
            return _PACKET.pack(*_ETHERNET_IPV4, self.operation, self.sender_mac,
                                self.sender_ip.packed, self.target_mac, self.target_ip.packed)
        except (struct.error, AttributeError) as exc:
            raise ValueError(f"ARP: cannot encode: {exc}") from None
