"""Every RFC 9293 state and transition, driven by template segments and an explicit time."""

import ipaddress

import pytest

from stacks.utcp import (Connected, Connection, ConnectionClosed, DataReceived, Endpoint,
                         EofReceived, LocalProtocolError, State)
from stacks.utcp.isn import IsnGenerator
from stacks.utcp.states import TRANSITION_NAMES, TRANSITIONS, Event, IllegalTransition, next_state
from stacks.wire.tcp import TcpRepr

from .templates import (ACK, FIN, LOCAL_ISS, LOCAL_PORT, PSH, REMOTE_ISS, REMOTE_PORT, RST, SYN,
                        WINDOW, established, listen_and_syn, local, only, plain_config, remote,
                        send_data, sent, strip)

# ---------------------------------------------------------------- the table itself


def test_table_has_the_rfc_9293_diagram():
    S, E = State, Event
    diagram = {
        (S.CLOSED, E.ACTIVE_OPEN): S.SYN_SENT,
        (S.CLOSED, E.PASSIVE_OPEN): S.LISTEN,
        (S.LISTEN, E.RCV_SYN): S.SYN_RECEIVED,
        (S.SYN_SENT, E.RCV_SYN): S.SYN_RECEIVED,
        (S.SYN_SENT, E.RCV_SYN_ACK): S.ESTABLISHED,
        (S.SYN_RECEIVED, E.RCV_ACK_OF_SYN): S.ESTABLISHED,
        (S.ESTABLISHED, E.CLOSE): S.FIN_WAIT_1,
        (S.ESTABLISHED, E.RCV_FIN): S.CLOSE_WAIT,
        (S.FIN_WAIT_1, E.RCV_ACK_OF_FIN): S.FIN_WAIT_2,
        (S.FIN_WAIT_1, E.RCV_FIN): S.CLOSING,
        (S.FIN_WAIT_2, E.RCV_FIN): S.TIME_WAIT,
        (S.CLOSING, E.RCV_ACK_OF_FIN): S.TIME_WAIT,
        (S.CLOSE_WAIT, E.CLOSE): S.LAST_ACK,
        (S.LAST_ACK, E.RCV_ACK_OF_FIN): S.CLOSED,
        (S.TIME_WAIT, E.TIME_WAIT_EXPIRED): S.CLOSED,
    }
    for key, target in diagram.items():
        assert TRANSITIONS[key] is target
    for state in State:
        if state is not S.CLOSED:
            assert next_state(state, E.RCV_RST) is S.CLOSED
            assert next_state(state, E.ABORT) is S.CLOSED


def test_transition_not_in_table_is_refused():
    with pytest.raises(IllegalTransition):
        next_state(State.CLOSED, Event.RCV_FIN)
    with pytest.raises(IllegalTransition):
        next_state(State.TIME_WAIT, Event.CLOSE)


# ---------------------------------------------------------------- opening


def active(config=None, now=0.0) -> Connection:
    return Connection.connect(80, 49500, isn=LOCAL_ISS, now=now, config=config or plain_config())


def test_active_open_sends_syn_and_completes_on_syn_ack():
    conn = active()
    assert conn.state is State.SYN_SENT
    syn = only(conn, 0.0)
    assert syn == local(0, flags=SYN, window=WINDOW, mss=1000)
    # Replies come from the peer's side of the template: swap roles by building it directly.
    syn_ack = TcpRepr(49500, 80, REMOTE_ISS, LOCAL_ISS + 1, SYN | ACK, 5000, mss=1200)
    conn.receive(syn_ack, 0.01)
    assert conn.state is State.ESTABLISHED
    assert conn.events() == [Connected()]
    assert only(conn, 0.01) == local(1, 1, ACK)
    assert conn.snd_wnd == 5000 and conn.peer_mss == 1200


def test_passive_open_three_way_handshake():
    conn = listen_and_syn()
    assert conn.state is State.SYN_RECEIVED
    assert only(conn, 0.0) == local(0, 1, SYN | ACK, mss=1000)
    conn.receive(remote(1, 1), 0.01)
    assert conn.state is State.ESTABLISHED
    assert conn.events() == [Connected()]


def test_simultaneous_open():
    conn = active()
    sent(conn, 0.0)
    conn.receive(remote(0, flags=SYN, mss=1000), 0.01)
    assert conn.state is State.SYN_RECEIVED
    # SYN+ACK on the same ISS, acknowledging their SYN.
    assert only(conn, 0.01) == local(0, 1, SYN | ACK, mss=1000)
    conn.receive(remote(0, 1, SYN | ACK, mss=1000), 0.02)   # their SYN+ACK crosses ours
    assert conn.state is State.ESTABLISHED
    assert conn.events() == [Connected()]
    conn.receive(remote(1, 1), 0.02)                       # and their ACK of our SYN-ACK
    assert conn.state is State.ESTABLISHED and sent(conn, 0.02) == []


def test_reset_after_a_simultaneous_open_is_a_refusal():
    conn = active()
    sent(conn, 0.0)
    conn.receive(remote(0, flags=SYN, mss=1000), 0.01)       # SYN-SENT -> SYN-RECEIVED
    sent(conn, 0.01)
    conn.receive(remote(1, flags=RST), 0.02)                 # exactly at RCV.NXT
    assert conn.state is State.CLOSED
    assert conn.error.reason == "refused"                    # RFC 9293 3.10.7.4
    assert conn.events() == [ConnectionClosed(conn.error)]


def test_syn_sent_reset_with_acceptable_ack_is_refused():
    conn = active()
    sent(conn, 0.0)
    conn.receive(remote(0, 1, RST | ACK), 0.01)
    assert conn.state is State.CLOSED
    [closed] = conn.events()
    assert closed.error.reason == "refused"


def test_syn_sent_ignores_reset_with_wrong_ack_and_resets_bad_syn_ack():
    conn = active()
    sent(conn, 0.0)
    conn.receive(remote(0, 7, RST | ACK), 0.01)
    assert conn.state is State.SYN_SENT and sent(conn, 0.01) == []
    conn.receive(remote(0, 7, SYN | ACK), 0.01)
    assert conn.state is State.SYN_SENT
    assert only(conn, 0.01) == local(7, flags=RST, window=0)


def test_close_in_syn_sent_goes_to_closed():
    conn = active()
    sent(conn, 0.0)
    conn.close()
    assert conn.state is State.CLOSED
    assert conn.events() == [ConnectionClosed(None)]


def test_syn_retransmission_backs_off_then_times_out():
    conn = active(plain_config(syn_retries=3))
    sent(conn, 0.0)
    times = []
    now = 0.0
    while conn.state is State.SYN_SENT:
        now = conn.poll_at()
        conn.on_timer(now)
        out = sent(conn, now)
        if out:
            assert out == [local(0, flags=SYN, mss=1000)]
            times.append(now)
    assert times == [1.0, 3.0, 7.0]
    assert now == 15.0
    assert conn.error.reason == "timeout"


def test_syn_received_resends_syn_ack_for_duplicate_syn():
    conn = listen_and_syn()
    sent(conn, 0.0)
    conn.receive(remote(0, flags=SYN), 0.5)
    assert only(conn, 0.5) == local(0, 1, SYN | ACK, mss=1000)
    assert conn.state is State.SYN_RECEIVED


def test_syn_received_bad_ack_draws_reset():
    conn = listen_and_syn()
    sent(conn, 0.0)
    conn.receive(remote(1, 50), 0.1)
    assert conn.state is State.SYN_RECEIVED
    assert only(conn, 0.1) == local(50, flags=RST, window=0)


def test_syn_received_retransmits_syn_ack_on_timeout():
    conn = listen_and_syn()
    sent(conn, 0.0)
    assert conn.poll_at() == 1.0
    conn.on_timer(1.0)
    assert only(conn, 1.0) == local(0, 1, SYN | ACK, mss=1000)


def test_close_during_handshake_sends_fin_once_established():
    conn = listen_and_syn()
    sent(conn, 0.0)
    conn.close()
    assert conn.state is State.SYN_RECEIVED and sent(conn, 0.0) == []
    conn.receive(remote(1, 1), 0.1)
    assert conn.state is State.FIN_WAIT_1
    assert only(conn, 0.1) == local(1, 1, FIN | ACK)


# ---------------------------------------------------------------- data


def test_data_both_ways():
    conn = established()
    conn.receive(remote(1, 1, ACK | PSH, b"hello"), 0.1)
    assert conn.events() == [DataReceived(5)]
    assert conn.read() == b"hello"
    assert only(conn, 0.1) == local(1, 6, window=WINDOW - 5)   # 5 bytes: too little to reopen (SWS)
    assert send_data(conn, b"world", 0.2) == [local(1, 6, ACK | PSH, b"world", window=WINDOW - 5)]
    conn.receive(remote(6, 6), 0.3)
    assert conn.snd_una == LOCAL_ISS + 6


def test_send_after_close_is_a_local_error():
    conn = established()
    conn.close()
    with pytest.raises(LocalProtocolError):
        conn.send(b"x")


# ---------------------------------------------------------------- closing


def test_active_close_fin_wait_1_2_time_wait_closed():
    conn = established()
    conn.close()
    assert conn.state is State.FIN_WAIT_1
    assert only(conn, 1.0) == local(1, 1, FIN | ACK)
    conn.receive(remote(1, 2), 1.1)
    assert conn.state is State.FIN_WAIT_2
    conn.receive(remote(1, 2, FIN | ACK), 1.2)
    assert conn.state is State.TIME_WAIT
    assert conn.events() == [EofReceived(), ConnectionClosed(None)]
    assert only(conn, 1.2) == local(2, 2, window=WINDOW - 1)   # the right edge stays put
    assert conn.poll_at() == 1.2 + 60.0
    conn.on_timer(61.0)
    assert conn.state is State.TIME_WAIT
    conn.on_timer(61.2)
    assert conn.state is State.CLOSED


def test_fin_with_ack_of_our_fin_goes_straight_to_time_wait():
    conn = established()
    conn.close()
    sent(conn, 0.0)
    conn.receive(remote(1, 2, FIN | ACK), 0.1)
    assert conn.state is State.TIME_WAIT
    assert conn.stats["FIN-WAIT-1->FIN-WAIT-2"] == 1
    assert conn.stats["FIN-WAIT-2->TIME-WAIT"] == 1


def test_simultaneous_close_through_closing():
    conn = established()
    conn.close()
    sent(conn, 0.0)
    conn.receive(remote(1, 1, FIN | ACK), 0.1)      # their FIN, not acknowledging ours
    assert conn.state is State.CLOSING
    assert only(conn, 0.1) == local(2, 2, window=WINDOW - 1)
    conn.receive(remote(2, 2), 0.2)
    assert conn.state is State.TIME_WAIT


def test_passive_close_close_wait_last_ack_closed():
    conn = established()
    conn.receive(remote(1, 1, FIN | ACK), 0.1)
    assert conn.state is State.CLOSE_WAIT
    assert conn.events() == [EofReceived()]
    assert conn.eof_received
    assert only(conn, 0.1) == local(1, 2, window=WINDOW - 1)
    assert send_data(conn, b"bye", 0.2) == [local(1, 2, ACK | PSH, b"bye", window=WINDOW - 1)]
    conn.close()
    assert conn.state is State.LAST_ACK
    assert only(conn, 0.2) == local(4, 2, FIN | ACK, window=WINDOW - 1)
    conn.receive(remote(2, 4), 0.3)
    assert conn.state is State.LAST_ACK        # data acknowledged, FIN not yet
    conn.receive(remote(2, 5), 0.3)
    assert conn.state is State.CLOSED
    assert conn.events()[-1] == ConnectionClosed(None)


def test_fin_is_retransmitted_in_last_ack():
    conn = established()
    conn.receive(remote(1, 1, FIN | ACK), 0.0)
    sent(conn, 0.0)
    conn.close()
    assert only(conn, 0.0) == local(1, 2, FIN | ACK, window=WINDOW - 1)
    conn.on_timer(conn.poll_at())
    assert only(conn, 1.0) == local(1, 2, FIN | ACK, window=WINDOW - 1)


def test_time_wait_acks_retransmitted_fin_and_restarts_2msl():
    conn = established()
    conn.close()
    sent(conn, 0.0)
    conn.receive(remote(1, 2, FIN | ACK), 0.0)
    sent(conn, 0.0)
    conn.receive(remote(1, 2, FIN | ACK), 30.0)   # our ACK was lost
    assert only(conn, 30.0) == local(2, 2, window=WINDOW - 1)
    assert conn.poll_at() == 90.0


def test_time_wait_acks_retransmitted_data_and_restarts_2msl():
    # The peer retransmits from its oldest unacknowledged byte, data before its FIN.
    conn = established()
    conn.close()
    sent(conn, 0.0)
    conn.receive(remote(4, 2, FIN | ACK, b"def"), 0.0)
    conn.receive(remote(1, 2, ACK, b"abc"), 0.0)
    assert conn.state is State.TIME_WAIT
    sent(conn, 0.0)
    conn.receive(remote(1, 2, ACK, b"abc"), 50.0)    # every ACK we sent was lost
    assert only(conn, 50.0) == local(2, 8, window=WINDOW - 7)
    assert conn.poll_at() == 110.0
    conn.on_timer(100.0)
    assert conn.state is State.TIME_WAIT
    conn.receive(remote(8, 2, ACK), 101.0)            # a pure ACK in place: nothing to answer
    assert sent(conn, 101.0) == [] and conn.poll_at() == 110.0


def test_out_of_order_fin_waits_for_the_data_before_it():
    conn = established()
    conn.receive(remote(4, 1, FIN | ACK, b"def"), 0.0)
    assert conn.state is State.ESTABLISHED
    conn.receive(remote(1, 1, ACK, b"abc"), 0.1)
    assert conn.state is State.CLOSE_WAIT
    assert conn.read() == b"abcdef"


# ---------------------------------------------------------------- resets (RFC 5961 section 3)

SYNCHRONIZED_SETUPS = {}


def _to(state, config=None):
    """A connection in ``state``, its output drained and its events taken."""
    if state is State.SYN_SENT:
        conn = active(config)
    elif state is State.SYN_RECEIVED:
        conn = listen_and_syn(config)
    else:
        conn = established(config)
    if state is State.FIN_WAIT_1:
        conn.close()
        sent(conn, 0.0)
    elif state is State.FIN_WAIT_2:
        conn.close()
        sent(conn, 0.0)
        conn.receive(remote(1, 2), 0.0)
    elif state is State.CLOSE_WAIT:
        conn.receive(remote(1, 1, FIN | ACK), 0.0)
    elif state is State.CLOSING:
        conn.close()
        sent(conn, 0.0)
        conn.receive(remote(1, 1, FIN | ACK), 0.0)
    elif state is State.LAST_ACK:
        conn.receive(remote(1, 1, FIN | ACK), 0.0)
        conn.close()
    elif state is State.TIME_WAIT:
        conn.close()
        sent(conn, 0.0)
        conn.receive(remote(1, 2, FIN | ACK), 0.0)
    assert conn.state is state
    sent(conn, 0.0)
    conn.events()
    return conn


ALL_SYNC = [State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSE_WAIT,
            State.CLOSING, State.LAST_ACK, State.TIME_WAIT]


@pytest.mark.parametrize("state", ALL_SYNC, ids=lambda s: s.value)
def test_exact_reset_closes_every_synchronized_state(state):
    conn = _to(state)
    rcv = conn.rcv_nxt - REMOTE_ISS
    conn.receive(remote(rcv, flags=RST), 1.0)
    assert conn.state is State.CLOSED
    if state is not State.TIME_WAIT:
        assert conn.events() == [ConnectionClosed(conn.error)]
        assert conn.error.reason == "reset"
    assert sent(conn, 1.0) == []


@pytest.mark.parametrize("state", ALL_SYNC, ids=lambda s: s.value)
def test_in_window_reset_draws_challenge_ack(state):
    conn = _to(state)
    rcv = conn.rcv_nxt - REMOTE_ISS
    conn.receive(remote(rcv + 100, flags=RST), 1.0)
    assert conn.state is state
    [ack] = sent(conn, 1.0)
    assert ack.flags == ACK and ack.ack == conn.rcv_nxt & 0xFFFFFFFF
    assert conn.stats["challenge_acks"] == 1


@pytest.mark.parametrize("state", ALL_SYNC, ids=lambda s: s.value)
def test_out_of_window_reset_is_ignored(state):
    conn = _to(state)
    conn.receive(remote(WINDOW + 5000, flags=RST), 1.0)
    conn.receive(remote(-10, flags=RST), 1.0)
    assert conn.state is state
    assert sent(conn, 1.0) == []


def test_reset_in_syn_received_closes():
    conn = listen_and_syn()
    sent(conn, 0.0)
    conn.receive(remote(1, flags=RST), 0.1)
    assert conn.state is State.CLOSED


def test_in_window_reset_in_syn_received_draws_a_challenge_ack():
    conn = listen_and_syn()
    sent(conn, 0.0)
    conn.receive(remote(1 + 100, flags=RST), 0.1)
    assert conn.state is State.SYN_RECEIVED
    [ack] = sent(conn, 0.1)
    assert ack.flags == ACK
    assert (ack.seq, ack.ack) == (LOCAL_ISS + 1, REMOTE_ISS + 1)
    assert conn.stats["challenge_acks"] == 1


def test_unacceptable_segment_in_syn_received_draws_an_ack():
    conn = listen_and_syn()
    sent(conn, 0.0)
    conn.receive(remote(WINDOW + 5000, 1, payload=b"x"), 0.1)
    assert conn.state is State.SYN_RECEIVED
    assert conn.stats["unacceptable"] == 1
    [ack] = sent(conn, 0.1)
    assert ack.flags == ACK
    assert (ack.seq, ack.ack) == (LOCAL_ISS + 1, REMOTE_ISS + 1)


def test_reset_with_ack_in_syn_received_closes_the_half_open_connection():
    # RFC 9293 3.10.7.4 sends a passive open back to LISTEN; here the Listener never left
    # LISTEN (see test_reset_in_syn_received_leaves_the_listener_listening), so the
    # half-open connection itself just closes, without a reply.
    conn = listen_and_syn()
    sent(conn, 0.0)
    conn.receive(remote(1, 1, RST | ACK), 0.1)
    assert conn.state is State.CLOSED
    assert conn.stats["SYN-RECEIVED->CLOSED"] == 1
    assert conn.error.reason == "reset"
    assert conn.events() == [ConnectionClosed(conn.error)]
    assert sent(conn, 0.1) == []


@pytest.mark.parametrize("state", ALL_SYNC, ids=lambda s: s.value)
def test_syn_in_synchronized_state_draws_challenge_ack(state):
    conn = _to(state)
    conn.receive(remote(12345, flags=SYN), 1.0)
    assert conn.state is state
    [ack] = sent(conn, 1.0)
    assert ack.flags == ACK and ack.seq == conn.snd_max & 0xFFFFFFFF


def test_challenge_acks_are_rate_limited():
    conn = established(plain_config(challenge_ack_limit=3))
    answers = 0
    for i in range(10):
        conn.receive(remote(500 + i, flags=RST), 1.0 + i * 0.01)
        answers += len(sent(conn, 1.0))
    assert answers == 3
    assert conn.stats["challenge_acks_suppressed"] == 7
    conn.receive(remote(600, flags=RST), 2.5)          # a new one-second window
    assert len(sent(conn, 2.5)) == 1


# ---------------------------------------------------------------- bad ACKs, old duplicates, windows


def test_ack_for_unsent_data_is_answered_and_dropped():
    conn = established()
    conn.receive(remote(1, 500, ACK, b"data"), 0.1)
    assert conn.readable == 0
    assert only(conn, 0.1) == local(1, 1)
    assert conn.stats["ack_unacceptable"] == 1


def test_ack_too_far_behind_is_challenged():
    conn = established()
    conn.receive(remote(1, -WINDOW - 100, ACK, b"x"), 0.1)
    assert conn.readable == 0
    assert conn.stats["challenge_acks"] == 1


def test_old_duplicate_is_acknowledged_not_delivered_twice():
    conn = established()
    conn.receive(remote(1, 1, ACK, b"abc"), 0.0)
    sent(conn, 0.0)
    conn.receive(remote(1, 1, ACK, b"abc"), 0.1)
    assert conn.read() == b"abc"
    assert only(conn, 0.1) == local(1, 4, window=WINDOW - 3)


def test_overlap_with_left_edge_is_trimmed():
    conn = established()
    conn.receive(remote(1, 1, ACK, b"abc"), 0.0)
    conn.receive(remote(2, 1, ACK, b"bcdef"), 0.0)
    assert conn.read() == b"abcdef"


def test_data_beyond_the_window_is_trimmed():
    conn = established(plain_config(recv_buffer=10))
    conn.receive(remote(1, 1, ACK | FIN, b"0123456789abc"), 0.0)
    assert conn.read() == b"0123456789"
    assert conn.state is State.ESTABLISHED    # the FIN lay beyond the window


def test_zero_window_accepts_only_empty_segments_at_rcv_nxt():
    conn = established(plain_config(recv_buffer=4))
    conn.receive(remote(1, 1, ACK, b"full"), 0.0)
    assert only(conn, 0.0) == local(1, 5, window=0)
    conn.receive(remote(5, 1, ACK, b"more"), 0.1)
    assert conn.stats["unacceptable"] == 1
    assert only(conn, 0.1) == local(1, 5, window=0)
    conn.receive(remote(5, 1, ACK), 0.2)
    assert sent(conn, 0.2) == []
    assert conn.read() == b"full"
    assert only(conn, 0.3) == local(1, 5, window=4)   # reading reopens the window


def test_out_of_order_segments_are_reassembled():
    conn = established()
    conn.receive(remote(7, 1, ACK, b"ghi"), 0.0)
    assert only(conn, 0.0) == local(1, 1)          # duplicate ACK at once
    conn.receive(remote(4, 1, ACK, b"def"), 0.0)
    conn.receive(remote(1, 1, ACK, b"abc"), 0.0)
    assert only(conn, 0.0) == local(1, 10, window=WINDOW - 9)
    assert conn.read() == b"abcdefghi"


def test_segment_without_ack_is_dropped():
    conn = established()
    conn.receive(remote(1, 0, PSH, b"abc"), 0.0)
    assert conn.readable == 0


def test_abort_sends_reset():
    conn = established()
    conn.abort()
    assert conn.state is State.CLOSED
    assert only(conn, 0.0) == local(1, 1, RST | ACK, window=0)


# ---------------------------------------------------------------- abort (RFC 9293 3.10.4)

OPEN_STATES = [State.SYN_SENT, State.SYN_RECEIVED] + ALL_SYNC

#: What abort() puts on the wire per RFC 9293 3.10.4: a reset at SND.NXT where the peer has a
#: TCB to reset (with ACK, as Linux sends it), nothing where it has none yet (SYN-SENT) or
#: where the RFC answers just "ok" (CLOSING, LAST-ACK, TIME-WAIT).
ABORT_OUTPUT = {
    State.SYN_SENT: [],
    State.SYN_RECEIVED: [local(1, 1, RST | ACK, window=0)],
    State.ESTABLISHED: [local(1, 1, RST | ACK, window=0)],
    State.FIN_WAIT_1: [local(2, 1, RST | ACK, window=0)],     # our FIN took a sequence number
    State.FIN_WAIT_2: [local(2, 1, RST | ACK, window=0)],
    State.CLOSE_WAIT: [local(1, 2, RST | ACK, window=0)],     # their FIN took one
    State.CLOSING: [],
    State.LAST_ACK: [],
    State.TIME_WAIT: [],
}


@pytest.mark.parametrize("state", OPEN_STATES, ids=lambda s: s.value)
def test_abort_closes_every_open_state_and_reports_it_once(state):
    conn = _to(state)
    conn.abort()
    assert conn.state is State.CLOSED
    assert conn.stats[f"{state.value}->CLOSED"] == 1
    assert conn.error is None                      # the application's own doing, not a failure
    if state is State.TIME_WAIT:
        assert conn.events() == []                 # reported on entering TIME-WAIT already
    else:
        assert conn.events() == [ConnectionClosed(None)]
    sent(conn, 0.0)
    conn.abort()                                   # a second abort is a no-op
    assert conn.events() == [] and sent(conn, 0.0) == []


@pytest.mark.parametrize("state", OPEN_STATES, ids=lambda s: s.value)
def test_abort_sends_what_rfc_9293_says(state):
    # 3.10.4: a reset where the peer may still have data in flight or to read;
    # nothing once both FINs are out (CLOSING, LAST-ACK, TIME-WAIT), as in Linux.
    conn = _to(state)
    conn.abort()
    assert sent(conn, 0.0) == ABORT_OUTPUT[state]


# ---------------------------------------------------------------- giving up (user timeout)

#: The segment each state keeps retransmitting until it gives up.
RETRANSMITTED = {
    State.SYN_RECEIVED: local(0, 1, SYN | ACK, mss=1000),
    State.FIN_WAIT_1: local(1, 1, FIN | ACK),
    State.CLOSING: local(1, 2, FIN | ACK, window=WINDOW - 1),
    State.LAST_ACK: local(1, 2, FIN | ACK, window=WINDOW - 1),
}


def _run_timers_until_state_leaves(conn, state):
    """Fire every deadline the connection asks for; return (retransmissions, time it left)."""
    retransmissions, now = [], 0.0
    while conn.state is state:
        now = conn.poll_at()
        conn.on_timer(now)
        retransmissions += [(now, seg) for seg in sent(conn, now)]
    return retransmissions, now


@pytest.mark.parametrize("state", list(RETRANSMITTED), ids=lambda s: s.value)
def test_retransmissions_give_up_with_timeout(state):
    conn = _to(state, plain_config(syn_retries=3, max_retries=3))
    retransmissions, now = _run_timers_until_state_leaves(conn, state)
    # Backed-off RTOs of 1, 2, 4 s, then 8 s for the last one to be answered.
    assert retransmissions == [(t, RETRANSMITTED[state]) for t in (1.0, 3.0, 7.0)]
    assert now == 15.0
    assert conn.state is State.CLOSED
    assert conn.stats[f"{state.value}->CLOSED"] == 1
    assert conn.error.reason == "timeout"
    assert conn.events() == [ConnectionClosed(conn.error)]
    assert sent(conn, now) == [] and conn.poll_at() is None


# ---------------------------------------------------------------- listening

HERE = ipaddress.ip_address("10.1.0.1")
PEER = ipaddress.ip_address("10.1.0.2")


def _listening():
    endpoint = Endpoint(config=plain_config(), isn=IsnGenerator(b"k" * 32), seed=7)
    return endpoint, endpoint.listen(None, LOCAL_PORT)


def _half_open(endpoint, now=0.0):
    """The peer's SYN to the listener; returns the connection and our SYN-ACK."""
    conn = endpoint.receive(PEER, HERE, remote(0, flags=SYN, mss=1000), now)
    [(_, _, syn_ack)] = endpoint.segments_to_send(now)
    assert conn.state is State.SYN_RECEIVED and syn_ack.flags == SYN | ACK
    return conn, syn_ack


def test_reset_in_syn_received_leaves_the_listener_listening():
    # RFC 9293's "return to LISTEN": the half-open entry goes, the listener takes new SYNs.
    endpoint, listener = _listening()
    conn, syn_ack = _half_open(endpoint)
    reset = strip(remote(1, 0, RST | ACK), ack=(syn_ack.seq + 1) & 0xFFFFFFFF)
    endpoint.receive(PEER, HERE, reset, 0.1)
    assert conn.state is State.CLOSED
    assert endpoint.segments_to_send(0.1) == []
    assert not listener.syn_queue and not listener.accept_queue
    again, _ = _half_open(endpoint, 0.2)
    assert again is not conn and list(listener.syn_queue.values()) == [again]


def test_a_connection_never_rests_in_listen_closing_the_listener_is_listen_to_closed():
    # LISTEN belongs to Listener objects: Connection.accept passes CLOSED -> LISTEN ->
    # SYN-RECEIVED within one call, so no Connection can be closed in LISTEN.
    conn = listen_and_syn()
    assert conn.state is State.SYN_RECEIVED
    assert conn.stats["CLOSED->LISTEN"] == conn.stats["LISTEN->SYN-RECEIVED"] == 1
    # Closing the listener stops listening and resets the handshakes it had begun.
    endpoint, listener = _listening()
    half_open, syn_ack = _half_open(endpoint)
    endpoint.unlisten(listener)
    assert listener.closed and half_open.state is State.CLOSED
    [(_, _, rst)] = endpoint.segments_to_send(0.1)
    assert rst == TcpRepr(LOCAL_PORT, REMOTE_PORT, (syn_ack.seq + 1) & 0xFFFFFFFF,
                          REMOTE_ISS + 1, RST | ACK, 0)
    # The port is closed now: a new SYN is refused.
    endpoint.receive(PEER, HERE, remote(500, flags=SYN, mss=1000), 0.2)
    [(_, _, refusal)] = endpoint.segments_to_send(0.2)
    assert refusal == TcpRepr(LOCAL_PORT, REMOTE_PORT, 0, REMOTE_ISS + 501, RST | ACK, 0)


# ---------------------------------------------------------------- every transition is reached


def _active_open():
    conn = _to(State.SYN_SENT)
    conn.receive(remote(0, 1, SYN | ACK, mss=1000), 0.1)
    return conn, State.ESTABLISHED


def _simultaneous_open():
    conn = _to(State.SYN_SENT)
    conn.receive(remote(0, flags=SYN, mss=1000), 0.1)
    sent(conn, 0.1)
    conn.receive(remote(1, 1), 0.2)
    return conn, State.ESTABLISHED


def _close_in_syn_sent():
    conn = _to(State.SYN_SENT)
    conn.close()
    return conn, State.CLOSED


def _time_wait_expires():
    conn = _to(State.TIME_WAIT)
    conn.on_timer(conn.poll_at())
    return conn, State.CLOSED


def _simultaneous_close():
    conn = _to(State.CLOSING)
    conn.receive(remote(2, 2), 0.1)
    return conn, State.TIME_WAIT


def _passive_close():
    conn = _to(State.LAST_ACK)
    conn.receive(remote(2, 2), 0.1)
    return conn, State.CLOSED


def _aborted(state):
    conn = _to(state)
    conn.abort()
    return conn, State.CLOSED


SCENARIOS = [_active_open, _simultaneous_open, _close_in_syn_sent, _time_wait_expires,
             _simultaneous_close, _passive_close] \
    + [lambda state=state: _aborted(state) for state in OPEN_STATES]

#: Transitions no Connection can make, each with the reason.
NOT_MADE_BY_CONNECTIONS = {
    # A Connection passes through LISTEN inside Connection.accept and never rests there:
    # listening is done by Listener objects (test_a_connection_never_rests_in_listen_...).
    "LISTEN->CLOSED",
}


def test_every_transition_in_the_table_is_reached():
    reached = set()
    for scenario in SCENARIOS:
        conn, final = scenario()
        assert conn.state is final, scenario
        reached |= {name for name, count in conn.stats.items() if "->" in name and count}
    names = set(TRANSITION_NAMES.values())
    assert reached <= names, f"counted under names not in the table: {sorted(reached - names)}"
    assert NOT_MADE_BY_CONNECTIONS <= names
    assert not reached & NOT_MADE_BY_CONNECTIONS, "an excluded transition happened after all"
    missing = names - NOT_MADE_BY_CONNECTIONS - reached
    assert not missing, f"transitions never reached: {sorted(missing)}"
