"""Connection churn: many short connections between two endpoints on a lossless
path, reusing a few client ports, with every close order.

On such a path nothing may go wrong: no reset, no retransmission, no SYN
timeout, and every byte arrives.  Reusing a port the peer still holds in
TIME-WAIT must work as RFC 6191 says: by a newer timestamp, or without
timestamps by a sequence number above the old connection's.  Time is
explicit and moves only when the test moves it.
"""

from __future__ import annotations

import ipaddress
import random

import pytest

from stacks.utcp import Endpoint, State, TcpConfig
from stacks.utcp.isn import IsnGenerator
from stacks.wire.tcp import TcpFlags, TcpRepr

ADDRESSES = {4: (ipaddress.ip_address("10.9.1.1"), ipaddress.ip_address("10.9.1.2")),
             6: (ipaddress.ip_address("fd00:9:1::1"), ipaddress.ip_address("fd00:9:1::2"))}
CLOSE_ORDERS = ("server_first", "client_first", "simultaneous")
FINISHED = (State.CLOSED, State.TIME_WAIT)


class Path:
    """Two endpoints joined by a perfect path: every segment goes through the wire format."""

    def __init__(self, config: TcpConfig, seed: int, family: int):
        self.client_addr, self.server_addr = ADDRESSES[family]
        self.client = Endpoint(config=config, isn=IsnGenerator(b"c" * 32), seed=seed)
        self.server = Endpoint(config=config, isn=IsnGenerator(b"s" * 32), seed=seed + 1)
        self.now = 0.0
        self.resets: list[TcpRepr] = []

    def exchange(self) -> None:
        moved = True
        while moved:
            moved = False
            for sender, receiver in ((self.client, self.server), (self.server, self.client)):
                for src, dst, segment in sender.segments_to_send(self.now):
                    if segment.flags & TcpFlags.RST:
                        self.resets.append(segment)
                    wire = memoryview(segment.emit(src, dst))
                    receiver.receive(src, dst, TcpRepr.parse(wire, src, dst), self.now)
                    moved = True

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.client.on_timer(self.now)
        self.server.on_timer(self.now)
        self.exchange()

    def until(self, done, what: str, within: float = 0.25) -> None:
        """Exchange, then let time run in 10 ms steps (delayed ACKs) until ``done()``."""
        start = self.now
        self.exchange()
        while not done():
            assert self.now - start < within, f"{what}: nothing after {within} s"
            self.advance(0.01)


class Reader:
    """What one side has read so far; ``__call__`` reads more and says whether
    the expected bytes (or, with ``to_eof``, the end of the stream) are in."""

    def __init__(self, conn, expected: int, *, to_eof: bool = False):
        self.conn, self.expected, self.to_eof = conn, expected, to_eof
        self.data = bytearray()

    def __call__(self) -> bool:
        self.data += self.conn.read()
        return self.conn.eof_received if self.to_eof else len(self.data) == self.expected


def fetch(path: Path, listener, port: int, rng: random.Random) -> None:
    client_conn = path.client.connect(path.client_addr, path.server_addr, 80, path.now,
                                      local_port=port)
    accepted = []

    def accept() -> bool:
        conn = listener.accept()
        if conn is not None:
            accepted.append(conn)
        return bool(accepted)

    path.until(accept, "accept")
    [server_conn] = accepted

    request = rng.randbytes(rng.randrange(1, 3000))
    client_conn.send(request)
    path.client.touch(client_conn)
    path.until(Reader(server_conn, len(request)), "request")

    response = rng.randbytes(rng.randrange(1, 5000))
    server_conn.send(response)
    path.server.touch(server_conn)
    order = rng.choice(CLOSE_ORDERS)
    reader = Reader(client_conn, len(response), to_eof=order == "server_first")
    if order == "server_first":
        server_conn.close()
        path.until(reader, "response")
        client_conn.close()
    else:
        path.until(reader, "response")
        client_conn.close()
        if order == "client_first":
            path.client.touch(client_conn)
            path.exchange()
        server_conn.close()
    path.client.touch(client_conn)
    path.server.touch(server_conn)
    path.until(lambda: client_conn.state in FINISHED and server_conn.state in FINISHED, order)
    assert bytes(reader.data) == response
    for conn in (client_conn, server_conn):
        for counter in ("retransmitted_segments", "syn_retransmits", "timeouts", "rst_in"):
            assert conn.stats[counter] == 0, (order, conn, counter)


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("timestamps", [True, False])
@pytest.mark.parametrize("ports", [1, 3, 40])
def test_short_connections_reusing_ports_never_reset_or_retransmit(family, timestamps, ports):
    rng = random.Random(ports * 2 + timestamps)
    path = Path(TcpConfig(timestamps=timestamps, msl=0.5, nagle=ports != 3), seed=ports,
                family=family)
    client, server = path.client_addr, path.server_addr
    listener = path.server.listen(server, 80, backlog=64)
    # The gap before a port is reused: with timestamps the TSval must have ticked
    # (1 ms); without, the ISN clock (4 µs) must have passed the old connection's
    # data, up to 8 KB here.
    gaps = [0.002, 0.01, 0.2] if timestamps else [0.04, 0.2]
    reopened = 0
    for _ in range(300):
        port = 40000 + rng.randrange(ports)
        if (client, port, server, 80) in path.client.connections:    # our own TIME-WAIT
            path.advance(0.25)
            continue
        held = path.server.connections.get((server, 80, client, port))
        reopened += held is not None and held.state is State.TIME_WAIT
        fetch(path, listener, port, rng)
        path.advance(rng.choice(gaps))
    assert path.resets == []
    assert path.server.stats["time_wait_reopened"] == reopened
    if ports < 40:
        assert reopened >= 5        # the case this test is about did happen
    path.advance(2.0)               # every TIME-WAIT runs out
    assert path.client.connections == {} and path.server.connections == {}
