"""Two UTCP endpoints over the lossy in-memory port pair.

Random loss, duplication, reordering and delay (hypothesis, fixed seed,
bounded budget) never corrupt either byte stream, and every run ends: both
connections close and every timer runs out.  Time is simulated: the
memory pair reads the same explicit clock the endpoints are given, and
the loop jumps to the next deadline.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multistack.memport import memory_pair
from stacks.utcp import Endpoint, LocalProtocolError, State, TcpConfig
from stacks.utcp.isn import IsnGenerator
from stacks.wire.errors import MalformedPacket
from stacks.wire.ethernet import EtherType, EthernetRepr
from stacks.wire.frame import build_frame, parse_frame
from stacks.wire.ipv4 import Ipv4Repr
from stacks.wire.tcp import PROTOCOL, TcpRepr

CLIENT = ipaddress.ip_address("10.9.0.1")
SERVER = ipaddress.ip_address("10.9.0.2")
SIM_LIMIT = 3000.0         # simulated seconds; a run that needs more is a failure


class Station:
    """An endpoint on one memory port: frames in and out, nothing else."""

    def __init__(self, port, addr, peer_mac, config, seed):
        self.port = port
        self.addr = addr
        self.peer_mac = peer_mac
        self.endpoint = Endpoint(config=config, isn=IsnGenerator(bytes([seed % 256]) * 32),
                                 seed=seed)

    def receive(self, now):
        for frame in self.port.recv_batch():
            try:
                parsed = parse_frame(frame)
            except MalformedPacket:
                raise AssertionError("the memory pair corrupted nothing, so no frame is malformed")
            seg = parsed.transport
            assert isinstance(seg, TcpRepr)
            self.endpoint.receive(parsed.network.src, parsed.network.dst, seg, now)

    def transmit(self, now):
        frames = [build_frame(EthernetRepr(self.peer_mac, self.port.mac, EtherType.IPV4),
                              Ipv4Repr(src, dst, PROTOCOL), seg)
                  for src, dst, seg in self.endpoint.segments_to_send(now)]
        if frames:
            assert self.port.send_batch(frames) == len(frames)
            self.port.sync()


class Peer:
    """The application on one side: send ``outgoing``, close, read everything."""

    def __init__(self, outgoing: bytes, read_chunk: int, rng: random.Random):
        self.outgoing = outgoing
        self.sent = 0
        self.received = bytearray()
        self.read_chunk = read_chunk
        self.rng = rng
        self.conn = None

    def step(self, station: Station) -> None:
        conn = self.conn
        if conn is None:
            return
        touched = False
        if conn.state in (State.ESTABLISHED, State.CLOSE_WAIT) and self.sent < len(self.outgoing):
            n = conn.send(self.outgoing[self.sent:self.sent + 32768])
            self.sent += n
            touched = n > 0
            if self.sent == len(self.outgoing):
                conn.close()
        elif conn.state in (State.ESTABLISHED, State.CLOSE_WAIT) and not self.outgoing:
            conn.close()
            touched = True
        # A slow reader now and then, so windows close and reopen.
        if conn.readable and self.rng.random() < 0.7:
            self.received += conn.read(self.read_chunk)
            touched = True
        if touched:
            station.endpoint.touch(conn)

    def done(self) -> bool:
        return self.conn is not None and self.conn.state in (State.CLOSED, State.TIME_WAIT) \
            and self.conn.readable == 0


def run_transfer(*, loss, duplicate, reorder, delay, seed, to_server: bytes, to_client: bytes,
                 config: TcpConfig, read_chunk: int,
                 syn_cookies: bool = False) -> tuple[Peer, Peer, float]:
    now = 0.0
    a, b = memory_pair(loss=loss, duplicate=duplicate, reorder=reorder, delay=delay,
                       reorder_delay=3 * delay, seed=seed, clock=lambda: now)
    client = Station(a, CLIENT, b.mac, config, seed)
    server = Station(b, SERVER, a.mac, config, seed + 1)
    # No SYN queue: every handshake is answered with a cookie and rebuilt from it.
    listener = server.endpoint.listen(SERVER, 80, syn_queue=0 if syn_cookies else None)
    rng = random.Random(seed)
    cp = Peer(to_server, read_chunk, rng)
    sp = Peer(to_client, read_chunk, rng)
    cp.conn = client.endpoint.connect(CLIENT, SERVER, 80, now)
    stations = (client, server)
    while True:
        for st_ in stations:
            st_.receive(now)
        if sp.conn is None:
            sp.conn = listener.accept()
        cp.step(client)
        sp.step(server)
        for st_ in stations:
            st_.endpoint.on_timer(now)
            st_.transmit(now)
        deadlines = [t for t in (client.endpoint.poll_at(), server.endpoint.poll_at(),
                                 a.poll_at(), b.poll_at()) if t is not None]
        if cp.conn.readable or (sp.conn is not None and sp.conn.readable):
            deadlines.append(now + 0.001)              # the reader comes back soon
        if not deadlines:
            break
        now = max(now, min(deadlines))
        assert now < SIM_LIMIT, f"no end in sight: {cp.conn!r} {sp.conn!r}"
    if sp.conn is not None:
        sp.received += sp.conn.read()
    cp.received += cp.conn.read()
    assert listener.stats["syn_cookies_accepted"] == (1 if syn_cookies else 0)
    return cp, sp, now


configs = st.builds(
    TcpConfig,
    mss=st.just(1460),
    recv_buffer=st.sampled_from([4096, 16384, 65536, 262144]),
    send_buffer=st.sampled_from([8192, 65536]),
    window_scaling=st.booleans(), timestamps=st.booleans(), sack=st.booleans(),
    nagle=st.booleans(), delayed_ack=st.sampled_from([0.0, 0.04]),
    min_rto=st.just(0.2), initial_rto=st.just(1.0),
    congestion=st.sampled_from(["newreno", "cubic"]),
    max_retries=st.just(30), syn_retries=st.just(30), max_rto=st.just(10.0),
    # 2MSL well above the longest retransmission gap, so a lost last ACK is always repaired.
    msl=st.just(30.0),
)


@settings(max_examples=80)
@given(loss=st.sampled_from([0.0, 0.01, 0.05, 0.15, 0.25]),
       duplicate=st.sampled_from([0.0, 0.02, 0.1]),
       reorder=st.sampled_from([0.0, 0.05, 0.3]),
       delay=st.sampled_from([0.001, 0.02]),
       seed=st.integers(0, 2**16),
       up=st.integers(0, 3000) | st.integers(30_000, 120_000),
       down=st.integers(0, 3000) | st.integers(10_000, 60_000),
       read_chunk=st.sampled_from([100, 5000, 1 << 20]),
       config=configs, syn_cookies=st.booleans())
def test_streams_survive_loss_duplication_and_reordering(loss, duplicate, reorder, delay, seed,
                                                          up, down, read_chunk, config,
                                                          syn_cookies):
    rng = random.Random(seed)
    to_server = rng.randbytes(up)
    to_client = rng.randbytes(down)
    cp, sp, _ = run_transfer(loss=loss, duplicate=duplicate, reorder=reorder, delay=delay,
                             seed=seed, to_server=to_server, to_client=to_client, config=config,
                             read_chunk=read_chunk, syn_cookies=syn_cookies)
    assert hashlib.sha256(sp.received).digest() == hashlib.sha256(to_server).digest()
    assert hashlib.sha256(cp.received).digest() == hashlib.sha256(to_client).digest()
    # Both ended, and TIME-WAIT ran out (the loop only stops with no timer left).
    assert cp.conn.state is State.CLOSED and sp.conn.state is State.CLOSED
    for peer in (cp, sp):
        assert closed_cleanly_or_reset_at_the_end(peer.conn), peer.conn.error


def closed_cleanly_or_reset_at_the_end(conn) -> bool:
    """No error; or, as with any TCP, a reset after both streams were complete.

    When every ACK of the last FIN (or of the data before it) is lost for
    longer than the peer's TIME-WAIT, which each retransmission restarts,
    the peer has forgotten the connection and answers the next
    retransmission with a reset.  With 25% loss that takes about six losses
    in a row.
    """
    if conn.error is None:
        return True
    return conn.error.reason == "reset" and (
        conn.stats["LAST-ACK->CLOSED"] + conn.stats["CLOSING->CLOSED"]) == 1


@settings(max_examples=60)
@given(loss=st.sampled_from([0.0, 0.05, 0.15]),
       reorder=st.sampled_from([0.0, 0.05, 0.3]),
       delay=st.sampled_from([0.001, 0.02]),
       seed=st.integers(0, 2**16),
       clients=st.integers(2, 10),
       backlog=st.sampled_from([1, 2, 128]),
       syn_queue=st.sampled_from([0, 1, 64]),
       accept_every=st.sampled_from([0.0, 0.05, 0.5]),
       config=configs)
def test_many_clients_through_a_small_listener(loss, reorder, delay, seed, clients, backlog,
                                               syn_queue, accept_every, config):
    """Clients arriving together at a listener whose backlog and SYN queue overflow
    (SYN cookies on, the default), the server accepting late: every client is
    served exactly once, both streams intact, and every connection ends."""
    now = 0.0
    a, b = memory_pair(loss=loss, reorder=reorder, delay=delay, reorder_delay=3 * delay,
                       seed=seed, clock=lambda: now)
    client = Station(a, CLIENT, b.mac, config, seed)
    server = Station(b, SERVER, a.mac, config, seed + 1)
    listener = server.endpoint.listen(SERVER, 80, backlog=backlog, syn_queue=syn_queue)
    rng = random.Random(seed)
    starts = sorted(rng.uniform(0.0, 0.5) for _ in range(clients))
    by_port: dict[int, tuple[Peer, bytes]] = {}
    pairs: list[tuple[Peer, Peer]] = []
    next_accept = 0.0
    while True:
        while starts and starts[0] <= now:
            starts.pop(0)
            up, down = (rng.randbytes(rng.choice([0, 300, 5000, 30000])) for _ in range(2))
            peer = Peer(up, 5000, rng)
            peer.conn = client.endpoint.connect(CLIENT, SERVER, 80, now)
            by_port[peer.conn.local_port] = (peer, down)
        client.receive(now)
        server.receive(now)
        if now >= next_accept:
            while (conn := listener.accept()) is not None:
                peer, down = by_port.pop(conn.remote_port)      # each client once
                served = Peer(down, 5000, rng)
                served.conn = conn
                pairs.append((peer, served))
            next_accept = now + accept_every
        for cp, sp in pairs:
            cp.step(client)
            sp.step(server)
        for peer, _ in by_port.values():
            peer.step(client)
        for station in (client, server):
            station.endpoint.on_timer(now)
            station.transmit(now)
        deadlines = [t for t in (client.endpoint.poll_at(), server.endpoint.poll_at(),
                                 a.poll_at(), b.poll_at()) if t is not None]
        deadlines += starts[:1]
        if listener.accept_queue:
            deadlines.append(next_accept)
        if any(p.conn.readable for pair in pairs for p in pair):
            deadlines.append(now + 0.001)
        if not deadlines:
            break
        now = max(now, min(deadlines))
        assert now < SIM_LIMIT, f"no end in sight: {pairs} {by_port}"
    assert not by_port and len(pairs) == clients, (dict(listener.stats), by_port)
    for cp, sp in pairs:
        cp.received += cp.conn.read()
        sp.received += sp.conn.read()
        assert (bytes(sp.received), bytes(cp.received)) == (cp.outgoing, sp.outgoing)
        for peer in (cp, sp):
            assert peer.conn.state is State.CLOSED
            assert closed_cleanly_or_reset_at_the_end(peer.conn), peer.conn.error


def test_bulk_transfer_with_five_percent_loss():
    data = random.Random(1).randbytes(1_000_000)
    config = TcpConfig(min_rto=0.2, msl=1.0)
    cp, sp, elapsed = run_transfer(loss=0.05, duplicate=0.01, reorder=0.05, delay=0.01, seed=3,
                                   to_server=data, to_client=b"", config=config,
                                   read_chunk=1 << 20)
    assert bytes(sp.received) == data
    assert cp.conn.stats["fast_retransmits"] > 0          # losses were repaired ...
    assert cp.conn.stats["retransmitted_segments"] < 400  # ... without resending everything


def test_connect_to_a_silent_peer_times_out():
    config = TcpConfig(syn_retries=2, initial_rto=0.5, msl=1.0)
    now = 0.0
    a, b = memory_pair(loss=1.0, seed=1, clock=lambda: now)
    client = Station(a, CLIENT, b.mac, config, 1)
    conn = client.endpoint.connect(CLIENT, SERVER, 80, now)
    while True:
        client.endpoint.on_timer(now)
        client.transmit(now)
        t = client.endpoint.poll_at()
        if t is None:
            break
        now = t
    assert conn.state is State.CLOSED and conn.error.reason == "timeout"
    assert now == pytest.approx(0.5 + 1.0 + 2.0)
    with pytest.raises(LocalProtocolError):
        conn.send(b"x")


def test_both_sides_going_back_after_timeouts_still_hear_each_others_acks():
    """Regression: heavy loss and duplication put both senders back at SND.UNA at once;
    their ACKs must still fall inside the other's window, or neither ever advances."""
    config = TcpConfig(recv_buffer=262144, send_buffer=3000, window_scaling=False,
                       timestamps=True, sack=False, nagle=True, delayed_ack=0.04, min_rto=0.2,
                       max_rto=10.0, max_retries=30, syn_retries=30, msl=30.0)
    rng = random.Random(5047)
    up, down = rng.randbytes(140423), rng.randbytes(32625)
    cp, sp, _ = run_transfer(loss=0.2, duplicate=0.2, reorder=0.0, delay=0.05, seed=5047,
                             to_server=up, to_client=down, config=config, read_chunk=5000)
    assert (bytes(sp.received), bytes(cp.received)) == (up, down)
    assert cp.conn.error is None and sp.conn.error is None
