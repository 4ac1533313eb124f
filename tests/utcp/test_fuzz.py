"""Arbitrary segments never crash an endpoint or break a connection's invariants."""

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from stacks.utcp import Endpoint, State, TcpConfig
from stacks.utcp import seq as sq
from stacks.utcp.isn import IsnGenerator
from stacks.wire.tcp import TcpFlags, TcpRepr

HERE = ipaddress.ip_address("10.2.0.1")
PEER = ipaddress.ip_address("10.2.0.2")


def setup(config: TcpConfig):
    ep = Endpoint(config=config, isn=IsnGenerator(b"f" * 32), seed=1)
    listener = ep.listen(None, 80, backlog=4, syn_queue=4)
    ep.receive(PEER, HERE, TcpRepr(5000, 80, 1000, 0, TcpFlags.SYN, 65535, mss=1460,
                                   window_scale=7, sack_permitted=True, timestamp=(1, 0)), 0.0)
    [(_, _, syn_ack)] = ep.segments_to_send(0.0)
    ep.receive(PEER, HERE, TcpRepr(5000, 80, 1001, sq.add(syn_ack.seq, 1), TcpFlags.ACK, 512,
                                   timestamp=(2, syn_ack.timestamp[0]) if syn_ack.timestamp
                                   else None), 0.0)
    conn = listener.accept()
    conn.send(b"x" * 5000)
    ep.touch(conn)
    ep.segments_to_send(0.0)
    return ep, conn, syn_ack


def near(base: int):
    return st.one_of(st.integers(0, 2**32 - 1),
                     st.integers(-70000, 70000).map(lambda d: (base + d) & 0xFFFFFFFF))


segments = st.fixed_dictionaries({
    "sport": st.sampled_from([5000, 5001, 80]),
    "dport": st.sampled_from([80, 81]),
    "dseq": st.integers(-70000, 70000),
    "dack": st.integers(-70000, 70000),
    "random_numbers": st.booleans(),
    "flags": st.integers(0, 255),
    "window": st.integers(0, 65535),
    "mss": st.none() | st.integers(0, 65535),
    "window_scale": st.none() | st.integers(0, 255),
    "sack_blocks": st.lists(st.tuples(st.integers(-70000, 70000), st.integers(-70000, 70000)),
                            max_size=4),
    "timestamp": st.none() | st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    "payload": st.binary(max_size=3000),
    "dt": st.floats(0, 5),
})


@settings(max_examples=100)
@given(st.lists(segments, min_size=1, max_size=20), st.booleans(), st.booleans())
def test_random_segments_never_crash_and_keep_invariants(segs, sack, timestamps):
    ep, conn, syn_ack = setup(TcpConfig(sack=sack, timestamps=timestamps, recv_buffer=20000))
    now = 0.0
    for s in segs:
        now += s["dt"]
        rcv = sq.wrap(conn.rcv_nxt)
        una = sq.wrap(conn.snd_una)
        seq = s["dseq"] & 0xFFFFFFFF if s["random_numbers"] else (rcv + s["dseq"]) & 0xFFFFFFFF
        ack = s["dack"] & 0xFFFFFFFF if s["random_numbers"] else (una + s["dack"]) & 0xFFFFFFFF
        blocks = tuple(((una + a) & 0xFFFFFFFF, (una + b) & 0xFFFFFFFF) for a, b in s["sack_blocks"])
        seg = TcpRepr(s["sport"], s["dport"], seq, ack, TcpFlags(s["flags"]), s["window"],
                      mss=s["mss"], window_scale=s["window_scale"], sack_blocks=blocks,
                      timestamp=s["timestamp"], payload=s["payload"])
        ep.receive(PEER, HERE, seg, now)
        ep.on_timer(now)
        for _, _, out in ep.segments_to_send(now):
            out.emit(HERE, PEER)                   # every segment we make is encodable
        conn.read()
        assert conn.snd_una <= conn.snd_nxt <= conn.snd_max or conn.state is State.CLOSED
        assert conn.readable <= conn.config.recv_buffer
        assert conn.cc.cwnd >= 1 and conn.rto.rto > 0
