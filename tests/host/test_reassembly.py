"""IP reassembly: the sans-IO reassembler, and fragmented datagrams through a Host."""

import random

import pytest

from stacks.host.reassembly import Reassembler
from stacks.udp import UdpLayer
from stacks.wire.ethernet import EtherType, EthernetRepr
from stacks.wire.frame import build_frame
from stacks.wire.ipv4 import Ipv4Repr
from stacks.wire.ipv6 import Ipv6ExtensionHeader, Ipv6Repr
from stacks.wire.udp import UdpRepr

from hostkit import HOST_MAC, HOST_V4, HOST_V6, PEER_MAC, PEER_V4, PEER_V6, make_host

DATA = bytes(random.Random(1).randrange(256) for _ in range(3000))
KEY = (4, "a", "b", 17, 1)


def pieces(data: bytes, size: int = 1000):
    return [(o, o + size < len(data), data[o:o + size]) for o in range(0, len(data), size)]


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 0, 1], [1, 2, 0]])
def test_reassembles_in_any_order(order):
    r = Reassembler()
    parts = pieces(DATA)
    results = [r.add(KEY, *parts[i], now=0.0) for i in order]
    assert results[:-1] == [None, None] and results[-1] == DATA
    assert r.in_progress() == 0 and r.counters["datagrams_reassembled"] == 1


def test_exact_duplicates_are_harmless_overlaps_drop_the_datagram():
    r = Reassembler()
    first, second, last = pieces(DATA)
    assert r.add(KEY, *first, now=0.0) is None
    assert r.add(KEY, *first, now=0.0) is None  # duplicate
    assert r.add(KEY, 8, True, DATA[8:1008], now=0.0) is None  # overlaps the first
    assert r.counters["drop_fragment_overlap"] == 1 and r.in_progress() == 0
    assert r.add(KEY, *second, now=0.0) is None
    assert r.add(KEY, *last, now=0.0) is None  # the datagram restarted: first is missing


def test_incomplete_datagrams_time_out():
    r = Reassembler(timeout=30)
    r.add(KEY, *pieces(DATA)[0], now=10.0)
    assert r.poll_at() == 40.0
    r.on_timer(39.9)
    assert r.in_progress() == 1
    r.on_timer(40.0)
    assert r.in_progress() == 0 and r.counters["drop_fragment_timeout"] == 1


def test_limits_are_enforced():
    r = Reassembler(max_datagrams=2, max_bytes=2500)
    for ident in range(3):
        r.add((4, "a", "b", 17, ident), 0, True, DATA[:1000], now=0.0)
    assert r.counters["drop_fragment_table_full"] == 1
    r.add((4, "a", "b", 17, 0), 1000, True, DATA[1000:2000], now=0.0)  # 3000 bytes > 2500
    assert r.counters["drop_fragment_memory_full"] == 1


@pytest.mark.parametrize("offset, more, data, reason", [
    (0, True, b"x" * 13, "drop_fragment_bad_length"),  # not a multiple of 8
    (65528, False, b"x" * 16, "drop_fragment_bad_length"),  # past 65535
])
def test_bad_fragments(offset, more, data, reason):
    r = Reassembler()
    assert r.add(KEY, offset, more, data, now=0.0) is None
    assert r.counters[reason] == 1


def test_two_different_ends_drop_the_datagram():
    r = Reassembler()
    r.add(KEY, 16, False, b"x" * 8, now=0.0)
    r.add(KEY, 32, False, b"x" * 8, now=0.0)
    assert r.counters["drop_fragment_inconsistent"] == 1


def _v4_fragments(segment: bytes, size: int = 1000):
    return [build_frame(EthernetRepr(HOST_MAC, PEER_MAC, EtherType.IPV4),
                        Ipv4Repr(PEER_V4, HOST_V4, 17, ident=77, fragment_offset=o, more_fragments=m),
                        payload=d) for o, m, d in pieces(segment, size)]


def _v6_fragments(segment: bytes, size: int = 1000):
    return [build_frame(EthernetRepr(HOST_MAC, PEER_MAC, EtherType.IPV6),
                        Ipv6Repr(PEER_V6, HOST_V6, 17,
                                 extension_headers=(Ipv6ExtensionHeader.fragment(o, m, 99),)),
                        payload=d) for o, m, d in pieces(segment, size)]


@pytest.mark.parametrize("peer, ours, fragment", [(PEER_V4, HOST_V4, _v4_fragments),
                                                   (PEER_V6, HOST_V6, _v6_fragments)])
def test_fragmented_udp_reaches_the_socket(peer, ours, fragment):
    host, clock = make_host()
    endpoint = UdpLayer.of(host).bind(ours, 53)
    segment = UdpRepr(4000, 53, DATA).emit(peer, ours)
    frames = fragment(segment)
    for frame in reversed(frames):
        host.handle_frame(frame, clock.now)
    (datagram,) = endpoint.received
    assert datagram.data == DATA and datagram.src == (peer, 4000)
    assert host.counters["rx_fragments_held"] == len(frames) - 1
    assert host.counters["datagrams_reassembled"] == 1


def test_host_times_out_fragments_through_its_timers():
    host, clock = make_host()
    host.handle_frame(_v4_fragments(UdpRepr(1, 2, DATA).emit(PEER_V4, HOST_V4))[0], clock.now)
    assert host.poll_at() == clock.now + 30
    host.run_timers(clock.now + 30)
    assert host.drops() == {"fragment_timeout": 1}
