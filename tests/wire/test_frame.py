"""Whole frames: parse_frame's layers, build_frame's checks."""

from ipaddress import IPv4Address, IPv6Address

import pytest

from stacks.wire.arp import ArpRepr
from stacks.wire.errors import MalformedPacket
from stacks.wire.ethernet import EtherType, EthernetRepr, MacAddress, VlanTag
from stacks.wire.frame import Frame, build_frame, parse_frame
from stacks.wire.icmpv4 import Icmpv4Repr
from stacks.wire.icmpv6 import Icmpv6Repr
from stacks.wire.ipv4 import Ipv4Repr
from stacks.wire.ipv6 import Ipv6ExtensionHeader, Ipv6Repr
from stacks.wire.tcp import TcpFlags, TcpRepr
from stacks.wire.udp import UdpRepr

A, B = MacAddress("02:00:00:00:00:01"), MacAddress("02:00:00:00:00:02")
SRC4, DST4 = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")
SRC6, DST6 = IPv6Address("fd00::1"), IPv6Address("fd00::2")
ETH4 = EthernetRepr(B, A, EtherType.IPV4)
ETH6 = EthernetRepr(B, A, EtherType.IPV6, VlanTag(42))
SEGMENT = TcpRepr(40000, 80, 1, 2, TcpFlags.ACK | TcpFlags.PSH, 512, timestamp=(5, 6),
                  payload=b"GET /")


def test_tcp_over_ipv4_layers():
    ip = Ipv4Repr(SRC4, DST4, 6, dont_fragment=True)
    frame = parse_frame(build_frame(ETH4, ip, SEGMENT))
    assert frame == Frame(ETH4, ip, SEGMENT) and frame.payload == b""


def test_udp_over_tagged_ipv6_with_extension_headers():
    ip = Ipv6Repr(SRC6, DST6, 17, extension_headers=(Ipv6ExtensionHeader(60, bytes(6)),))
    datagram = UdpRepr(1, 2, b"hi")
    assert parse_frame(build_frame(ETH6, ip, datagram)) == Frame(ETH6, ip, datagram)


def test_parse_copies_out_of_the_buffer():
    buffer = bytearray(build_frame(ETH4, Ipv4Repr(SRC4, DST4, 6), SEGMENT))
    frame = parse_frame(memoryview(buffer))
    buffer[:] = bytes(len(buffer))  # the ring slot is reused
    assert frame.transport == SEGMENT


def test_fragments_are_not_parsed_past_ip():
    ip = Ipv4Repr(SRC4, DST4, 6, more_fragments=True, ident=5)
    frame = parse_frame(build_frame(ETH4, ip, payload=b"first 8!"))
    assert frame == Frame(ETH4, ip, None, b"first 8!")
    ip6 = Ipv6Repr(SRC6, DST6, 17, extension_headers=(
        Ipv6ExtensionHeader.fragment(8, False, 7),))
    frame6 = parse_frame(build_frame(ETH6, ip6, payload=b"tail"))
    assert frame6.transport is None and frame6.payload == b"tail"


def test_unknown_protocols_and_ethertypes_keep_their_payload():
    ip = Ipv4Repr(SRC4, DST4, 132)  # SCTP
    assert parse_frame(build_frame(ETH4, ip, payload=b"sctp")) == Frame(ETH4, ip, None, b"sctp")
    lldp = EthernetRepr(B, A, 0x88CC)
    assert parse_frame(build_frame(lldp, None, payload=b"lldp")) == Frame(lldp, None, None,
                                                                          b"lldp")


def test_icmp_only_over_its_own_ip_version():
    # ICMPv4 inside IPv6 (protocol 1) is not ICMPv6, and the reverse.
    ip6 = Ipv6Repr(SRC6, DST6, 1)
    assert parse_frame(build_frame(ETH6, ip6, payload=b"\x08\0\0\0")).transport is None
    ip4 = Ipv4Repr(SRC4, DST4, 58)
    assert parse_frame(build_frame(ETH4, ip4, payload=b"\x80\0\0\0")).transport is None


def test_arp_frame():
    arp = ArpRepr(1, A, SRC4, MacAddress(bytes(6)), DST4)
    eth = EthernetRepr(MacAddress(b"\xff" * 6), A, EtherType.ARP)
    assert parse_frame(build_frame(eth, arp)) == Frame(eth, arp)


def test_checksums_verified_unless_told_not_to():
    wire = bytearray(build_frame(ETH4, Ipv4Repr(SRC4, DST4, 6), SEGMENT))
    wire[-1] ^= 0xFF
    with pytest.raises(MalformedPacket, match="TCP: bad checksum"):
        parse_frame(bytes(wire))
    assert parse_frame(bytes(wire), verify_checksums=False).transport.payload == b"GET \xd0"


def test_malformed_inner_layer_is_malformed_frame():
    wire = build_frame(ETH4, Ipv4Repr(SRC4, DST4, 6), SEGMENT)
    with pytest.raises(MalformedPacket, match="IPv4: total length"):
        parse_frame(wire[:40])


@pytest.mark.parametrize("layers, message", [
    ((ETH6, Ipv4Repr(SRC4, DST4, 6), SEGMENT), "does not match"),
    ((ETH4, Ipv4Repr(SRC4, DST4, 17), SEGMENT), "protocol 17"),
    ((ETH4, Ipv4Repr(SRC4, DST4, 58), Icmpv6Repr.echo_request(1, 1)), "ICMPv6 over IPv6"),
    ((ETH6, Ipv6Repr(SRC6, DST6, 1), Icmpv4Repr.echo_request(1, 1)), "ICMPv6 over IPv6"),
    ((ETH4, ArpRepr(1, A, SRC4, B, DST4)), "ARP EtherType"),
    ((ETH4, None, SEGMENT), "needs a network layer"),
    ((ETH4, "10.0.0.1"), "unknown network layer"),
    ((ETH4, Ipv4Repr(SRC4, DST4, 6), "segment"), "unknown transport"),
])
def test_build_frame_checks_that_layers_agree(layers, message):
    with pytest.raises(ValueError, match=message):
        build_frame(*layers)


def test_build_frame_refuses_transport_and_payload_together():
    with pytest.raises(ValueError, match="not both"):
        build_frame(ETH4, Ipv4Repr(SRC4, DST4, 6), SEGMENT, b"extra")
