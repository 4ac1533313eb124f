"""Retransmission, congestion control, SACK, timers and options, with template segments."""

import pytest

from stacks.utcp import ConnectionClosed, State
from stacks.utcp.congestion import Cubic, NewReno, initial_window

from .templates import (ACK, FIN, LOCAL_ISS, PSH, REMOTE_ISS, RST, WINDOW, established,
                        listen_and_syn, local, only, plain_config, remote, send_data, sent)


def payloads(segments):
    return [(s.seq - LOCAL_ISS, len(s.payload)) for s in segments]


# ---------------------------------------------------------------- retransmission timer


def test_retransmission_timer_backs_off_and_gives_up():
    conn = established(plain_config(max_retries=3))
    assert send_data(conn, b"x" * 100, 0.0) == [local(1, 1, ACK | PSH, b"x" * 100)]
    times = []
    now = 0.0
    while conn.state is State.ESTABLISHED:
        now = conn.poll_at()
        conn.on_timer(now)
        for seg in sent(conn, now):
            assert seg == local(1, 1, ACK | PSH, b"x" * 100)
            times.append(now)
    assert times == [1.0, 3.0, 7.0]
    assert now == 15.0
    assert conn.events() == [ConnectionClosed(conn.error)]
    assert conn.error.reason == "timeout"


def test_rto_collapses_cwnd_and_goes_back_to_snd_una():
    conn = established()
    out = send_data(conn, bytes(4000), 0.0)
    assert payloads(out) == [(1, 1000), (1001, 1000), (2001, 1000), (3001, 1000)]
    conn.receive(remote(1, 1001), 0.1)               # first segment arrived
    conn.on_timer(conn.poll_at())
    assert conn.cc.cwnd == 1000
    assert payloads(sent(conn, 2.0)) == [(1001, 1000)]   # one segment: the loss window
    conn.receive(remote(1, 2001), 2.1)
    assert payloads(sent(conn, 2.1)) == [(2001, 1000), (3001, 1000)]   # slow start again


def test_pure_ack_after_timeout_carries_the_highest_sequence_sent():
    conn = established()
    send_data(conn, bytes(3000), 0.0)
    conn.on_timer(conn.poll_at())                    # go back to SND.UNA
    assert payloads(sent(conn, 1.0)) == [(1, 1000)]
    conn.receive(remote(1, 1, ACK, b"data"), 1.1)    # the peer may hold all 3000 bytes already
    [ack] = sent(conn, 1.1)
    assert ack.payload == b"" and ack.seq == LOCAL_ISS + 3001   # inside the peer's window


def test_syn_ack_timeout_starts_data_with_a_three_second_rto():
    """RFC 6298 5.7: the SYN-ACK timed out and, with no timestamps, Karn's rule
    leaves no RTT sample: data starts with an RTO of 3 s, not the handshake's 2."""
    conn = listen_and_syn()
    sent(conn, 0.0)                                  # SYN-ACK
    conn.on_timer(conn.poll_at())                    # lost: resent at 1 s, RTO now 2 s
    assert conn.state is State.SYN_RECEIVED and conn.rto.rto == 2.0
    sent(conn, 1.0)
    conn.receive(remote(1, 1), 1.5)
    assert conn.state is State.ESTABLISHED and conn.rto.srtt is None
    send_data(conn, b"x" * 10, 2.0)
    assert conn.poll_at() == 5.0


def test_handshake_without_timeout_keeps_its_rto():
    conn = listen_and_syn()
    sent(conn, 0.0)
    conn.receive(remote(1, 1), 0.3)
    send_data(conn, b"x" * 10, 1.0)
    assert conn.rto.srtt == pytest.approx(0.3)
    assert conn.poll_at() == 2.0                     # the 1 s floor: no fallback


def test_syn_timeout_with_a_timestamp_sample_needs_no_fallback():
    config = plain_config(timestamps=True, min_rto=0.2)
    conn = listen_and_syn(config, timestamp=(100, 0))
    sent(conn, 0.0)
    conn.on_timer(conn.poll_at())
    [syn_ack] = sent(conn, 1.0)
    # The echo of the retransmission's TSval measures the RTT although it was resent.
    conn.receive(remote(1, 1, timestamp=(101, syn_ack.timestamp[0])), 1.1)
    assert conn.rto.srtt == pytest.approx(0.1)
    send_data(conn, b"x" * 10, 1.2)
    assert conn.poll_at() == pytest.approx(1.2 + conn.rto.rto) and conn.rto.rto < 1.0


@pytest.mark.parametrize("algorithm", ["newreno", "cubic"])
def test_cwnd_restarts_after_an_idle_rto(algorithm):
    """RFC 5681 4.1: after sending nothing for longer than the RTO, a burst may
    be no larger than the initial window."""
    conn = established(plain_config(congestion=algorithm))
    now = 0.0
    for _ in range(6):                               # slow start opens the window
        for seg in send_data(conn, bytes(4000), now):
            conn.receive(remote(1, seg.seq - LOCAL_ISS + len(seg.payload)), now + 0.01)
        sent(conn, now)
        now += 0.02
    grown = conn.cc.cwnd
    assert grown > 2 * initial_window(1000)
    burst = grown // 1000 * 1000
    assert len(send_data(conn, bytes(burst), now + 0.5)) == grown // 1000    # not idle yet
    conn.receive(remote(1, conn.snd_max - LOCAL_ISS), now + 0.6)
    sent(conn, now + 0.6)
    idle_from = now + 0.6
    out = send_data(conn, bytes(20_000), idle_from + conn.rto.rto + 0.5)
    assert len(out) == initial_window(1000) // 1000 == 4
    assert conn.stats["cwnd_restarts_after_idle"] == 1
    assert conn.cc.ssthresh >= 3 * grown // 4


def test_restart_after_idle_can_be_switched_off():
    conn = established(plain_config(slow_start_after_idle=False))
    for now in (0.0, 0.1, 0.2):
        for seg in send_data(conn, bytes(4000), now):
            conn.receive(remote(1, seg.seq - LOCAL_ISS + len(seg.payload)), now + 0.01)
        sent(conn, now)
    grown = conn.cc.cwnd
    out = send_data(conn, bytes(30_000), 100.0)
    assert len(out) == grown // 1000 and conn.stats["cwnd_restarts_after_idle"] == 0


def test_ack_restarts_timer_and_rtt_sample_sets_rto():
    conn = established(plain_config(min_rto=0.2))
    send_data(conn, b"a" * 10, 0.0)
    conn.receive(remote(1, 11), 0.1)
    # RFC 6298: the handshake's sample was 0, then 0.1 gives SRTT 0.0125, RTTVAR 0.025.
    assert conn.rto.srtt == pytest.approx(0.0125)
    assert conn.rto.rttvar == pytest.approx(0.025)
    assert conn.rto.rto == 0.2                       # the floor
    assert conn.poll_at() is None                    # nothing in flight: no timer


# ---------------------------------------------------------------- fast retransmit and NewReno


def test_fast_retransmit_on_third_duplicate_ack():
    conn = established()
    send_data(conn, bytes(4000), 0.0)
    conn.receive(remote(1, 1), 0.1)
    conn.receive(remote(1, 1), 0.1)
    assert sent(conn, 0.1) == []
    conn.receive(remote(1, 1), 0.1)
    assert payloads(sent(conn, 0.1)) == [(1, 1000)]
    assert conn.stats["fast_retransmits"] == 1
    assert conn.cc.ssthresh == 2000 and conn.cc.cwnd == 5000


def test_limited_transmit_sends_a_new_segment_per_early_duplicate_ack():
    conn = established()
    send_data(conn, bytes(6000), 0.0)               # cwnd 4000: two segments wait
    conn.receive(remote(1, 1), 0.1)
    assert payloads(sent(conn, 0.1)) == [(4001, 1000)]
    conn.receive(remote(1, 1), 0.1)
    assert payloads(sent(conn, 0.1)) == [(5001, 1000)]
    conn.receive(remote(1, 1), 0.1)                 # the third: fast retransmit
    assert payloads(sent(conn, 0.1)) == [(1, 1000)]


def test_window_update_is_not_a_duplicate_ack():
    conn = established()
    send_data(conn, bytes(4000), 0.0)
    for w in (1000, 2000, 3000):
        conn.receive(remote(1, 1, window=WINDOW - w), 0.1)
    assert conn.stats["fast_retransmits"] == 0


def test_newreno_partial_ack_retransmits_next_hole_then_full_ack_deflates():
    conn = established()
    send_data(conn, bytes(4000), 0.0)                # segments 1 and 3 are lost
    for _ in range(3):
        conn.receive(remote(1, 1), 0.1)
    assert payloads(sent(conn, 0.1)) == [(1, 1000)]
    conn.receive(remote(1, 2001), 0.2)              # partial: covers only segments 1 and 2
    assert payloads(sent(conn, 0.2)) == [(2001, 1000)]
    assert conn.cc.in_recovery
    conn.receive(remote(1, 4001), 0.3)              # everything up to `recover`
    assert not conn.cc.in_recovery
    assert conn.cc.cwnd == 1000 + 1000              # min(ssthresh, flight + SMSS), flight 0


def test_no_second_fast_retransmit_for_the_same_window_after_timeout():
    conn = established()
    send_data(conn, bytes(4000), 0.0)
    conn.on_timer(conn.poll_at())                   # RTO: recover = SND.MAX
    sent(conn, 1.0)
    for _ in range(3):
        conn.receive(remote(1, 1), 1.1)
    assert conn.stats["fast_retransmits"] == 0


# ---------------------------------------------------------------- SACK


def sack_conn():
    conn = established(plain_config(sack=True), sack_permitted=True)
    assert conn.sack_ok
    return conn


def blocks(*offsets):
    return tuple(((LOCAL_ISS + a) & 0xFFFFFFFF, (LOCAL_ISS + b) & 0xFFFFFFFF) for a, b in offsets)


def test_sack_retransmits_only_the_holes():
    conn = sack_conn()
    send_data(conn, bytes(4000), 0.0)               # segments at 1 and 2001 are lost
    conn.receive(remote(1, 1, sack_blocks=blocks((1001, 2001))), 0.1)
    conn.receive(remote(1, 1, sack_blocks=blocks((1001, 2001), (3001, 4001))), 0.1)
    conn.receive(remote(1, 1, sack_blocks=blocks((1001, 2001), (3001, 4001))), 0.1)
    assert payloads(sent(conn, 0.1)) == [(1, 1000)]
    # A further duplicate in recovery sends the next hole, skipping SACKed data.
    conn.receive(remote(1, 1, sack_blocks=blocks((1001, 2001), (3001, 4001))), 0.1)
    assert payloads(sent(conn, 0.1)) == [(2001, 1000)]
    assert conn.scoreboard.ranges() == [(LOCAL_ISS + 1001, LOCAL_ISS + 2001),
                                        (LOCAL_ISS + 3001, LOCAL_ISS + 4001)]


def test_timeout_retransmission_skips_sacked_data():
    conn = sack_conn()
    send_data(conn, bytes(3000), 0.0)
    conn.receive(remote(1, 1, sack_blocks=blocks((1001, 2001))), 0.1)
    conn.on_timer(conn.poll_at())
    conn.cc.cwnd = 10_000                            # let the go-back run past the first
    out = sent(conn, 1.0)
    assert payloads(out) == [(1, 1000), (2001, 1000)]


def test_receiver_reports_sack_blocks_most_recent_first():
    conn = sack_conn()
    conn.receive(remote(101, 1, ACK, b"b" * 100), 0.0)
    assert only(conn, 0.0).sack_blocks == ((REMOTE_ISS + 101, REMOTE_ISS + 201),)
    conn.receive(remote(301, 1, ACK, b"d" * 100), 0.0)
    assert only(conn, 0.0).sack_blocks == ((REMOTE_ISS + 301, REMOTE_ISS + 401),
                                           (REMOTE_ISS + 101, REMOTE_ISS + 201))
    conn.receive(remote(1, 1, ACK, b"a" * 100), 0.0)
    ack = only(conn, 0.0)
    assert ack.ack == REMOTE_ISS + 201
    assert ack.sack_blocks == ((REMOTE_ISS + 301, REMOTE_ISS + 401),)


# ---------------------------------------------------------------- zero window, keepalive


def test_zero_window_probe_with_backoff_until_window_opens():
    conn = established()
    conn.receive(remote(1, 1, window=0), 0.0)
    assert send_data(conn, b"z" * 100, 0.0) == []
    assert conn.poll_at() == 1.0
    conn.on_timer(1.0)
    assert only(conn, 1.0) == local(0, 1)           # SND.UNA - 1 draws an ACK
    conn.receive(remote(1, 1, window=0), 1.0)
    assert sent(conn, 1.0) == []
    assert conn.poll_at() == 3.0                     # backed off
    conn.on_timer(3.0)
    assert only(conn, 3.0) == local(0, 1)
    conn.receive(remote(1, 1, window=500), 3.1)
    assert sent(conn, 3.1) == [local(1, 1, ACK | PSH, b"z" * 100)]
    assert conn.state is State.ESTABLISHED           # probes never time the connection out


def test_zero_window_probing_does_not_give_up():
    conn = established(plain_config(max_retries=2))
    conn.receive(remote(1, 1, window=0), 0.0)
    send_data(conn, b"z", 0.0)
    now = 0.0
    for _ in range(10):
        now = conn.poll_at()
        conn.on_timer(now)
        assert only(conn, now) == local(0, 1)
        conn.receive(remote(1, 1, window=0), now)
    assert conn.state is State.ESTABLISHED


def test_retransmissions_into_a_shrunk_zero_window_do_not_time_out_while_answered():
    conn = established(plain_config(max_retries=2))
    send_data(conn, bytes(3000), 0.0)
    conn.receive(remote(1, 1001, window=0), 0.1)    # took 1000, then shrank to nothing
    now = 0.1
    for _ in range(8):
        now = conn.poll_at()
        conn.on_timer(now)
        assert payloads(sent(conn, now)) == [(1001, 1000)]
        conn.receive(remote(1, 1001, window=0), now)   # still alive, still full
    assert conn.state is State.ESTABLISHED
    last_answer = now                                   # now it goes silent
    expiries = []
    while (deadline := conn.poll_at()) is not None:
        expiries.append(deadline)
        conn.on_timer(deadline)
        sent(conn, deadline)
    # Probing goes on while the last answer is at most two maximum RTOs old.
    limit = 2 * conn.config.max_rto
    assert len(expiries) >= 2
    assert all(t - last_answer <= limit for t in expiries[:-1])
    assert expiries[-1] - last_answer > limit
    assert conn.state is State.CLOSED and conn.error.reason == "timeout"


def test_keepalive_probes_and_timeout():
    conn = established(plain_config(keepalive_idle=10.0, keepalive_interval=1.0,
                                    keepalive_count=3))
    assert conn.poll_at() == 10.0
    conn.on_timer(10.0)
    assert only(conn, 10.0) == local(0, 1)
    conn.receive(remote(1, 1), 10.1)                 # answered: idle again
    assert conn.poll_at() == pytest.approx(20.1)
    for t in (20.1, 21.1, 22.1):
        conn.on_timer(t)
        assert only(conn, t) == local(0, 1)
    conn.on_timer(23.1)
    assert conn.state is State.CLOSED
    assert conn.error.reason == "timeout"


# ---------------------------------------------------------------- delayed ACK and Nagle


def test_delayed_ack_waits_for_a_second_segment_or_the_timer():
    conn = established(plain_config(delayed_ack=0.04))
    conn.receive(remote(1, 1, ACK, b"a" * 100), 0.0)
    assert sent(conn, 0.0) == []
    assert conn.poll_at() == 0.04
    conn.on_timer(0.04)
    assert only(conn, 0.04).ack == REMOTE_ISS + 101
    conn.receive(remote(101, 1, ACK, b"b" * 100), 0.1)
    assert sent(conn, 0.1) == []
    conn.receive(remote(201, 1, ACK, b"c" * 100), 0.11)
    assert only(conn, 0.11).ack == REMOTE_ISS + 301
    assert conn.poll_at() is None


def test_out_of_order_data_is_acknowledged_at_once_even_with_delayed_ack():
    conn = established(plain_config(delayed_ack=0.04))
    conn.receive(remote(101, 1, ACK, b"b" * 100), 0.0)
    assert only(conn, 0.0).ack == REMOTE_ISS + 1


def test_nagle_holds_small_segments_while_data_is_unacknowledged():
    conn = established(plain_config(nagle=True))
    assert payloads(send_data(conn, b"a", 0.0)) == [(1, 1)]
    assert send_data(conn, b"b", 0.0) == []
    assert send_data(conn, b"c", 0.0) == []
    conn.receive(remote(1, 2), 0.1)
    assert sent(conn, 0.1) == [local(2, 1, ACK | PSH, b"bc")]


def test_nodelay_sends_small_segments_at_once():
    conn = established(plain_config(nagle=False))
    assert payloads(send_data(conn, b"a", 0.0)) == [(1, 1)]
    assert payloads(send_data(conn, b"b", 0.0)) == [(2, 1)]


def test_nagle_lets_a_full_segment_and_the_fin_go():
    conn = established(plain_config(nagle=True))
    send_data(conn, b"a", 0.0)
    assert payloads(send_data(conn, bytes(1500), 0.0)) == [(2, 1000)]   # full one goes
    conn.close()
    out = sent(conn, 0.0)
    assert payloads(out) == [(1002, 500)] and out[0].flags & FIN


# ---------------------------------------------------------------- options


def test_window_scaling_negotiated_both_ways():
    config = plain_config(window_scaling=True, recv_buffer=1 << 20)
    conn = listen_and_syn(config, window_scale=7)
    syn_ack = only(conn, 0.0)
    assert syn_ack.window_scale == 5 and syn_ack.window == 65535
    conn.receive(remote(1, 1, window=100), 0.0)
    assert conn.snd_wnd == 100 << 7
    conn.receive(remote(1, 1, ACK, b"x"), 0.0)
    assert only(conn, 0.0).window == ((1 << 20) - 1) >> 5


def test_no_window_scaling_without_the_peers_option():
    conn = listen_and_syn(plain_config(window_scaling=True, recv_buffer=1 << 20))
    syn_ack = only(conn, 0.0)
    assert syn_ack.window_scale is None
    conn.receive(remote(1, 1, window=100), 0.0)
    assert conn.snd_wnd == 100
    conn.receive(remote(1, 1, ACK, b"x"), 0.0)
    assert only(conn, 0.0).window == 65535


def ts_conn():
    conn = listen_and_syn(plain_config(timestamps=True), timestamp=(1000, 0))
    syn_ack = only(conn, 0.0)
    assert syn_ack.timestamp[1] == 1000
    conn.receive(remote(1, 1, timestamp=(1001, syn_ack.timestamp[0])), 0.0)
    return conn, syn_ack.timestamp[0]


def test_timestamps_echo_and_paws_rejects_old_segments():
    conn, our_ts = ts_conn()
    conn.receive(remote(1, 1, ACK, b"new", timestamp=(1005, our_ts)), 0.01)
    ack = only(conn, 0.01)
    assert ack.timestamp[1] == 1005
    conn.receive(remote(4, 1, ACK, b"old", timestamp=(900, our_ts)), 0.02)
    assert conn.readable == 3                        # "old" was dropped ...
    assert conn.stats["paws_rejected"] == 1
    assert only(conn, 0.02).ack == REMOTE_ISS + 4    # ... and answered with an ACK


def test_segments_without_timestamps_are_dropped_once_agreed():
    conn, our_ts = ts_conn()
    conn.receive(remote(1, 1, ACK, b"bare"), 0.01)          # RFC 7323 3.2: no TSopt
    assert conn.readable == 0 and conn.state is State.ESTABLISHED
    assert conn.stats["ts_missing_dropped"] == 1
    assert sent(conn, 0.01) == []                            # dropped silently
    conn.receive(remote(1, 1, RST), 0.02)                   # an RST needs none
    assert conn.state is State.CLOSED


def test_segments_with_timestamps_pass_after_a_bare_one():
    conn, our_ts = ts_conn()
    conn.receive(remote(1, 1, ACK, b"bare"), 0.01)
    conn.receive(remote(1, 1, ACK, b"data", timestamp=(1002, our_ts)), 0.02)
    assert conn.readable == 4


def test_timestamps_give_rtt_samples_on_every_ack():
    conn, our_ts = ts_conn()
    [seg] = send_data(conn, b"x" * 10, 1.0)
    assert seg.timestamp[0] == (our_ts + 1000) & 0xFFFFFFFF
    conn.receive(remote(1, 11, timestamp=(1100, our_ts + 1000)), 1.25)
    # The handshake's echo measured 0 s, this one 0.25 s (RFC 6298 smoothing).
    assert conn.rto.srtt == pytest.approx(0.25 / 8)
    assert conn.rto.rttvar == pytest.approx(0.25 / 4)


def test_mss_of_the_peer_bounds_segments_less_timestamp_room():
    conn = established(plain_config(), mss=500)
    assert payloads(send_data(conn, bytes(1200), 0.0)) == [(1, 500), (501, 500), (1001, 200)]
    conn, _ = ts_conn()                              # peer MSS 1000, timestamps on
    assert payloads(send_data(conn, bytes(1200), 0.0)) == [(1, 988), (989, 212)]


def test_path_mtu_shrinks_segments_and_resends():
    conn = established(plain_config(mss=1460), mss=1460)
    first = send_data(conn, bytes(1460), 0.0)
    assert payloads(first) == [(1, 1460)]
    conn.set_path_mtu(1000)
    assert payloads(sent(conn, 0.0)) == [(1, 960), (961, 500)]


# ---------------------------------------------------------------- congestion control units


def test_newreno_slow_start_and_congestion_avoidance():
    cc = NewReno(1000)
    assert cc.cwnd == initial_window(1000) == 4000
    cc.on_ack(1000, 4000, 0.0, 0.1)
    assert cc.cwnd == 5000
    cc.ssthresh = 5000
    for _ in range(5):
        cc.on_ack(1000, 5000, 0.0, 0.1)
    assert cc.cwnd == 6000                           # one SMSS per window of ACKs
    cc.on_timeout(6000, 1.0)
    assert cc.cwnd == 1000 and cc.ssthresh == 3000


def test_cubic_reduces_by_beta_and_regrows_towards_w_max():
    cc = Cubic(1000)
    cc.cwnd = 100_000
    cc.ssthresh = 50_000
    cc.on_enter_recovery(100_000, 10.0)
    assert cc.ssthresh == 70_000
    cc.on_exit_recovery(70_000)
    assert cc.cwnd == 70_000
    now = 10.0
    samples = []
    while now < 20.0:
        cc.on_ack(1000, cc.cwnd, now, 0.05)
        now += 0.005
        samples.append(cc.cwnd)
    assert samples[-1] > 100_000                     # past W_max after K ≈ 4.2 s
    mid = samples[len(samples) // 4]                 # concave region: near W_max, below it
    assert 70_000 < mid <= 101_000


# ---------------------------------------------------------------- window updates


def test_window_update_only_when_reading_reopens_a_small_window():
    conn = established(plain_config(recv_buffer=4000))
    conn.receive(remote(1, 1, ACK, b"a" * 1000), 0.0)
    sent(conn, 0.0)
    conn.read()
    assert sent(conn, 0.0) == []                    # 3000 of 4000 still open: nothing to say
    conn.receive(remote(1001, 1, ACK, b"b" * 3000), 0.1)
    assert only(conn, 0.1).window == 1000           # the read 1000 rides on this ACK
    conn.receive(remote(4001, 1, ACK, b"c" * 1000), 0.2)
    assert only(conn, 0.2).window == 0
    conn.read(500)
    assert sent(conn, 0.2) == []                    # 500 < one MSS: silly window avoided
    conn.read()
    assert only(conn, 0.2) == local(1, 5001, window=4000)
