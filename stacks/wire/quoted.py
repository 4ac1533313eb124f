"""The invoking packet quoted inside an ICMP or ICMPv6 error message."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .ipv4 import Ipv4Repr
from .ipv6 import Ipv6Repr

_PORTS = struct.Struct("!HH")
_PORTED_PROTOCOLS = frozenset({6, 17})


@dataclass(frozen=True, slots=True)
class QuotedPacket:
    """An error's quote: the original IP header and the start of its payload.

    ``src_port``/``dst_port`` are the original TCP/UDP ports when the quote
    holds them (which is what a stack needs to find the flow), else None.
    """

    ip: Ipv4Repr | Ipv6Repr
    payload: bytes

    @property
    def protocol(self) -> int:
        return self.ip.protocol

    @property
    def src_port(self) -> int | None:
        return self._ports()[0]

    @property
    def dst_port(self) -> int | None:
        return self._ports()[1]

    def _ports(self) -> tuple[int | None, int | None]:
        if self.ip.protocol in _PORTED_PROTOCOLS and len(self.payload) >= 4:
            return _PORTS.unpack_from(self.payload)
        return None, None


def parse_quoted_v4(data) -> QuotedPacket:
    """The quote of an ICMP error (MalformedPacket if it is not the start of IPv4)."""
    ip, payload = Ipv4Repr.parse_truncated(data)
    return QuotedPacket(ip, bytes(payload))


def parse_quoted_v6(data) -> QuotedPacket:
    """The quote of an ICMPv6 error (MalformedPacket if it is not the start of IPv6)."""
    ip, payload = Ipv6Repr.parse_truncated(data)
    return QuotedPacket(ip, bytes(payload))

