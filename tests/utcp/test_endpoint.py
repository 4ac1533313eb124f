"""Demultiplexing, resets for unknown segments, listen backlog, TIME-WAIT reuse, ISNs, sequence math."""

import gc
import ipaddress
import types

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stacks.utcp import Endpoint, LocalProtocolError, State
from stacks.utcp import seq as sq
from stacks.utcp import syncookies
from stacks.utcp.isn import IsnGenerator
from stacks.utcp.rto import RtoEstimator
from stacks.wire.tcp import TcpFlags, TcpRepr

from .templates import plain_config

ACK, SYN, FIN, RST = TcpFlags.ACK, TcpFlags.SYN, TcpFlags.FIN, TcpFlags.RST
HERE = ipaddress.ip_address("10.1.0.1")
PEER = ipaddress.ip_address("10.1.0.2")
PEER2 = ipaddress.ip_address("10.1.0.3")


def endpoint():
    return Endpoint(config=plain_config(), isn=IsnGenerator(b"k" * 32), seed=7)


def seg(sport, dport, seq, ack=0, flags=ACK, payload=b"", window=5000):
    return TcpRepr(sport, dport, seq, ack, flags, window, payload=payload, mss=1000 if flags & SYN else None)


def test_syn_to_closed_port_gets_rst_ack():
    ep = endpoint()
    ep.receive(PEER, HERE, seg(1234, 81, 100, flags=SYN), 0.0)
    [(src, dst, rst)] = ep.segments_to_send(0.0)
    assert (src, dst) == (HERE, PEER)
    assert rst == TcpRepr(81, 1234, 0, 101, RST | ACK, 0)


def test_ack_to_closed_port_gets_rst_with_its_ack_as_seq():
    ep = endpoint()
    ep.receive(PEER, HERE, seg(1234, 81, 100, 777, ACK, b"data"), 0.0)
    [(_, _, rst)] = ep.segments_to_send(0.0)
    assert rst == TcpRepr(81, 1234, 777, 0, RST, 0)


def test_rst_to_closed_port_is_never_answered():
    ep = endpoint()
    ep.receive(PEER, HERE, seg(1234, 81, 100, flags=RST), 0.0)
    assert ep.segments_to_send(0.0) == []


def test_ack_to_listener_is_reset():
    ep = endpoint()
    ep.listen(None, 80)
    ep.receive(PEER, HERE, seg(1234, 80, 100, 5, ACK), 0.0)
    [(_, _, rst)] = ep.segments_to_send(0.0)
    assert rst.flags == RST and rst.seq == 5


def handshake(ep, peer, sport, now=0.0):
    ep.receive(peer, HERE, seg(sport, 80, 1000, flags=SYN), now)
    out = [s for _, d, s in ep.segments_to_send(now) if d == peer and s.dst_port == sport]
    if not out:
        return None
    [syn_ack] = out
    assert syn_ack.flags == SYN | ACK
    ep.receive(peer, HERE, seg(sport, 80, 1001, sq.add(syn_ack.seq, 1)), now)
    ep.segments_to_send(now)
    return syn_ack


def test_syn_fin_to_listener_is_dropped_and_counted():
    # Linux's tcp_rcv_state_process discards SYN+FIN in LISTEN: no SYN-ACK, no RST.
    ep = endpoint()
    listener = ep.listen(None, 80)
    assert ep.receive(PEER, HERE, seg(1234, 80, 100, flags=SYN | FIN), 0.0) is None
    assert ep.segments_to_send(0.0) == []
    assert ep.stats["syn_fin_dropped"] == 1
    assert not listener.syn_queue and not ep.connections
    # a plain SYN from the same peer still opens
    assert ep.receive(PEER, HERE, seg(1234, 80, 100, flags=SYN), 0.0) is not None


def test_listener_demultiplexes_by_four_tuple():
    ep = endpoint()
    listener = ep.listen(None, 80)
    handshake(ep, PEER, 1000)
    syn_ack = handshake(ep, PEER, 1001)
    handshake(ep, PEER2, 1000)
    accepted = [listener.accept() for _ in range(3)]
    assert listener.accept() is None
    assert {c.key for c in accepted} == {(HERE, 80, PEER, 1000), (HERE, 80, PEER, 1001),
                                        (HERE, 80, PEER2, 1000)}
    ep.receive(PEER, HERE, seg(1001, 80, 1001, sq.add(syn_ack.seq, 1), ACK, b"hi"), 0.1)
    conn = ep.connections[(HERE, 80, PEER, 1001)]
    assert conn.read() == b"hi"
    assert all(c.readable == 0 for c in accepted if c is not conn)


def test_full_backlog_drops_new_syns():
    ep = endpoint()
    listener = ep.listen(None, 80, backlog=1)
    assert handshake(ep, PEER, 1000) is not None
    assert handshake(ep, PEER, 1001) is None        # no SYN-ACK: the client will retry
    assert listener.stats["syn_dropped_backlog_full"] == 1
    listener.accept()
    assert handshake(ep, PEER, 1001, now=1.0) is not None


def test_without_cookies_a_syn_flood_evicts_the_oldest_half_open():
    ep = endpoint()
    listener = ep.listen(None, 80, backlog=8, syn_queue=4, syn_cookies=False)
    for port in range(2000, 2100):                  # a flood of SYNs that never complete
        ep.receive(PEER2, HERE, seg(port, 80, 5, flags=SYN), 0.0)
    ep.segments_to_send(0.0)
    assert len(listener.syn_queue) == 4
    assert len(ep.connections) == 4
    assert listener.stats["syn_queue_evicted"] == 96
    assert handshake(ep, PEER, 1000, now=0.1) is not None   # a real client still gets in
    assert listener.accept().key == (HERE, 80, PEER, 1000)


@pytest.mark.parametrize("syn_queue, syn_cookies", [(-1, True), (0, False)])
def test_a_syn_queue_that_could_admit_nothing_is_refused(syn_queue, syn_cookies):
    with pytest.raises(ValueError, match="syn_queue"):
        endpoint().listen(None, 80, syn_queue=syn_queue, syn_cookies=syn_cookies)


def test_without_cookies_a_syn_queue_shrunk_to_nothing_drops_syns():
    ep = endpoint()
    listener = ep.listen(None, 80, syn_cookies=False)
    listener.syn_queue_limit = 0
    assert handshake(ep, PEER, 1000) is None
    assert listener.stats["syn_dropped_no_syn_queue"] == 1 and not ep.connections


def closed_from_here(ep, listener, port, now):
    """A connection this end closes first: it ends in TIME-WAIT here."""
    handshake(ep, PEER, port, now)
    conn = listener.accept()
    conn.close()
    ep.touch(conn)
    [(_, _, fin)] = ep.segments_to_send(now)
    ep.receive(PEER, HERE, seg(port, 80, 1001, sq.add(fin.seq, 1), FIN | ACK), now)
    ep.segments_to_send(now)
    return conn


def test_time_wait_holds_the_tuple_and_a_newer_syn_reopens_it():
    ep = endpoint()
    listener = ep.listen(None, 80)
    conn = closed_from_here(ep, listener, 1000, now=0.1)
    assert conn.state is State.TIME_WAIT
    # An old duplicate SYN does not disturb TIME-WAIT ...
    ep.receive(PEER, HERE, seg(1000, 80, 900, flags=SYN), 0.2)
    assert ep.connections[conn.key] is conn
    # ... a new SYN above the old sequence space starts a new connection.
    ep.receive(PEER, HERE, seg(1000, 80, 900_000, flags=SYN), 0.3)
    fresh = ep.connections[conn.key]
    assert fresh is not conn and fresh.state is State.SYN_RECEIVED
    assert ep.stats["time_wait_reopened"] == 1


def test_time_wait_expires_and_the_connection_is_forgotten():
    ep = endpoint()
    conn = ep.connect(HERE, PEER, 80, 0.0, local_port=40000)
    [(_, _, syn)] = ep.segments_to_send(0.0)
    ep.receive(PEER, HERE, TcpRepr(80, 40000, 5000, sq.add(syn.seq, 1), SYN | ACK, 5000), 0.0)
    conn.close()
    ep.touch(conn)
    ep.segments_to_send(0.0)
    ep.receive(PEER, HERE, TcpRepr(80, 40000, 5001, sq.add(syn.seq, 2), FIN | ACK, 5000), 0.1)
    ep.segments_to_send(0.1)
    assert conn.state is State.TIME_WAIT
    assert ep.poll_at() == 0.1 + 60.0
    ep.on_timer(60.1)
    ep.segments_to_send(60.1)
    assert conn.state is State.CLOSED and ep.connections == {}


# A released connection waits in TIME-WAIT as a compact record; a segment for it
# makes a connection of it again.  Both must behave as a connection kept whole.

def ack_ts(segment):
    return segment.timestamp[0] if segment.timestamp else 0


def time_wait_pair(config):
    """Two identical endpoints, each holding one tuple in TIME-WAIT (the peer
    offers every option): the first as the connection, the second released (a record)."""
    pair = []
    for release in (False, True):
        ep = Endpoint(config=config, isn=IsnGenerator(b"k" * 32), seed=7)
        listener = ep.listen(None, 80)
        ep.receive(PEER, HERE, TcpRepr(1000, 80, 1000, 0, SYN, 5000, mss=1000, window_scale=2,
                                       sack_permitted=True, timestamp=(100, 0)), 0.0)
        [(_, _, syn_ack)] = ep.segments_to_send(0.0)
        ep.receive(PEER, HERE, TcpRepr(1000, 80, 1001, sq.add(syn_ack.seq, 1), ACK, 5000,
                                       payload=b"hello", timestamp=(101, ack_ts(syn_ack))),
                   0.0)
        conn = listener.accept()
        conn.read()
        conn.send(b"bye")
        conn.close()
        ep.touch(conn)
        [(_, _, fin)] = ep.segments_to_send(0.1)
        ep.receive(PEER, HERE, TcpRepr(1000, 80, 1006, sq.add(fin.seq, 4), FIN | ACK, 5000,
                                       timestamp=(102, ack_ts(fin))), 0.2)
        if release:
            ep.release(conn)
        ep.segments_to_send(0.2)
        pair.append((ep, conn))
    (held_ep, held), (recorded_ep, recorded) = pair
    assert held.state is State.TIME_WAIT and held_ep.connections[held.key] is held
    assert recorded.state is State.CLOSED and recorded.key not in recorded_ep.connections
    assert recorded_ep.in_time_wait(recorded.key) and recorded_ep.stats["time_wait_recorded"] == 1
    return held_ep, recorded_ep, fin.seq


segment_kinds = st.sampled_from(["fin again", "data again", "pure ack", "rst exact",
                                 "rst in window", "rst outside", "old syn", "newer syn",
                                 "old timestamp", "future data"])


@given(steps=st.lists(st.tuples(st.floats(0.0, 40.0), segment_kinds,
                                st.sampled_from([0, -3, 7, -100_000])), max_size=8),
       timestamps=st.booleans(), sack=st.booleans(), window_scaling=st.booleans())
def test_a_time_wait_record_answers_as_the_connection_would(steps, timestamps, sack,
                                                            window_scaling):
    config = plain_config(timestamps=timestamps, sack=sack, window_scaling=window_scaling)
    held_ep, recorded_ep, fin_seq = time_wait_pair(config)
    key = (HERE, 80, PEER, 1000)
    now, tsval = 0.2, 103
    for delay, kind, ack_offset in steps:
        our_next = sq.add(fin_seq, 4 + ack_offset)      # "bye" and the FIN, or not quite
        now += delay
        tsval += 1
        ts = (tsval if kind != "old timestamp" else 50, 0)
        seq, flags, payload = {
            "fin again": (1006, FIN | ACK, b""),
            "data again": (1001, ACK, b"hello"),
            "pure ack": (1007, ACK, b""),
            "rst exact": (1007, RST, b""),
            "rst in window": (1500, RST, b""),
            "rst outside": (900_000_000, RST, b""),
            "old syn": (500, SYN, b""),
            "newer syn": (2_000_000, SYN, b""),
            "old timestamp": (1006, FIN | ACK, b""),
            "future data": (1007, ACK, b"late"),
        }[kind]
        segment = TcpRepr(1000, 80, seq, our_next if flags & ACK else 0, flags, 5000,
                          payload=payload, mss=1000 if flags & SYN else None, timestamp=ts)
        answers = []
        for ep in (held_ep, recorded_ep):
            ep.on_timer(now)
            ep.segments_to_send(now)
            ep.receive(PEER, HERE, segment, now)
            answers.append((ep.segments_to_send(now), ep.in_time_wait(key), ep.poll_at(),
                            ep.stats["time_wait_reopened"]))
        assert answers[0] == answers[1], kind


def test_a_time_wait_record_expires_and_a_late_segment_gets_a_reset():
    held_ep, recorded_ep, fin_seq = time_wait_pair(plain_config(timestamps=True))
    key = (HERE, 80, PEER, 1000)
    assert recorded_ep.poll_at() == held_ep.poll_at() == 0.2 + 60.0
    recorded_ep.on_timer(60.2)
    assert not recorded_ep.in_time_wait(key) and recorded_ep.poll_at() is None
    recorded_ep.receive(PEER, HERE, TcpRepr(1000, 80, 1006, sq.add(fin_seq, 4), FIN | ACK, 5000,
                                            timestamp=(200, 0)), 61.0)
    [(_, _, rst)] = recorded_ep.segments_to_send(61.0)
    assert rst.flags == RST


def test_a_tuple_in_time_wait_is_not_reused_by_connect():
    _, recorded_ep, _ = time_wait_pair(plain_config(timestamps=True))
    with pytest.raises(LocalProtocolError, match="already exists"):
        recorded_ep.connect(HERE, PEER, 1000, 1.0, local_port=80)
    assert recorded_ep.free_port(HERE) != 80


def test_a_recorded_connection_is_left_to_the_garbage():
    ep = endpoint()
    listener = ep.listen(None, 80)
    handshake(ep, PEER, 1000)
    conn = listener.accept()
    conn.close()
    ep.release(conn)                 # as the trio front end does when its stream closes
    ep.touch(conn)
    [(_, _, fin)] = ep.segments_to_send(0.0)
    ep.receive(PEER, HERE, seg(1000, 80, 1001, sq.add(fin.seq, 1), FIN | ACK), 0.1)
    ep.segments_to_send(0.1)
    ep.take_touched()
    assert conn.state is State.CLOSED and ep.in_time_wait(conn.key)
    assert ep.poll_at() == 0.1 + 60.0              # the record's; the FIN's RTO is gone
    assert [r for r in gc.get_referrers(conn) if not isinstance(r, types.FrameType)] == []


def test_records_count_against_the_time_wait_cap():
    ep = Endpoint(config=plain_config(), isn=IsnGenerator(b"k" * 32), seed=7, max_time_wait=2)
    listener = ep.listen(None, 80)
    for port in (1000, 1001, 1002):
        ep.release(closed_from_here(ep, listener, port, now=0.1))
        ep.segments_to_send(0.1)
    assert ep.stats["time_wait_recorded"] == 3 and ep.stats["time_wait_dropped"] == 1
    assert [ep.in_time_wait((HERE, 80, PEER, p)) for p in (1000, 1001, 1002)] == [
        False, True, True]


def test_time_wait_is_capped_and_the_oldest_is_forgotten_first():
    ep = Endpoint(config=plain_config(), isn=IsnGenerator(b"k" * 32), seed=7, max_time_wait=3)
    listener = ep.listen(None, 80)
    conns = [closed_from_here(ep, listener, 1000 + i, now=0.1 * i) for i in range(5)]
    assert [c.state for c in conns] == [State.CLOSED] * 2 + [State.TIME_WAIT] * 3
    assert ep.stats["time_wait_dropped"] == 2
    assert sorted(key[3] for key in ep.connections) == [1002, 1003, 1004]
    # A forgotten tuple is free: its next segment finds no connection and is reset.
    ep.receive(PEER, HERE, seg(1000, 80, 1002, 5, ACK), 1.0)
    [(_, _, rst)] = ep.segments_to_send(1.0)
    assert rst.flags == RST and rst.seq == 5
    # Only the kept ones have timers left: each ends 2MSL after it began.
    assert ep.poll_at() == 0.2 + 60.0
    ep.on_timer(0.4 + 60.0)
    ep.segments_to_send(0.4 + 60.0)
    assert ep.connections == {} and ep.poll_at() is None
    assert ep.stats["time_wait_dropped"] == 2


def test_a_reopened_or_expired_time_wait_leaves_room_for_others():
    ep = Endpoint(config=plain_config(), isn=IsnGenerator(b"k" * 32), seed=7, max_time_wait=2)
    listener = ep.listen(None, 80)
    first = closed_from_here(ep, listener, 1000, now=0.0)
    closed_from_here(ep, listener, 1001, now=0.1)
    ep.receive(PEER, HERE, seg(1000, 80, 900_000, flags=SYN), 0.2)     # reopens 1000
    assert first.state is State.CLOSED and ep.stats["time_wait_reopened"] == 1
    ep.segments_to_send(0.2)
    ep.on_timer(0.1 + 60.0)                                             # 1001 expires
    ep.segments_to_send(0.1 + 60.0)
    kept = [closed_from_here(ep, listener, port, now=61.0) for port in (1002, 1003)]
    assert all(c.state is State.TIME_WAIT for c in kept)
    assert ep.stats["time_wait_dropped"] == 0


def test_no_time_wait_at_all_when_the_cap_is_zero():
    ep = Endpoint(config=plain_config(), isn=IsnGenerator(b"k" * 32), seed=7, max_time_wait=0)
    listener = ep.listen(None, 80)
    conn = closed_from_here(ep, listener, 1000, now=0.0)
    assert conn.state is State.CLOSED and ep.connections == {} and ep.poll_at() is None
    with pytest.raises(ValueError):
        Endpoint(max_time_wait=-1)


def test_icmp_frag_needed_shrinks_segments():
    ep = endpoint()
    listener = ep.listen(None, 80)
    handshake(ep, PEER, 1000)
    conn = listener.accept()
    conn.send(bytes(1000))
    ep.touch(conn)
    assert [len(s.payload) for _, _, s in ep.segments_to_send(0.0)] == [1000]
    ep.on_icmp_error(HERE, 80, PEER, 1000, mtu=576)
    assert [len(s.payload) for _, _, s in ep.segments_to_send(0.0)] == [536, 464]


def test_icmp_unreachable_fails_a_connect():
    ep = endpoint()
    conn = ep.connect(HERE, PEER, 80, 0.0)
    ep.segments_to_send(0.0)
    ep.on_icmp_error(HERE, conn.local_port, PEER, 80, message="port unreachable")
    assert conn.state is State.CLOSED and conn.error.reason == "unreachable"


def test_ephemeral_ports_do_not_collide():
    ep = endpoint()
    ports = {ep.connect(HERE, PEER, 80, 0.0).local_port for _ in range(500)}
    assert len(ports) == 500
    assert all(49152 <= p <= 65535 for p in ports)


# ---------------------------------------------------------------- ISN (RFC 6528)


def test_isn_is_keyed_per_tuple_and_advances_with_the_clock():
    gen = IsnGenerator(b"s" * 32)
    a = gen.isn(HERE, 80, PEER, 1000, 1.0)
    assert gen.isn(HERE, 80, PEER, 1000, 1.0) == a
    assert gen.isn(HERE, 80, PEER, 1001, 1.0) != a
    assert IsnGenerator(b"t" * 32).isn(HERE, 80, PEER, 1000, 1.0) != a
    assert sq.diff(gen.isn(HERE, 80, PEER, 1000, 2.0), a) == 250_000   # 4 µs ticks


def test_the_tsval_offset_is_keyed_per_address_pair():
    gen = IsnGenerator(b"s" * 32)
    offset = gen.ts_offset(HERE, PEER)
    assert gen.ts_offset(HERE, PEER) == offset
    assert gen.ts_offset(HERE, PEER2) != offset
    assert IsnGenerator(b"t" * 32).ts_offset(HERE, PEER) != offset
    # Every connection between the pair uses it, whatever its ports and ISN.
    ep = Endpoint(isn=gen)
    conns = [ep.connect(HERE, PEER, 80, 0.0, local_port=p) for p in (40000, 40001)]
    tsvals = {syn.timestamp[0] for _, _, syn in ep.segments_to_send(1.0)}
    assert tsvals == {(1000 + offset) & sq.MASK} and len(conns) == 2


# ---------------------------------------------------------------- sequence arithmetic, RTO


@given(st.integers(0, 2**40), st.integers(-(2**31) + 1, 2**31 - 1))
def test_unwrap_inverts_wrap_near_the_reference(reference, delta):
    value = reference + delta
    assert sq.unwrap(sq.wrap(value), reference) == value


@given(st.integers(0, 2**32 - 1), st.integers(1, 2**31 - 1))
def test_modular_comparison_across_the_wrap(a, n):
    b = sq.add(a, n)
    assert sq.lt(a, b) and sq.gt(b, a) and sq.le(a, a) and sq.ge(b, b)
    assert sq.diff(b, a) == n


def test_rto_follows_rfc_6298():
    rto = RtoEstimator()
    assert rto.rto == 1.0
    rto.sample(0.5)
    assert (rto.srtt, rto.rttvar, rto.rto) == (0.5, 0.25, 1.5)
    rto.sample(0.5)
    assert rto.srtt == 0.5 and rto.rttvar == 0.1875 and rto.rto == 1.25
    rto.back_off()
    rto.back_off()
    assert rto.rto == 5.0
    for _ in range(10):
        rto.back_off()
    assert rto.rto == 60.0
    rto.sample(0.5)
    assert rto.rto < 2.0                             # a new sample ends the backoff


def test_announced_mss_follows_the_path_mtu_and_the_address_family():
    ep = Endpoint(config=plain_config(mss=1460), isn=IsnGenerator(b"k" * 32),
                  path_mtu=lambda dst: 1500)
    v4 = ep.connect(HERE, PEER, 80, 0.0)
    v6 = ep.connect(ipaddress.ip_address("fd00::1"), ipaddress.ip_address("fd00::2"), 80, 0.0)
    syns = {s.src_port: s for _, _, s in ep.segments_to_send(0.0)}
    assert syns[v4.local_port].mss == 1460
    assert syns[v6.local_port].mss == 1440


def test_per_connection_options_do_not_leak_into_the_shared_config():
    ep = endpoint()
    a = ep.connect(HERE, PEER, 80, 0.0)
    b = ep.connect(HERE, PEER, 80, 0.0)
    a.config.nagle = True
    a.set_keepalive(5.0, 1.0, 2, 0.0)
    assert b.config.nagle is False and b.config.keepalive_idle is None
    assert ep.config.keepalive_idle is None


# ---------------------------------------------------------------- SYN cookies


def test_syn_flood_gets_cookies_and_keeps_no_state():
    ep = endpoint()
    listener = ep.listen(None, 80, backlog=8, syn_queue=4)
    for port in range(2000, 2100):
        ep.receive(PEER2, HERE, seg(port, 80, 5, flags=SYN), 0.0)
    out = ep.segments_to_send(0.0)
    assert len(out) == 100 and all(s.flags == SYN | ACK for _, _, s in out)
    assert len(ep.connections) == 4 and len(listener.syn_queue) == 4
    assert listener.stats["syn_cookies_sent"] == 96


def cookie_handshake(ep, sport, now_syn, now_ack, payload=b"GET"):
    ep.receive(PEER, HERE, seg(sport, 80, 7000, flags=SYN), now_syn)
    [(_, _, syn_ack)] = [x for x in ep.segments_to_send(now_syn) if x[2].dst_port == sport]
    ep.receive(PEER, HERE, seg(sport, 80, 7001, sq.add(syn_ack.seq, 1), ACK, payload), now_ack)
    return syn_ack


def test_a_valid_cookie_rebuilds_the_connection_with_its_data():
    ep = endpoint()
    listener = ep.listen(None, 80, syn_queue=1)
    handshake_syn = seg(1999, 80, 1, flags=SYN)
    ep.receive(PEER2, HERE, handshake_syn, 0.0)          # fills the SYN queue
    ep.segments_to_send(0.0)
    syn_ack = cookie_handshake(ep, 3000, 10.0, 10.2)
    assert syn_ack.window_scale is None and not syn_ack.sack_permitted and syn_ack.timestamp is None
    conn = listener.accept()
    assert conn.key == (HERE, 80, PEER, 3000) and conn.state is State.ESTABLISHED
    assert conn.read() == b"GET"
    assert conn.peer_mss == 536                           # the SYN carried 1000: table says 536
    assert listener.stats["syn_cookies_accepted"] == 1
    [(_, _, ack)] = ep.segments_to_send(10.2)
    assert ack.ack == 7004


def test_forged_and_stale_cookies_are_reset():
    ep = endpoint()
    listener = ep.listen(None, 80, syn_queue=1)
    ep.receive(PEER2, HERE, seg(1999, 80, 1, flags=SYN), 0.0)
    ep.segments_to_send(0.0)
    ep.receive(PEER, HERE, seg(3001, 80, 7001, 123456, ACK), 1.0)        # a guessed cookie
    [(_, _, rst)] = ep.segments_to_send(1.0)
    assert rst.flags == RST
    cookie_handshake(ep, 3002, 10.0, 10.0 + 200.0)                         # too late
    assert listener.accept() is None
    assert any(s.flags == RST for _, _, s in ep.segments_to_send(210.0))
    # While cookies are being answered, a failed check is dropped (see the next test).
    ep.receive(PEER, HERE, seg(3003, 80, 7000, flags=SYN), 300.0)
    ep.segments_to_send(300.0)
    ep.receive(PEER, HERE, seg(3004, 80, 7001, 123456, ACK), 301.0)
    assert ep.segments_to_send(301.0) == [] and listener.stats["syn_cookies_failed"] == 1


def test_a_cookie_handshake_survives_its_first_segment_arriving_late():
    ep = endpoint()
    listener = ep.listen(None, 80, syn_queue=0)
    ep.receive(PEER, HERE, seg(3000, 80, 7000, flags=SYN), 10.0)
    [(_, _, syn_ack)] = ep.segments_to_send(10.0)
    first = seg(3000, 80, 7001, sq.add(syn_ack.seq, 1), ACK, b"a" * 500)
    second = seg(3000, 80, 7501, sq.add(syn_ack.seq, 1), ACK | FIN, b"b" * 500)
    # The second names no ISN the cookie holds: dropped, not reset, as a listener
    # answering with cookies cannot tell it from a reordered handshake.
    ep.receive(PEER, HERE, second, 10.1)
    assert ep.segments_to_send(10.1) == [] and not ep.connections
    assert listener.stats["syn_cookies_failed"] == 1
    ep.receive(PEER, HERE, first, 10.2)
    ep.receive(PEER, HERE, second, 10.3)                # the peer's retransmission
    conn = listener.accept()
    assert conn.read() == b"a" * 500 + b"b" * 500 and conn.state is State.CLOSE_WAIT


def test_a_valid_cookie_waits_for_room_in_the_accept_queue():
    ep = endpoint()
    listener = ep.listen(None, 80, backlog=1, syn_queue=0)
    for sport in (3000, 3001):
        ep.receive(PEER, HERE, seg(sport, 80, 7000, flags=SYN), 10.0)
    cookies = {s.dst_port: sq.add(s.seq, 1) for _, _, s in ep.segments_to_send(10.0)}
    for sport in (3000, 3001):
        ep.receive(PEER, HERE, seg(sport, 80, 7001, cookies[sport], ACK, b"GET"), 10.1)
    assert len(listener.accept_queue) == 1 and listener.stats["syn_cookies_backlog_full"] == 1
    assert all(s.flags != RST for _, _, s in ep.segments_to_send(10.1))
    assert listener.accept().key[3] == 3000
    ep.receive(PEER, HERE, seg(3001, 80, 7001, cookies[3001], ACK, b"GET"), 11.0)
    assert listener.accept().read() == b"GET"


# With timestamps the cookie keeps the peer's window scale and SACK in our TSval.

OPTIONS = dict(timestamps=True, sack=True, window_scaling=True, recv_buffer=1_000_000)


def options_endpoint(**overrides):
    return Endpoint(config=plain_config(**{**OPTIONS, **overrides}), isn=IsnGenerator(b"k" * 32),
                    seed=7)


def options_syn(sport, tsval=555_000, window_scale=7, sack=True):
    return TcpRepr(sport, 80, 7000, 0, SYN, 5000, mss=1460, window_scale=window_scale,
                   sack_permitted=sack, timestamp=(tsval, 0))


def syn_ack_for(ep, syn, now):
    ep.receive(PEER, HERE, syn, now)
    [syn_ack] = [s for _, _, s in ep.segments_to_send(now) if s.dst_port == syn.src_port]
    return syn_ack


def test_a_cookie_syn_ack_offers_what_a_stateful_one_does():
    ep = options_endpoint()
    listener = ep.listen(None, 80, syn_queue=1)
    stateful = syn_ack_for(ep, options_syn(1999), 10.0)
    assert len(listener.syn_queue) == 1
    cookie = syn_ack_for(ep, options_syn(3000), 10.0)
    assert listener.stats["syn_cookies_sent"] == 1
    for field in ("window", "mss", "window_scale", "sack_permitted"):
        assert getattr(cookie, field) == getattr(stateful, field), field
    assert cookie.window_scale == 4 and cookie.sack_permitted      # 1 MB: 65535 << 4 covers it
    tsval, tsecr = cookie.timestamp
    assert tsecr == 555_000
    assert tsval & 0x3F == 7 | 0x10                                # the peer's shift and SACK
    assert 0 <= sq.diff(stateful.timestamp[0], tsval) < 64         # never ahead of the clock


def test_a_cookie_connection_keeps_window_scaling_sack_and_timestamps():
    ep = options_endpoint()
    listener = ep.listen(None, 80, syn_queue=0)
    syn_ack = syn_ack_for(ep, options_syn(3000), 10.0)
    ack = TcpRepr(3000, 80, 7001, sq.add(syn_ack.seq, 1), ACK, 300, payload=b"GET",
                  timestamp=(555_040, syn_ack.timestamp[0]))
    ep.receive(PEER, HERE, ack, 10.2)
    conn = listener.accept()
    assert conn.state is State.ESTABLISHED and conn.read() == b"GET"
    assert (conn.ts_ok, conn.sack_ok, conn.snd_wscale, conn.rcv_wscale) == (True, True, 7, 4)
    assert conn.snd_wnd == 300 << 7 and conn.ts_recent == 555_040
    assert conn.rto.srtt is None        # the echo held option bits, not a send time
    [(_, _, reply)] = ep.segments_to_send(10.2)
    assert reply.ack == 7004 and reply.timestamp[1] == 555_040
    assert 0 < sq.diff(reply.timestamp[0], syn_ack.timestamp[0]) < 300    # same clock, later


def test_a_cookie_keeps_sack_without_window_scaling_and_nothing_without_timestamps():
    ep = options_endpoint()
    listener = ep.listen(None, 80, syn_queue=0)
    syn_ack = syn_ack_for(ep, options_syn(3000, window_scale=None), 10.0)
    assert syn_ack.window_scale is None and syn_ack.sack_permitted
    ep.receive(PEER, HERE, TcpRepr(3000, 80, 7001, sq.add(syn_ack.seq, 1), ACK, 300,
                                   timestamp=(555_001, syn_ack.timestamp[0])), 10.0)
    conn = listener.accept()
    assert (conn.ts_ok, conn.sack_ok, conn.snd_wscale, conn.rcv_wscale) == (True, True, 0, 0)

    bare = TcpRepr(3001, 80, 7000, 0, SYN, 5000, mss=1460, window_scale=7, sack_permitted=True)
    syn_ack = syn_ack_for(ep, bare, 10.0)
    assert (syn_ack.timestamp, syn_ack.window_scale, syn_ack.sack_permitted) == (None, None, False)
    ep.receive(PEER, HERE, TcpRepr(3001, 80, 7001, sq.add(syn_ack.seq, 1), ACK, 300), 10.0)
    conn = listener.accept()
    assert (conn.ts_ok, conn.sack_ok, conn.snd_wscale, conn.rcv_wscale) == (False, False, 0, 0)


@pytest.mark.parametrize("option_bits, overrides", [
    (0x20 | 0xF, {}),                           # the sixth bit: never set by us
    (0x07, {"window_scaling": False}),          # a shift this listener never agrees to
    (0x1F, {"sack": False}),                    # SACK this listener never agrees to
])
def test_a_cookie_echo_with_options_never_offered_is_dropped(option_bits, overrides):
    ep = options_endpoint(**overrides)
    listener = ep.listen(None, 80, syn_queue=0)
    syn_ack = syn_ack_for(ep, options_syn(3000, window_scale=None, sack=False), 10.0)
    assert syn_ack.timestamp[0] & 0x3F == 0xF
    echo = syn_ack.timestamp[0] & ~0x3F | option_bits
    ep.receive(PEER, HERE, TcpRepr(3000, 80, 7001, sq.add(syn_ack.seq, 1), ACK, 300,
                                   timestamp=(555_001, echo)), 10.0)
    assert listener.accept() is None and not ep.connections
    assert ep.segments_to_send(10.0) == []
    assert listener.stats["syn_cookies_failed"] == 1


@given(st.integers(0, sq.MASK), st.one_of(st.none(), st.integers(0, 14)), st.booleans())
def test_cookie_options_survive_the_tsval(tsval, window_scale, sack):
    encoded = syncookies.encode_options(tsval, window_scale, sack)
    assert syncookies.decode_options(encoded) == (window_scale, sack)
    assert 0 <= sq.diff(tsval, encoded) < 64


def test_a_cookie_cannot_carry_a_window_scale_above_14():
    with pytest.raises(ValueError, match="4 bits"):
        syncookies.encode_options(0, 15, False)


def test_simultaneous_open_and_close_between_two_endpoints():
    a, b = endpoint(), Endpoint(config=plain_config(), isn=IsnGenerator(b"j" * 32), seed=8)
    ca = a.connect(HERE, PEER, 6000, 0.0, local_port=5000)
    cb = b.connect(PEER, HERE, 5000, 0.0, local_port=6000)

    def exchange(now):
        for _ in range(5):
            out_a, out_b = a.segments_to_send(now), b.segments_to_send(now)
            for src, dst, s in out_a:
                b.receive(src, dst, s, now)
            for src, dst, s in out_b:
                a.receive(src, dst, s, now)

    exchange(0.0)                                   # the two SYNs cross
    assert ca.state is cb.state is State.ESTABLISHED
    assert ca.stats["SYN-SENT->SYN-RECEIVED"] == cb.stats["SYN-SENT->SYN-RECEIVED"] == 1
    ca.send(b"ping")
    cb.send(b"pong")
    ca.close()
    cb.close()                                      # both FINs cross too
    a.touch(ca)
    b.touch(cb)
    exchange(0.1)
    assert (ca.read(), cb.read()) == (b"pong", b"ping")
    assert ca.state is cb.state is State.TIME_WAIT
    assert ca.stats["FIN-WAIT-1->CLOSING"] == cb.stats["FIN-WAIT-1->CLOSING"] == 1


def test_a_client_reopens_ports_its_server_holds_in_time_wait_by_timestamps():
    # RFC 6191: a server takes a SYN into a tuple it holds in TIME-WAIT when the
    # SYN's TSval is newer.  So TSvals to one peer must keep advancing from one
    # connection to the next: the TSval offset belongs to the address pair, not
    # to the connection (a per-connection offset fails about every other port).
    from stacks.utcp import TcpConfig

    from .test_churn import Path

    path = Path(TcpConfig(), seed=1, family=4)
    listener = path.server.listen(None, 80)

    def fetch(port):
        conn = path.client.connect(path.client_addr, path.server_addr, 80, path.now,
                                   local_port=port)
        path.exchange()
        accepted = listener.accept()
        assert conn.state is State.ESTABLISHED and accepted is not None
        accepted.close()                       # the server closes first: its TIME-WAIT
        path.server.touch(accepted)
        path.exchange()
        conn.close()
        path.client.touch(conn)
        path.exchange()
        assert accepted.state is State.TIME_WAIT and conn.state is State.CLOSED
        return accepted

    ports = range(40000, 40016)
    held = {port: fetch(port) for port in ports}
    path.now = 0.5
    for port in ports:
        path.now += 0.0137          # gaps that differ, as do the ISNs' and so the old offsets
        assert fetch(port) is not held[port]
    assert path.server.stats["time_wait_reopened"] == len(ports)
    assert path.resets == []
