"""The length-checked views read the same fields as the representations, without copying."""

from ipaddress import IPv4Address, IPv6Address

from stacks.wire.arp import ArpPacket, ArpRepr
from stacks.wire.ethernet import EthernetFrame, EthernetRepr, EtherType, MacAddress, VlanTag
from stacks.wire.icmpv4 import Icmpv4Packet, Icmpv4Repr
from stacks.wire.icmpv6 import Icmpv6Packet, Icmpv6Repr
from stacks.wire.ipv4 import Ipv4Packet, Ipv4Repr
from stacks.wire.ipv6 import Ipv6ExtensionHeader, Ipv6Packet, Ipv6Repr
from stacks.wire.tcp import TcpFlags, TcpPacket, TcpRepr
from stacks.wire.udp import UdpPacket, UdpRepr

SRC4, DST4 = IPv4Address("192.0.2.1"), IPv4Address("192.0.2.2")
SRC6, DST6 = IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2")
MAC = MacAddress("02:00:00:00:00:01")


def test_tcp_view():
    wire = bytearray(TcpRepr(1234, 80, 7, 8, TcpFlags.SYN, 100, mss=1460, payload=b"x")
                     .emit(SRC4, DST4))
    view = TcpPacket(wire)
    assert (view.src_port, view.dst_port, view.flags, view.header_len) == \
        (1234, 80, TcpFlags.SYN, 24)
    assert bytes(view.options) == b"\x02\x04\x05\xb4" and bytes(view.payload) == b"x"
    assert view.fields()[2:4] == (7, 8) and view.checksum == int.from_bytes(wire[16:18], "big")
    wire[-1] = ord("y")  # a view, not a copy
    assert bytes(view.payload) == b"y"


def test_udp_view():
    view = UdpPacket(UdpRepr(1, 2, b"abc").emit(SRC6, DST6) + b"pad")
    assert view.length == 11 and bytes(view.payload) == b"abc" and view.checksum != 0


def test_ip_views():
    ip4 = Ipv4Packet(Ipv4Repr(SRC4, DST4, 17, options=b"\x01" * 4).emit(b"data") + b"pad")
    assert (ip4.header_len, ip4.total_len) == (24, 28) and ip4.checksum_ok()
    assert bytes(ip4.payload) == b"data" and len(ip4.header) == 24
    ip6 = Ipv6Packet(Ipv6Repr(SRC6, DST6, 6, extension_headers=(
        Ipv6ExtensionHeader.fragment(0, False, 1),)).emit(b"seg"))
    assert (ip6.protocol, ip6.payload_offset, bytes(ip6.payload)) == (6, 48, b"seg")
    assert ip6.extension_offsets == [(44, 40, 8)]


def test_link_views():
    frame = EthernetFrame(EthernetRepr(MAC, MAC, EtherType.ARP, VlanTag(3)).emit(b"arp"))
    assert (frame.header_len, frame.ethertype, bytes(frame.payload)) == (18, 0x0806, b"arp")
    arp = ArpRepr(2, MAC, SRC4, MAC, DST4).emit()
    assert bytes(ArpPacket(arp).buffer) == arp


def test_icmp_views():
    assert bytes(Icmpv4Packet(Icmpv4Repr.echo_request(1, 2).emit()).buffer)[:1] == b"\x08"
    message = Icmpv6Repr.neighbor_solicit(DST6, MAC).emit(SRC6, DST6)
    assert len(Icmpv6Packet(message).buffer) == 32
