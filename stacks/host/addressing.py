"""Address arithmetic the host layer needs: multicast MACs, solicited-node groups."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from stacks.wire.ethernet import BROADCAST, MacAddress

IPAddress = IPv4Address | IPv6Address
LIMITED_BROADCAST = IPv4Address("255.255.255.255")


def solicited_node(address: IPv6Address) -> IPv6Address:
    """The solicited-node multicast group of an address (RFC 4291, 2.7.1)."""
    return IPv6Address(b"\xff\x02" + bytes(9) + b"\x01\xff" + address.packed[13:])


def multicast_mac(address: IPAddress) -> MacAddress:
    """The Ethernet address an IP multicast (or broadcast) group maps to."""
    if address.version == 6:
        return MacAddress(b"\x33\x33" + address.packed[12:])  # RFC 2464, 7
    if address == LIMITED_BROADCAST:
        return BROADCAST
    # RFC 1112, 6.4: the low 23 bits of the group under 01:00:5e.
    low = address.packed[1:]
    return MacAddress(b"\x01\x00\x5e" + bytes([low[0] & 0x7F]) + low[1:])
