"""TcpLayer on a Host driven by hand: what it answers to a batch of received frames.

The layer answers once per receive batch, except for the ACKs RFC 5681 4.2
wants at once: one for every second full segment and one per out-of-order
segment (the sender's ACK clock and duplicate-ACK count depend on them).
"""

from ipaddress import IPv4Address

from multistack.memport import memory_pair
from stacks.host import Host, OwnNeighbours
from stacks.utcp import TcpConfig
from stacks.utcp.trio_api import TcpLayer
from stacks.wire.arp import ArpOperation, ArpRepr
from stacks.wire.ethernet import BROADCAST, EtherType, EthernetRepr, MacAddress
from stacks.wire.frame import build_frame, parse_frame
from stacks.wire.ipv4 import Ipv4Repr
from stacks.wire.tcp import TcpFlags, TcpRepr

HOST_MAC, PEER_MAC = MacAddress("02:00:00:00:00:01"), MacAddress("02:00:00:00:00:02")
HOST, PEER = IPv4Address("10.1.0.1"), IPv4Address("10.1.0.2")
ACK, SYN = TcpFlags.ACK, TcpFlags.SYN
MSS = 1000
PEER_ISS = 7000
NOW = 1000.0


def tcp_frame(seq: int, ack: int, flags=ACK, payload: bytes = b"", **options) -> bytes:
    segment = TcpRepr(40000, 80, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags, 60000,
                      payload=payload, **options)
    return build_frame(EthernetRepr(HOST_MAC, PEER_MAC, EtherType.IPV4),
                       Ipv4Repr(PEER, HOST, 6), segment)


def sent_segments(host: Host) -> list[TcpRepr]:
    return [parse_frame(f).transport for f in host.take_output()]


def established():
    """A Host with a UTCP listener and one connection from the peer, handshake done."""
    port, _ = memory_pair(macs=(bytes(HOST_MAC), bytes(PEER_MAC)), clock=lambda: NOW)
    host = Host(port, ["10.1.0.1/24"], neighbours=OwnNeighbours(), clock=lambda: NOW)
    config = TcpConfig(timestamps=False, sack=False, window_scaling=False, mss=MSS,
                       delayed_ack=0.2)
    layer = TcpLayer(host, config=config)
    layer.listen(HOST, 80, 16, config)
    host.handle_frame(build_frame(EthernetRepr(BROADCAST, PEER_MAC, EtherType.ARP),
                                  ArpRepr(ArpOperation.REQUEST, PEER_MAC, PEER,
                                          MacAddress(bytes(6)), HOST)), NOW)
    host.take_output()                                      # the ARP reply
    host.handle_frame(tcp_frame(PEER_ISS, 0, SYN, mss=MSS), NOW)
    [syn_ack] = [s for s in sent_segments(host) if s.flags & SYN]
    host.handle_frame(tcp_frame(PEER_ISS + 1, syn_ack.seq + 1), NOW)
    assert sent_segments(host) == []
    return host, syn_ack.seq + 1


def test_in_order_segments_are_acked_every_second_one_within_a_batch():
    host, our_next = established()
    data = [tcp_frame(PEER_ISS + 1 + i * MSS, our_next, payload=bytes(MSS)) for i in range(5)]
    host.handle_frames(data, NOW)
    acks = sent_segments(host)
    # The 2nd and 4th segments draw an ACK; the 5th waits for the delayed-ACK timer.
    assert [a.ack - PEER_ISS - 1 for a in acks] == [2 * MSS, 4 * MSS]


def test_each_out_of_order_segment_in_a_batch_draws_its_duplicate_ack():
    host, our_next = established()
    gap = [tcp_frame(PEER_ISS + 1 + i * MSS, our_next, payload=bytes(MSS)) for i in (1, 2, 3)]
    host.handle_frames(gap, NOW)
    acks = sent_segments(host)
    assert [a.ack for a in acks] == [PEER_ISS + 1] * 3      # three duplicates: fast retransmit


def test_segments_that_owe_nothing_at_once_are_answered_once_per_batch():
    host, our_next = established()
    # A lone data segment: delayed ACK, nothing sent at the end of the batch.
    host.handle_frames([tcp_frame(PEER_ISS + 1, our_next, payload=b"x")], NOW)
    assert sent_segments(host) == []
