"""The sans-IO UDP layer on a hand-driven Host."""

import sys
from ipaddress import IPv4Address
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))
from hostkit import (HOST_MAC, HOST_V4, HOST_V6, PEER_MAC, PEER_V4, PEER_V6, ArpOp, arp,  # noqa: E402
                     ipv4, ipv6, make_host, raw_ipv4)

from stacks.host import IcmpErrorKind, PacketTooBig  # noqa: E402
from stacks.udp import UdpLayer  # noqa: E402
from stacks.wire.ethernet import EtherType, EthernetRepr, MacAddress  # noqa: E402
from stacks.wire.frame import build_frame, parse_frame  # noqa: E402
from stacks.wire.icmpv4 import Icmpv4Repr  # noqa: E402
from stacks.wire.ipv4 import Ipv4Repr  # noqa: E402
from stacks.wire.ipv6 import Ipv6Repr  # noqa: E402
from stacks.wire.udp import UdpRepr  # noqa: E402


@pytest.fixture
def layer():
    host, clock = make_host()
    layer = UdpLayer.of(host)
    # The peer is known, so sends go out at once.
    host.handle_frame(arp(ArpOp.REQUEST, PEER_MAC, PEER_V4, MacAddress(bytes(6)), HOST_V4), clock.now)
    host.take_output()
    return layer


def deliver(layer, frame):
    layer.host.handle_frame(frame, layer.host._clock())


def test_of_returns_the_same_layer(layer):
    assert UdpLayer.of(layer.host) is layer


def test_bind_rules(layer):
    layer.bind("10.1.0.1", 53)
    with pytest.raises(OSError) as in_use:
        layer.bind("10.1.0.1", 53)
    assert in_use.value.errno == 98
    with pytest.raises(OSError):
        layer.bind("0.0.0.0", 53)  # the wildcard overlaps the specific binding
    layer.bind("::", 53)  # other family: free
    with pytest.raises(ValueError, match="not an address of this host"):
        layer.bind("10.1.0.9", 54)
    with pytest.raises(ValueError):
        layer.bind("10.1.0.1", 70000)
    ephemeral = layer.bind("10.1.0.1", 0)
    assert 49152 <= ephemeral.port <= 65535
    ephemeral.close()
    assert layer.lookup(HOST_V4, ephemeral.port) is None


def test_datagrams_reach_the_bound_endpoint_exact_before_wildcard(layer):
    exact = layer.bind("10.1.0.1", 7)
    wild = layer.bind("0.0.0.0", 8)
    wild6 = layer.bind("::", 7)
    deliver(layer, ipv4(PEER_V4, HOST_V4, UdpRepr(4000, 7, b"to seven")))
    deliver(layer, ipv4(PEER_V4, HOST_V4, UdpRepr(4000, 8, b"to eight")))
    deliver(layer, ipv6(PEER_V6, HOST_V6, UdpRepr(4000, 7, b"six")))
    (d,) = exact.received
    assert (d.data, d.src, d.dst) == (b"to seven", (PEER_V4, 4000), (HOST_V4, 7))
    assert [x.data for x in wild.received] == [b"to eight"]
    assert [x.data for x in wild6.received] == [b"six"]
    assert layer.counters["rx_datagrams"] == 3


def _corrupt_last_byte(frame):
    return frame[:-1] + bytes([frame[-1] ^ 0xFF])


def test_bad_and_unwanted_datagrams_are_counted(layer):
    layer.bind("10.1.0.1", 7)
    deliver(layer, _corrupt_last_byte(ipv4(PEER_V4, HOST_V4, UdpRepr(1, 7, b"abc"))))
    deliver(layer, ipv4(PEER_V4, HOST_V4, UdpRepr(1, 9, b"nobody home")))
    deliver(layer, raw_ipv4(PEER_V4, HOST_V4, 17, b"\x00\x01\x00\x07\x00\x03\x00\x00"))  # length 3 < 8
    assert layer.counters == {"drop_malformed": 2, "drop_no_endpoint": 1}


def test_zero_checksum_means_none_over_ipv4_but_is_invalid_over_ipv6(layer):
    e4 = layer.bind("10.1.0.1", 7)
    e6 = layer.bind("fd00:1::1", 7)
    no_sum = (1).to_bytes(2, "big") + (7).to_bytes(2, "big") + (10).to_bytes(2, "big") + b"\0\0hi"
    deliver(layer, raw_ipv4(PEER_V4, HOST_V4, 17, no_sum))
    deliver(layer, build_frame(EthernetRepr(HOST_MAC, PEER_MAC, EtherType.IPV6),
                               Ipv6Repr(PEER_V6, HOST_V6, 17), payload=no_sum))
    assert [d.data for d in e4.received] == [b"hi"]
    assert not e6.received
    assert layer.counters["drop_malformed"] == 1


def test_receive_queue_is_bounded(layer):
    endpoint = layer.bind("10.1.0.1", 7, queue_limit=3)
    for i in range(5):
        deliver(layer, ipv4(PEER_V4, HOST_V4, UdpRepr(1, 7, b"%d" % i)))
    assert [d.data for d in endpoint.received] == [b"0", b"1", b"2"]
    assert endpoint.dropped == 2 and layer.counters["drop_queue_full"] == 2


def test_send_builds_a_checksummed_datagram(layer):
    endpoint = layer.bind("0.0.0.0", 5000)
    endpoint.send(b"payload", PEER_V4, 53)
    (frame,) = layer.host.take_output()
    parsed = parse_frame(frame)  # verifies the UDP checksum
    assert parsed.network.src == HOST_V4  # the wildcard picked our address on that network
    assert parsed.transport == UdpRepr(5000, 53, b"payload")
    from scapy.layers.inet import UDP
    from scapy.layers.l2 import Ether

    packet = Ether(frame)
    ours = packet[UDP].chksum
    del packet[UDP].chksum  # scapy recomputes it on build
    assert Ether(bytes(packet))[UDP].chksum == ours


def test_send_refuses_what_cannot_be_sent(layer):
    endpoint = layer.bind("10.1.0.1", 5000)
    with pytest.raises(ValueError):
        endpoint.send(b"x", PEER_V6, 53)  # wrong family
    with pytest.raises(ValueError):
        endpoint.send(b"x", PEER_V4, 0)
    with pytest.raises(ValueError):
        endpoint.send(b"x" * 70000, PEER_V4, 53)
    with pytest.raises(ValueError):
        endpoint.send(b"x", PEER_V4, 53, source=IPv4Address("10.1.0.77"))
    endpoint.send(b"x" * 1472, PEER_V4, 53)  # fills the 1500-byte MTU exactly
    endpoint.close()
    with pytest.raises(ValueError):
        endpoint.send(b"x", PEER_V4, 53)


def test_datagrams_over_the_mtu_go_out_in_fragments(layer):
    endpoint = layer.bind("10.1.0.1", 5000)
    endpoint.send(b"y" * 1473, PEER_V4, 53)  # one byte over the 1500-byte MTU
    frames = [Ipv4Repr.parse_with_payload(f[14:]) for f in layer.host.take_output()]
    assert [(ip.fragment_offset, ip.more_fragments) for ip, _ in frames] == [(0, True), (1480, False)]
    assert len({ip.ident for ip, _ in frames}) == 1
    assert all(len(f) <= 1500 for _, f in frames)
    segment = b"".join(bytes(payload) for _, payload in frames)
    assert UdpRepr.parse(segment, HOST_V4, PEER_V4) == UdpRepr(5000, 53, b"y" * 1473)
    assert layer.host.counters["tx_datagrams_fragmented"] == 1
    with pytest.raises(PacketTooBig):
        endpoint.send(b"y" * (65535 - 28 + 1), PEER_V4, 53)  # no IPv4 datagram is that big


def test_over_a_shared_nic_big_datagrams_are_refused(layer):
    layer.host.owns_link = False  # the kernel module refuses fragments; the OS owns them
    endpoint = layer.bind("10.1.0.1", 5000)
    with pytest.raises(PacketTooBig) as too_big:
        endpoint.send(b"y" * 1473, PEER_V4, 53)
    assert too_big.value.mtu == 1500


def test_icmp_errors_reach_the_endpoint_that_sent(layer):
    endpoint = layer.bind("10.1.0.1", 5000)
    quoted = Ipv4Repr(HOST_V4, PEER_V4, 17).emit(UdpRepr(5000, 53, b"q").emit(HOST_V4, PEER_V4))
    deliver(layer, ipv4(PEER_V4, HOST_V4, Icmpv4Repr.dest_unreachable(3, quoted)))
    other = Ipv4Repr(HOST_V4, PEER_V4, 17).emit(UdpRepr(5999, 53, b"q").emit(HOST_V4, PEER_V4))
    deliver(layer, ipv4(PEER_V4, HOST_V4, Icmpv4Repr.dest_unreachable(3, other)))
    (error,) = endpoint.errors
    assert error.kind is IcmpErrorKind.UNREACHABLE and error.dst_port == 53
    assert layer.counters["drop_icmp_error_no_endpoint"] == 1


def test_frag_needed_for_a_bound_endpoint_sets_the_path_mtu(layer):
    layer.host.owns_link = False        # no fragmenting: the path MTU caps each datagram
    endpoint = layer.bind("10.1.0.1", 5000)
    quoted = Ipv4Repr(HOST_V4, PEER_V4, 17).emit(UdpRepr(5999, 53, b"q").emit(HOST_V4, PEER_V4))
    deliver(layer, ipv4(PEER_V4, HOST_V4, Icmpv4Repr.dest_unreachable(4, quoted, 1200)))
    assert layer.host.path_mtu(PEER_V4) == 1500     # no endpoint sent that: not believed
    quoted = Ipv4Repr(HOST_V4, PEER_V4, 17).emit(UdpRepr(5000, 53, b"q").emit(HOST_V4, PEER_V4))
    deliver(layer, ipv4(PEER_V4, HOST_V4, Icmpv4Repr.dest_unreachable(4, quoted, 1200)))
    (error,) = endpoint.errors
    assert error.kind is IcmpErrorKind.FRAG_NEEDED and error.mtu == 1200
    assert layer.host.path_mtu(PEER_V4) == 1200
    with pytest.raises(PacketTooBig) as too_big:
        endpoint.send(b"y" * (1200 - 28 + 1), PEER_V4, 53)
    assert too_big.value.mtu == 1200
