"""The Host core driven by hand: frames in, frames and handler calls out, explicit time."""

from ipaddress import IPv4Address, IPv6Address

import pytest

from stacks.host import IcmpErrorKind, NoRoute, PacketTooBig
from stacks.host.addressing import multicast_mac, solicited_node
from stacks.wire.arp import ArpRepr
from stacks.wire.ethernet import BROADCAST, MacAddress
from stacks.wire.icmpv4 import Icmpv4Repr, Icmpv4Type
from stacks.wire.icmpv6 import NA_OVERRIDE, NA_SOLICITED, Icmpv6Repr, Icmpv6Type
from stacks.wire.ipv4 import Ipv4Repr
from stacks.wire.ipv6 import Ipv6ExtensionHeader, Ipv6Repr
from stacks.wire.udp import UdpRepr

from hostkit import (HOST_MAC, HOST_V4, HOST_V6, PEER_MAC, PEER_V4, PEER_V6, ArpOp, RecordingHandler,
                     arp, ipv4, ipv6, make_host, output, raw_ipv4)

ZERO_MAC = MacAddress(bytes(6))


# -- ARP and ND ----------------------------------------------------------


def test_answers_arp_for_its_address_and_learns_the_sender():
    host, clock = make_host()
    host.handle_frame(arp(ArpOp.REQUEST, PEER_MAC, PEER_V4, ZERO_MAC, HOST_V4), clock.now)
    (reply,) = output(host)
    assert reply.ethernet.dst == PEER_MAC and reply.ethernet.src == HOST_MAC
    assert reply.network == ArpRepr(ArpOp.REPLY, HOST_MAC, HOST_V4, PEER_MAC, PEER_V4)
    assert host.neighbours.entries()[PEER_V4] == PEER_MAC
    assert host.counters["arp_replies_sent"] == 1


def test_ignores_arp_for_other_addresses():
    host, clock = make_host()
    host.handle_frame(arp(ArpOp.REQUEST, PEER_MAC, PEER_V4, ZERO_MAC, "10.1.0.99"), clock.now)
    assert output(host) == []
    assert PEER_V4 not in host.neighbours.entries()


def test_resolves_then_sends_queued_packets_in_order():
    host, clock = make_host()
    for i in range(3):
        host.send_ip(HOST_V4, PEER_V4, 17, UdpRepr(1000, 7, b"x%d" % i).emit(HOST_V4, PEER_V4))
    (request,) = output(host)  # one ARP request, packets wait
    assert request.ethernet.dst == BROADCAST
    assert request.network.operation == ArpOp.REQUEST and request.network.target_ip == PEER_V4
    assert request.network.sender_ip == HOST_V4
    host.handle_frame(arp(ArpOp.REPLY, PEER_MAC, PEER_V4, HOST_MAC, HOST_V4, eth_dst=HOST_MAC), clock.now)
    sent = output(host)
    assert [f.transport.payload for f in sent] == [b"x0", b"x1", b"x2"]
    assert all(f.ethernet.dst == PEER_MAC for f in sent)
    # Known now: the next packet goes straight out.
    host.send_ip(HOST_V4, PEER_V4, 17, UdpRepr(1000, 7, b"x3").emit(HOST_V4, PEER_V4))
    assert [f.transport.payload for f in output(host)] == [b"x3"]


def test_unanswered_resolution_retries_then_fails_and_tells_the_transport():
    host, clock = make_host()
    handler = RecordingHandler()
    host.attach(17, handler)
    host.send_ip(HOST_V4, PEER_V4, 17, UdpRepr(1000, 7, b"lost").emit(HOST_V4, PEER_V4))
    requests = len(output(host))
    for _ in range(5):
        clock.now = host.poll_at() or clock.now
        host.run_timers(clock.now)
        requests += len(output(host))
    assert requests == 3  # max_tries
    assert host.poll_at() is None
    assert host.drops()["neighbour_unresolved"] == 1
    (error,) = handler.errors
    assert error.kind is IcmpErrorKind.UNREACHABLE and error.reporter == HOST_V4
    assert (error.src, error.src_port, error.dst, error.dst_port) == (HOST_V4, 1000, PEER_V4, 7)


def test_neighbour_queue_is_bounded():
    host, clock = make_host(neighbour_queue=4)
    for i in range(10):
        host.send_ip(HOST_V4, PEER_V4, 17, b"\0" * 8)
    assert host.drops()["neighbour_queue_full"] == 6


def test_answers_neighbour_solicitation_for_its_address():
    host, clock = make_host()
    group = solicited_node(HOST_V6)
    ns = Icmpv6Repr.neighbor_solicit(HOST_V6, PEER_MAC)
    host.handle_frame(ipv6(PEER_V6, group, ns, eth_dst=multicast_mac(group), hop_limit=255), clock.now)
    (advert,) = output(host)
    assert advert.ethernet.dst == PEER_MAC
    assert (advert.network.src, advert.network.dst, advert.network.hop_limit) == (HOST_V6, PEER_V6, 255)
    na = advert.transport
    assert na.type == Icmpv6Type.NEIGHBOR_ADVERT and na.target == HOST_V6
    assert na.nd_flags == NA_SOLICITED | NA_OVERRIDE and na.target_lladdr == HOST_MAC
    assert host.neighbours.entries()[PEER_V6] == PEER_MAC


def test_neighbour_discovery_that_crossed_a_router_is_dropped():
    host, clock = make_host()
    ns = Icmpv6Repr.neighbor_solicit(HOST_V6, PEER_MAC)
    host.handle_frame(ipv6(PEER_V6, HOST_V6, ns, hop_limit=64), clock.now)
    assert output(host) == []
    assert host.drops()["nd_hop_limit"] == 1


def test_duplicate_address_detection_probe_is_answered_to_all_nodes():
    host, clock = make_host()
    ns = Icmpv6Repr.neighbor_solicit(HOST_V6)
    group = solicited_node(HOST_V6)
    host.handle_frame(ipv6("::", group, ns, eth_dst=multicast_mac(group), hop_limit=255), clock.now)
    (advert,) = output(host)
    assert advert.network.dst == IPv6Address("ff02::1")
    assert advert.ethernet.dst == MacAddress("33:33:00:00:00:01")
    assert advert.transport.nd_flags == NA_OVERRIDE


def test_ipv6_resolution_solicits_the_solicited_node_group():
    host, clock = make_host()
    host.send_ip(HOST_V6, PEER_V6, 17, UdpRepr(1000, 7, b"six").emit(HOST_V6, PEER_V6))
    (ns,) = output(host)
    assert ns.network.dst == solicited_node(PEER_V6) and ns.network.hop_limit == 255
    assert ns.ethernet.dst == multicast_mac(solicited_node(PEER_V6))
    assert ns.transport.type == Icmpv6Type.NEIGHBOR_SOLICIT and ns.transport.source_lladdr == HOST_MAC
    na = Icmpv6Repr.neighbor_advert(PEER_V6, NA_SOLICITED | NA_OVERRIDE, PEER_MAC)
    host.handle_frame(ipv6(PEER_V6, HOST_V6, na, hop_limit=255), clock.now)
    (packet,) = output(host)
    assert packet.transport.payload == b"six" and packet.ethernet.dst == PEER_MAC


# -- echo ----------------------------------------------------------------


def test_answers_ping_when_it_owns_the_link():
    host, clock = make_host()
    host.handle_frame(arp(ArpOp.REQUEST, PEER_MAC, PEER_V4, ZERO_MAC, HOST_V4), clock.now)
    output(host)
    host.handle_frame(ipv4(PEER_V4, HOST_V4, Icmpv4Repr.echo_request(7, 1, b"ping!")), clock.now)
    (reply,) = output(host)
    assert reply.transport == Icmpv4Repr.echo_reply(7, 1, b"ping!")
    assert (reply.network.src, reply.network.dst) == (HOST_V4, PEER_V4)


def test_answers_ping6():
    host, clock = make_host()
    host.handle_frame(ipv6(PEER_V6, HOST_V6, Icmpv6Repr.neighbor_solicit(HOST_V6, PEER_MAC),
                           hop_limit=255), clock.now)
    output(host)
    host.handle_frame(ipv6(PEER_V6, HOST_V6, Icmpv6Repr.echo_request(9, 4, b"six")), clock.now)
    (reply,) = output(host)
    assert reply.transport == Icmpv6Repr.echo_reply(9, 4, b"six")


def test_leaves_ping_to_the_os_when_told():
    host, clock = make_host(answer_echo=False)
    host.handle_frame(ipv4(PEER_V4, HOST_V4, Icmpv4Repr.echo_request(7, 1)), clock.now)
    assert output(host) == []
    assert host.drops()["echo_os_answers"] == 1


# -- dispatch and drops ----------------------------------------------------


def test_delivers_to_the_protocol_handler():
    host, clock = make_host()
    handler = RecordingHandler()
    host.attach(17, handler)
    segment = UdpRepr(5000, 7, b"data").emit(PEER_V4, HOST_V4)
    host.handle_frame(ipv4(PEER_V4, HOST_V4, UdpRepr(5000, 7, b"data")), clock.now)
    host.handle_frame(ipv6(PEER_V6, HOST_V6, UdpRepr(5000, 7, b"data")), clock.now)
    assert handler.packets[0] == (PEER_V4, HOST_V4, segment, clock.now)
    assert handler.packets[1][:2] == (PEER_V6, HOST_V6)
    assert host.counters["rx_delivered"] == 2


def test_a_batch_ends_once_for_the_handlers_that_got_packets():
    host, clock = make_host()
    udp, idle = RecordingHandler(), RecordingHandler()
    host.attach(17, udp)
    host.attach(6, idle)
    frames = [ipv4(PEER_V4, HOST_V4, UdpRepr(5000, 7, b"%d" % i)) for i in range(3)]
    host.handle_frames(frames, clock.now)
    assert udp.batch_ends == [(3, clock.now)]       # after all three, not per packet
    assert idle.batch_ends == []                    # nothing arrived for it
    host.handle_frame(frames[0], clock.now)         # a single frame is a batch of one
    assert udp.batch_ends == [(3, clock.now), (4, clock.now)]


def test_attach_refuses_duplicates_and_icmp():
    host, _ = make_host()
    host.attach(17, RecordingHandler())
    with pytest.raises(ValueError):
        host.attach(17, RecordingHandler())
    with pytest.raises(ValueError):
        host.attach(1, RecordingHandler())


def _bad_checksum(frame: bytes) -> bytes:
    b = bytearray(frame)
    b[14 + 10] ^= 0xFF
    return bytes(b)


def _vlan(frame: bytes) -> bytes:
    return frame[:12] + b"\x81\x00\x00\x05" + frame[12:]


UDP = UdpRepr(5000, 7, b"x")


@pytest.mark.parametrize("frame, reason", [
    (b"\x01\x02\x03", "bad_ethernet"),
    (_vlan(ipv4(PEER_V4, HOST_V4, UDP)), "vlan_tagged"),
    (ipv4(PEER_V4, HOST_V4, UDP, eth_dst=MacAddress("02:99:99:99:99:99")), "not_our_mac"),
    (HOST_MAC + PEER_MAC + b"\x88\xb5" + bytes(46), "unknown_ethertype"),
    (_bad_checksum(ipv4(PEER_V4, HOST_V4, UDP)), "bad_ipv4"),
    (ipv4(PEER_V4, HOST_V4, UDP)[:30], "bad_ipv4"),
    (ipv4(PEER_V4, "10.1.0.77", UDP), "not_our_address"),
    (ipv6(PEER_V6, "fd00:1::77", UDP), "not_our_address"),
    (raw_ipv4(PEER_V4, HOST_V4, 17, b"\0" * 13, more_fragments=True), "fragment_bad_length"),
    (raw_ipv4(PEER_V4, HOST_V4, 89, b"\0" * 16), "no_handler"),
    (ipv6(PEER_V6, HOST_V6, UDP, extension_headers=(Ipv6ExtensionHeader.fragment(0, True, 1),)),
     "fragment_bad_length"),
    (HOST_MAC + PEER_MAC + b"\x08\x06" + bytes(10), "bad_arp"),
    (ipv4(PEER_V4, HOST_V4, Icmpv4Repr(Icmpv4Type.ECHO_REQUEST, 0))[:-1] + b"\x01", "bad_icmp"),
])
def test_bad_or_foreign_frames_are_counted_drops(frame, reason):
    host, clock = make_host()
    handler = RecordingHandler()
    host.attach(6, handler)
    host.handle_frame(frame, clock.now)
    assert host.drops() == {reason: 1}
    assert handler.packets == []
    if reason != "no_handler":  # that one is answered: see test_unknown_protocol_...
        assert output(host) == []


def _known_peer_host():
    host, clock = make_host()
    host.handle_frame(arp(ArpOp.REQUEST, PEER_MAC, PEER_V4, ZERO_MAC, HOST_V4), clock.now)
    host.handle_frame(ipv6(PEER_V6, HOST_V6, Icmpv6Repr.neighbor_solicit(HOST_V6, PEER_MAC),
                           hop_limit=255), clock.now)
    output(host)
    return host, clock


def test_unknown_protocol_is_answered_protocol_unreachable():
    host, clock = _known_peer_host()
    host.handle_frame(raw_ipv4(PEER_V4, HOST_V4, 89, b"ospf?" * 4), clock.now)
    (answer,) = output(host)
    icmp = answer.transport
    assert (icmp.type, icmp.code) == (Icmpv4Type.DEST_UNREACHABLE, 2)
    quoted = icmp.quoted
    assert (quoted.ip.src, quoted.ip.dst, quoted.protocol) == (PEER_V4, HOST_V4, 89)
    assert quoted.payload == b"ospf?" * 4


@pytest.mark.parametrize("peer, ours", [(PEER_V4, HOST_V4), (PEER_V6, HOST_V6)])
def test_closed_udp_port_is_answered_port_unreachable(peer, ours):
    from stacks.udp import UdpLayer

    host, clock = _known_peer_host()
    UdpLayer.of(host)
    build = ipv4 if peer.version == 4 else ipv6
    host.handle_frame(build(peer, ours, UdpRepr(4444, 9, b"closed?")), clock.now)
    (answer,) = output(host)
    icmp = answer.transport
    assert icmp.code == (3 if peer.version == 4 else 4)
    assert (icmp.quoted.src_port, icmp.quoted.dst_port) == (4444, 9)
    assert answer.network.dst == peer


def test_unreachables_are_rate_limited_and_not_sent_over_a_shared_nic():
    from stacks.udp import UdpLayer

    host, clock = _known_peer_host()
    host.icmp_rate = 5
    host._icmp_tokens = 5.0
    UdpLayer.of(host)
    for _ in range(20):
        host.handle_frame(ipv4(PEER_V4, HOST_V4, UdpRepr(4444, 9, b"x")), clock.now)
    assert len(output(host)) == 5
    assert host.counters["icmp_rate_limited"] == 15
    clock.now += 1.0  # a second later the bucket is full again
    for _ in range(20):
        host.handle_frame(ipv4(PEER_V4, HOST_V4, UdpRepr(4444, 9, b"x")), clock.now)
    assert len(output(host)) == 5
    host.owns_link = False  # what a host on the kernel-module backend is
    host.handle_frame(ipv4(PEER_V4, HOST_V4, UdpRepr(4444, 9, b"x")), clock.now + 5)
    assert output(host) == []


# -- ICMP errors and path MTU ------------------------------------------------


def test_frag_needed_reaches_the_transport_which_decides_the_path_mtu():
    host, clock = make_host()
    handler = RecordingHandler()
    host.attach(6, handler)
    quoted = Ipv4Repr(HOST_V4, PEER_V4, 6).emit(bytes(1480))[:20] + (40000).to_bytes(2, "big") \
        + (80).to_bytes(2, "big") + bytes(4)
    error = Icmpv4Repr.dest_unreachable(4, quoted, next_hop_mtu=1400)
    host.handle_frame(ipv4("10.1.0.254", HOST_V4, error), clock.now)
    (got,) = handler.errors
    assert got.kind is IcmpErrorKind.FRAG_NEEDED and got.mtu == 1400
    assert (got.src, got.src_port, got.dst, got.dst_port, got.proto) == (HOST_V4, 40000, PEER_V4, 80, 6)
    assert got.reporter == IPv4Address("10.1.0.254") and not got.is_hard
    # Not applied by the host: the error may be forged, and only the transport can tell.
    assert host.path_mtu(PEER_V4) == 1500 and host.counters["pmtu_reductions"] == 0
    assert host.learn_path_mtu(PEER_V4, got.mtu, clock.now) == 1400
    assert host.counters["pmtu_reductions"] == 1
    with pytest.raises(PacketTooBig) as too_big:
        host.send_ip(HOST_V4, PEER_V4, 6, bytes(1400))
    assert too_big.value.mtu == 1400
    # An absurdly small MTU is reported as 552; an increase as the MTU in force.
    host.handle_frame(ipv4("10.1.0.254", HOST_V4, Icmpv4Repr.dest_unreachable(4, quoted, 100)), clock.now)
    assert handler.errors[-1].mtu == 552
    assert host.learn_path_mtu(PEER_V4, 100, clock.now) == 552     # nor learned below it
    host.handle_frame(ipv4("10.1.0.254", HOST_V4, Icmpv4Repr.dest_unreachable(4, quoted, 9000)), clock.now)
    assert handler.errors[-1].mtu == 552
    assert host.learn_path_mtu(PEER_V4, 9000, clock.now) == 552
    clock.now += 600  # learned path MTUs are forgotten after ten minutes
    assert host.path_mtu(PEER_V4) == 1500


def test_packet_too_big_for_ipv6():
    host, clock = make_host()
    handler = RecordingHandler()
    host.attach(17, handler)
    quoted = Ipv6Repr(HOST_V6, PEER_V6, 17).emit(UdpRepr(999, 53, b"q" * 1400).emit(HOST_V6, PEER_V6))
    host.handle_frame(ipv6(PEER_V6, HOST_V6, Icmpv6Repr.packet_too_big(1300, quoted[:1232])), clock.now)
    got = handler.errors[0]
    assert got.kind is IcmpErrorKind.PACKET_TOO_BIG and got.mtu == 1300 and got.src_port == 999
    host.handle_frame(ipv6(PEER_V6, HOST_V6, Icmpv6Repr.packet_too_big(600, quoted[:1232])), clock.now)
    assert handler.errors[-1].mtu == 1280           # IPv6's minimum link MTU
    assert host.learn_path_mtu(PEER_V6, handler.errors[-1].mtu, clock.now) == 1280


def test_port_unreachable_is_a_hard_error():
    host, clock = make_host()
    handler = RecordingHandler()
    host.attach(17, handler)
    quoted = Ipv4Repr(HOST_V4, PEER_V4, 17).emit(UdpRepr(999, 53, b"q").emit(HOST_V4, PEER_V4))
    host.handle_frame(ipv4(PEER_V4, HOST_V4, Icmpv4Repr.dest_unreachable(3, quoted)), clock.now)
    (got,) = handler.errors
    assert got.kind is IcmpErrorKind.UNREACHABLE and got.is_hard and got.dst_port == 53


def test_errors_about_packets_we_did_not_send_are_dropped():
    host, clock = make_host()
    handler = RecordingHandler()
    host.attach(17, handler)
    quoted = Ipv4Repr(IPv4Address("10.1.0.50"), PEER_V4, 17).emit(UdpRepr(1, 2).emit(HOST_V4, PEER_V4))
    host.handle_frame(ipv4(PEER_V4, HOST_V4, Icmpv4Repr.dest_unreachable(3, quoted)), clock.now)
    host.handle_frame(ipv4(PEER_V4, HOST_V4, Icmpv4Repr.dest_unreachable(3, b"\x45junk")), clock.now)
    assert handler.errors == []
    assert host.drops() == {"icmp_error_not_ours": 1, "bad_icmp_quote": 1}


# -- sending -----------------------------------------------------------------


def test_send_ip_refuses_what_it_cannot_send():
    host, _ = make_host()
    with pytest.raises(ValueError):
        host.send_ip(IPv4Address("10.1.0.9"), PEER_V4, 17, b"")
    with pytest.raises(ValueError):
        host.send_ip(HOST_V4, PEER_V6, 17, b"")
    with pytest.raises(NoRoute):
        host.send_ip(HOST_V4, IPv4Address("192.0.2.1"), 17, b"")
    with pytest.raises(PacketTooBig):
        host.send_ip(HOST_V4, PEER_V4, 17, bytes(1481))
    host.send_ip(HOST_V4, PEER_V4, 17, bytes(1480))  # exactly the MTU fits


def test_off_link_destinations_go_through_the_gateway():
    host, clock = make_host(gateway="10.1.0.254")
    host.send_ip(HOST_V4, IPv4Address("192.0.2.1"), 17, b"\0" * 8)
    (request,) = output(host)
    assert request.network.target_ip == IPv4Address("10.1.0.254")
    with pytest.raises(ValueError):
        make_host(gateway="192.0.2.1")


def test_ipv4_header_fields():
    host, clock = make_host()
    host.handle_frame(arp(ArpOp.REQUEST, PEER_MAC, PEER_V4, ZERO_MAC, HOST_V4), clock.now)
    output(host)
    host.send_ip(HOST_V4, PEER_V4, 6, bytes(20))
    host.send_ip(HOST_V4, PEER_V4, 17, UdpRepr(1, 2).emit(HOST_V4, PEER_V4))
    tcp, udp = [Ipv4Repr.parse(f[14:]) for f in host.take_output()]
    assert tcp.dont_fragment and not udp.dont_fragment
    assert tcp.ident != udp.ident and tcp.ttl == 64


def test_timers_of_handlers_run_when_due():
    host, clock = make_host()
    handler = RecordingHandler(deadline=clock.now + 5)
    host.attach(6, handler)
    assert host.poll_at() == clock.now + 5
    host.run_timers(clock.now + 4)
    assert handler.timer_calls == []
    host.run_timers(clock.now + 5)
    assert handler.timer_calls == [clock.now + 5]


def test_expired_entry_is_used_while_it_is_confirmed_again():
    host, clock = _known_peer_host()
    clock.now += 61  # past the 60 s lifetime
    host.send_ip(HOST_V4, PEER_V4, 17, UdpRepr(1, 2, b"still").emit(HOST_V4, PEER_V4))
    request, packet = output(host)
    assert request.network.operation == ArpOp.REQUEST and request.network.target_ip == PEER_V4
    assert packet.transport.payload == b"still" and packet.ethernet.dst == PEER_MAC
    host.handle_frame(arp(ArpOp.REPLY, PEER_MAC, PEER_V4, HOST_MAC, HOST_V4, eth_dst=HOST_MAC), clock.now)
    assert host.poll_at() is None  # confirmed: no retries pending
    clock.now += 61
    host.send_ip(HOST_V4, PEER_V4, 17, UdpRepr(1, 2, b"gone?").emit(HOST_V4, PEER_V4))
    output(host)
    for _ in range(3):  # the neighbour stays silent
        clock.now = host.poll_at()
        host.run_timers(clock.now)
    assert PEER_V4 not in host.neighbours.entries()


def test_address_conflict_probe_is_answered_but_not_learned():
    host, clock = make_host()
    host.handle_frame(arp(ArpOp.REQUEST, PEER_MAC, "0.0.0.0", ZERO_MAC, HOST_V4), clock.now)
    (reply,) = output(host)
    assert reply.network.operation == ArpOp.REPLY and reply.ethernet.dst == PEER_MAC
    assert IPv4Address("0.0.0.0") not in host.neighbours.entries()
