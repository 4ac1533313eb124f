"""The read-only views of the core for `multistack-ctl ss`: byte counters and snapshots."""

from stacks.utcp import State

from .templates import ACK, remote, send_data, sent, established
from .test_endpoint import HERE, PEER, closed_from_here, endpoint, handshake


def test_a_timeout_retransmission_is_counted_in_segments_and_bytes():
    conn = established()
    send_data(conn, bytes(4000), 0.0)                 # four segments of 1000
    conn.receive(remote(1, 1001), 0.1)                # the first is acknowledged
    conn.on_timer(conn.poll_at())
    assert [len(s.payload) for s in sent(conn, 2.0)] == [1000]
    snap = conn.snapshot()
    assert snap["state"] == "ESTABLISHED"
    assert (snap["bytes_sent"], snap["bytes_retransmitted"], snap["bytes_acked"]) == (5000, 1000, 1000)
    assert (snap["retransmits"], snap["timeouts"]) == (1, 1)
    assert snap["send_queue"] == 3000 and snap["cwnd"] == 1000 and snap["ssthresh"] == 2000
    assert snap["srtt_ms"] is not None and snap["rto_ms"] > 1000   # sampled, then backed off


def test_a_fast_retransmission_is_counted_in_bytes():
    conn = established()
    send_data(conn, bytes(4000), 0.0)
    for _ in range(3):
        conn.receive(remote(1, 1), 0.1)
    assert [len(s.payload) for s in sent(conn, 0.1)] == [1000]
    snap = conn.snapshot()
    assert (snap["bytes_sent"], snap["bytes_retransmitted"], snap["retransmits"]) == (5000, 1000, 1)
    assert snap["bytes_acked"] == 0 and snap["in_flight"] == 4000


def test_received_bytes_count_once_they_are_in_order():
    conn = established()
    assert conn.snapshot()["ssthresh"] is None        # no loss yet: still "arbitrarily high"
    conn.receive(remote(101, 1, ACK, b"b" * 100), 0.0)    # out of order: held, not counted
    assert conn.snapshot()["bytes_received"] == 0
    conn.receive(remote(1, 1, ACK, b"a" * 100), 0.0)      # fills the hole: both count
    snap = conn.snapshot()
    assert snap["bytes_received"] == 200 and snap["receive_queue"] == 200
    conn.read(150)
    assert conn.snapshot()["receive_queue"] == 50 and conn.snapshot()["bytes_received"] == 200


def test_endpoint_snapshot_lists_listeners_connections_and_time_wait_records():
    ep = endpoint()
    listener = ep.listen(None, 80, backlog=5)
    closed = closed_from_here(ep, listener, 1002, now=0.1)
    handshake(ep, PEER, 1001, now=0.1)                    # waits in the accept queue
    ep.release(closed)
    ep.segments_to_send(0.2)                              # TIME-WAIT kept as a record
    assert closed.state is State.CLOSED and ep.in_time_wait(closed.key)
    rows = {(r["state"], r["remote_port"]): r for r in ep.snapshot()}
    assert set(rows) == {("LISTEN", None), ("ESTABLISHED", 1001), ("TIME-WAIT", 1002)}
    listening = rows["LISTEN", None]
    assert listening["local_address"] is None and listening["local_port"] == 80
    assert (listening["receive_queue"], listening["send_queue"]) == (1, 5)   # accept queue, backlog
    established_row = rows["ESTABLISHED", 1001]
    assert (established_row["local_address"], established_row["remote_address"]) == (str(HERE), str(PEER))
    assert established_row["segments_in"] >= 1 and established_row["cwnd"] > 0
    assert rows["TIME-WAIT", 1002]["local_port"] == 80
