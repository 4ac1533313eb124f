"""The trio front end over two Hosts on the in-memory port pair."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import random
from ipaddress import ip_address

import pytest
import trio
import trio.testing

from multistack.memport import memory_pair
from stacks.host import Host, OwnNeighbours
from stacks.utcp import State, TcpConfig
from stacks.utcp.trio_api import TcpLayer, UtcpStream, open_tcp_listener, open_tcp_stream
from stacks.wire.ethernet import EtherType, EthernetRepr, MacAddress
from stacks.wire.frame import build_frame
from stacks.wire.icmpv4 import Icmpv4Repr
from stacks.wire.icmpv6 import Icmpv6Repr
from stacks.wire.ipv4 import Ipv4Repr
from stacks.wire.ipv6 import Ipv6Repr

CLIENT_ADDR = "10.7.0.1"
SERVER_ADDR = "10.7.0.2"
FAST = dict(min_rto=0.2, initial_rto=0.5, msl=0.5)


@contextlib.asynccontextmanager
async def two_hosts(config: TcpConfig | None = None, **impairments):
    config = config or TcpConfig(**FAST)
    a, b = memory_pair(**impairments)
    client = Host(a, [CLIENT_ADDR + "/24"], neighbours=OwnNeighbours())
    server = Host(b, [SERVER_ADDR + "/24"], neighbours=OwnNeighbours())
    TcpLayer(client, config=config, seed=1)
    TcpLayer(server, config=config, seed=2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.run)
        nursery.start_soon(server.run)
        yield client, server
        nursery.cancel_scope.cancel()


async def connected_pair(client: Host, server: Host, port: int, config=None):
    listener = await open_tcp_listener(server, SERVER_ADDR, port, config=config)
    stream = await open_tcp_stream(client, SERVER_ADDR, port, config=config)
    accepted = await listener.accept()
    await listener.aclose()
    return stream, accepted


async def test_check_half_closeable_stream():
    async with two_hosts() as (client, server):
        ports = iter(range(1000, 2000))

        async def maker():
            return await connected_pair(client, server, next(ports))

        async def clogged_maker():
            small = TcpConfig(send_buffer=2000, recv_buffer=2000, **FAST)
            s, r = await connected_pair(client, server, next(ports), config=small)
            # Fill each side's send buffer and the other's receive buffer: now send_all
            # blocks in both directions until the other side reads.
            for stream, host in ((s, client), (r, server)):
                conn = stream.connection
                while conn.send_space() or conn.in_flight:
                    if conn.send_space():
                        conn.send(b"x" * conn.send_space())
                        TcpLayer.of(host).kick(conn)
                    await trio.sleep(0.05)    # past delayed ACKs that may free more room
            return s, r

        await trio.testing.check_half_closeable_stream(maker, clogged_maker)


async def test_a_listener_without_a_syn_queue_serves_through_cookies():
    async with two_hosts() as (client, server):
        with pytest.raises(ValueError, match="syn_queue"):
            await open_tcp_listener(server, None, 80, syn_queue=0, syn_cookies=False)
        listener = await open_tcp_listener(server, None, 80, syn_queue=0)
        stream = await open_tcp_stream(client, SERVER_ADDR, 80)
        accepted = await listener.accept()
        await stream.send_all(b"ping")
        assert await accepted.receive_some() == b"ping"
        assert listener.listener.stats["syn_cookies_accepted"] == 1
        assert accepted.connection.ts_ok and accepted.connection.sack_ok
        for s in (stream, accepted, listener):
            await s.aclose()


async def test_serve_listeners_echo_many_clients():
    async with two_hosts() as (client, server):
        listener = await open_tcp_listener(server, None, 7)

        async def echo(stream: UtcpStream):
            async with stream:
                while data := await stream.receive_some():
                    await stream.send_all(data)

        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, echo, [listener])
            results = {}

            async def one(i):
                payload = random.Random(i).randbytes(20_000 + i)
                stream = await open_tcp_stream(client, SERVER_ADDR, 7)
                async with stream:
                    async def sender():
                        await stream.send_all(payload)
                        await stream.send_eof()
                    got = bytearray()
                    async with trio.open_nursery() as inner:
                        inner.start_soon(sender)
                        while chunk := await stream.receive_some():
                            got += chunk
                results[i] = bytes(got) == payload

            async with trio.open_nursery() as clients:
                for i in range(20):
                    clients.start_soon(one, i)
            nursery.cancel_scope.cancel()
        assert results == {i: True for i in range(20)}


async def test_bulk_transfer_over_lossy_link_matches_sha256():
    data = random.Random(5).randbytes(2_000_000)
    async with two_hosts(loss=0.02, duplicate=0.01, reorder=0.02, delay=0.002, seed=9) as (c, s):
        listener = await open_tcp_listener(s, SERVER_ADDR, 9000)
        got = hashlib.sha256()

        async def receive():
            stream = await listener.accept()
            async with stream:
                while chunk := await stream.receive_some():
                    got.update(chunk)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)
            stream = await open_tcp_stream(c, SERVER_ADDR, 9000)
            await stream.send_all(data)
            await stream.aclose()
        assert got.digest() == hashlib.sha256(data).digest()


async def test_connect_to_closed_port_is_refused():
    async with two_hosts() as (client, server):
        TcpLayer.of(server)
        with pytest.raises(ConnectionRefusedError):
            await open_tcp_stream(client, SERVER_ADDR, 4444)


async def test_peer_reset_breaks_the_stream():
    async with two_hosts() as (client, server):
        s, r = await connected_pair(client, server, 5000)
        await s.send_all(b"unread")
        await trio.testing.wait_all_tasks_blocked()
        await r.aclose()                           # unread data: RST, as Linux does
        with pytest.raises(trio.BrokenResourceError):
            await s.receive_some()
        assert s.connection.error.reason == "reset"
        await s.aclose()


async def test_half_close_then_reply():
    async with two_hosts() as (client, server):
        s, r = await connected_pair(client, server, 5001)
        await s.send_all(b"request")
        await s.send_eof()
        assert await r.receive_some() == b"request"
        assert await r.receive_some() == b""
        await r.send_all(b"response")
        await r.aclose()
        assert await s.receive_some() == b"response"
        assert await s.receive_some() == b""
        await s.aclose()
        await trio.sleep(1.5)                      # TIME-WAIT is 2 × 0.5 s here
        assert TcpLayer.of(client).endpoint.connections == {}
        assert TcpLayer.of(server).endpoint.connections == {}
        assert s.connection.state is State.CLOSED


async def test_a_response_and_the_close_after_it_leave_in_one_segment():
    # Output from the stream methods goes out late in the scheduling round, so a
    # reply followed by aclose is one data+FIN segment (as one-shot HTTP servers
    # send it), and several tasks' replies leave in one port batch.
    async with two_hosts() as (client, server):
        pairs = [await connected_pair(client, server, 5010 + i) for i in range(3)]
        await trio.testing.wait_all_tasks_blocked()
        received = [s.connection.stats["segments_in"] for s, _ in pairs]
        syncs = []
        sync = server.port.sync
        server.port.sync = lambda: syncs.append(1) or sync()

        async def reply(stream):
            await stream.send_all(b"response")
            await stream.aclose()

        async with trio.open_nursery() as nursery:
            for _, r in pairs:
                nursery.start_soon(reply, r)
        for (s, _), before in zip(pairs, received):
            assert await s.receive_some() == b"response"
            assert await s.receive_some() == b""
            assert s.connection.stats["segments_in"] == before + 1
        assert len(syncs) == 1


def test_orphan_in_fin_wait_2_is_dropped_and_late_data_is_reset():
    async def main():
        async with two_hosts() as (client, server):
            s, r = await connected_pair(client, server, 5002)
            layer = TcpLayer.of(server)
            await r.aclose()                        # FIN; the client never closes
            await trio.sleep(1)
            assert r.connection.state is State.FIN_WAIT_2
            await trio.sleep(60)
            assert r.connection.state is State.CLOSED
            assert layer.counters["orphans_dropped"] == 1

            s2, r2 = await connected_pair(client, server, 5003)
            await r2.aclose()
            await trio.sleep(1)
            assert await s2.receive_some() == b""   # the FIN
            await s2.send_all(b"too late")          # nobody reads it: RST, as Linux does
            await trio.sleep(1)
            assert s2.connection.error.reason == "reset"
            with pytest.raises(trio.BrokenResourceError):
                await s2.send_all(b"more")
            assert layer.counters["orphan_reset_on_data"] == 1
            await s.aclose()
            await s2.aclose()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_orphans_leave_the_table_in_time_wait_and_expire_in_order():
    async def main():
        async with two_hosts() as (client, server):
            layer = TcpLayer.of(server)
            s1, r1 = await connected_pair(client, server, 5010)
            await r1.aclose()                       # FIN-WAIT-2 until the timeout
            await trio.sleep(10)
            s2, r2 = await connected_pair(client, server, 5011)
            await r2.aclose()                       # the same, 10 s later
            s3, r3 = await connected_pair(client, server, 5012)
            await r3.aclose()
            await trio.sleep(0.1)
            await s3.aclose()                       # the server ends in TIME-WAIT
            await trio.sleep(0.1)
            # Its stream closed, the connection waits as the endpoint's compact record.
            assert r3.connection.state is State.CLOSED
            assert layer.endpoint.in_time_wait(r3.connection.key)
            assert layer.endpoint.stats["time_wait_recorded"] == 1
            assert list(layer._orphans) == [r1.connection, r2.connection]
            await trio.sleep(50)                    # r1's timeout is past, r2's is not
            assert r1.connection.state is State.CLOSED
            assert r2.connection.state is State.FIN_WAIT_2
            assert list(layer._orphans) == [r2.connection]
            await trio.sleep(10)
            assert r2.connection.state is State.CLOSED
            assert layer._orphans == {}
            assert layer.counters["orphans_dropped"] == 2
            await s1.aclose()
            await s2.aclose()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def _icmp_too_big(to: Host, router: str, conn, seq: int, mtu: int) -> bytes:
    """A frame from ``router`` to ``to``: frag-needed (IPv4) or packet-too-big
    (IPv6) quoting a segment of ``conn`` with sequence number ``seq``."""
    here, port, there, peer_port = conn.key
    tcp_start = port.to_bytes(2, "big") + peer_port.to_bytes(2, "big") \
        + (seq & 0xFFFFFFFF).to_bytes(4, "big") + bytes(12)
    router = ip_address(router)
    if here.version == 4:
        quoted = Ipv4Repr(here, there, 6).emit(tcp_start)
        ip, icmp = Ipv4Repr(router, here, 1), Icmpv4Repr.dest_unreachable(4, quoted, mtu)
        ethertype = EtherType.IPV4
    else:
        quoted = Ipv6Repr(here, there, 6).emit(tcp_start)
        ip, icmp = Ipv6Repr(router, here, 58), Icmpv6Repr.packet_too_big(mtu, quoted)
        ethertype = EtherType.IPV6
    return build_frame(EthernetRepr(to.mac, MacAddress("02:00:00:00:00:fe"), ethertype), ip, icmp)


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
async def test_path_mtu_from_the_wire_is_learned_only_when_tcp_believes_it(family):
    """A forged "too big" error (its quoted sequence number is not in flight)
    changes nothing, neither the connection nor the host's path MTU; a
    genuine one shrinks the connection's segments and the host's path MTU,
    and another connection to the same peer then takes the smaller MTU when
    the host refuses its next segment.  Both byte streams arrive intact."""
    v6 = family == "ipv6"
    server_addr, client_addr = ("fd07::2", "fd07::1") if v6 else (SERVER_ADDR, CLIENT_ADDR)
    router, mtu = ("fd07::fe", 1280) if v6 else ("10.7.0.254", 1000)
    a, b = memory_pair()
    client = Host(a, [client_addr + ("/64" if v6 else "/24")], neighbours=OwnNeighbours())
    server = Host(b, [server_addr + ("/64" if v6 else "/24")], neighbours=OwnNeighbours())
    TcpLayer(client, config=TcpConfig(**FAST), seed=1)
    layer = TcpLayer(server, config=TcpConfig(**FAST), seed=2)
    body = random.Random(7).randbytes(200_000)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.run)
        nursery.start_soon(server.run)
        listener = await open_tcp_listener(server, server_addr, 5010)
        pairs = []
        for _ in range(2):
            stream = await open_tcp_stream(client, server_addr, 5010)
            pairs.append((stream, await listener.accept()))
        (s1, r1), (s2, r2) = pairs
        full_mss = r1.connection.send_mss
        peer = r1.connection.key[2]

        async def read(stream, n):
            got = bytearray()
            while len(got) < n:
                got += await stream.receive_some()
            return bytes(got)

        await r1.send_all(body)                     # data in flight to quote
        conn = r1.connection
        now = trio.current_time()
        server.handle_frame(_icmp_too_big(server, router, conn, conn.snd_max + 50_000, mtu), now)
        assert layer.endpoint.stats["icmp_ignored_bad_seq"] == 1
        assert conn.send_mss == full_mss and server.path_mtu(peer) == 1500
        server.handle_frame(_icmp_too_big(server, router, conn, conn.snd_una, mtu), now)
        assert server.path_mtu(peer) == mtu
        assert conn.send_mss == mtu - (60 if v6 else 40) - 12 < full_mss
        assert await read(s1, len(body)) == body

        assert r2.connection.send_mss == full_mss    # not told yet
        await r2.send_all(body)
        assert await read(s2, len(body)) == body
        assert r2.connection.send_mss == r1.connection.send_mss
        assert layer.counters["path_mtu_taken_from_host"] == 1
        for stream in (s1, r1, s2, r2):
            await stream.aclose()
        await listener.aclose()
        nursery.cancel_scope.cancel()


async def test_icmp_frag_needed_and_unreachable_reach_the_connection():
    from stacks.host.host import IcmpError, IcmpErrorKind
    from stacks.wire.icmpv4 import DestUnreachable

    async with two_hosts() as (client, server):
        s, r = await connected_pair(client, server, 5004)
        layer = TcpLayer.of(server)
        conn = r.connection
        here, port, there, peer_port = conn.key

        def quote(seq):     # the start of a TCP header as an ICMP error quotes it
            return port.to_bytes(2, "big") + peer_port.to_bytes(2, "big") \
                + (seq & 0xFFFFFFFF).to_bytes(4, "big")

        def frag_needed(seq):
            return IcmpError(IcmpErrorKind.FRAG_NEEDED, 3, DestUnreachable.FRAGMENTATION_NEEDED,
                             there, here, there, 6, port, peer_port, mtu=1000,
                             quoted_payload=quote(seq))

        await r.send_all(bytes(100_000))           # data in flight to quote
        layer.on_icmp_error(frag_needed(conn.snd_max + 5000), trio.current_time())
        assert layer.endpoint.stats["icmp_ignored_bad_seq"] == 1    # a blind guess: ignored
        assert conn.send_mss == 1460 - 12
        layer.on_icmp_error(frag_needed(conn.snd_una), trio.current_time())
        assert conn.send_mss == 1000 - 40 - 12
        got = bytearray()
        while len(got) < 100_000:
            got += await s.receive_some()
        await r.send_all(bytes(5000))
        got = bytearray()
        while len(got) < 5000:
            got += await s.receive_some()
        assert s.connection.stats["segments_in"] > 5 and bytes(got) == bytes(5000)
        # An unreachable for a connection being opened fails it, like ECONNREFUSED.
        errors = []

        async def connect():
            try:
                await open_tcp_stream(client, "10.7.0.3", 5005)   # nobody there
            except OSError as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(connect)
            await trio.testing.wait_all_tasks_blocked()
            [pending] = [c for c in TcpLayer.of(client).endpoint.connections.values()
                         if c.state is State.SYN_SENT]
            h, p, t, tp = pending.key
            TcpLayer.of(client).on_icmp_error(
                IcmpError(IcmpErrorKind.UNREACHABLE, 3, DestUnreachable.HOST,
                          ip_address(CLIENT_ADDR), h, t, 6, p, tp,
                          quoted_payload=p.to_bytes(2, "big") + tp.to_bytes(2, "big")
                          + pending.iss.to_bytes(4, "big")), trio.current_time())
        assert [e.errno for e in errors] == [errno.EHOSTUNREACH]


async def test_listener_errors_and_port_zero():
    async with two_hosts() as (client, server):
        listener = await open_tcp_listener(server, SERVER_ADDR, 0)
        _, port = listener.address
        assert 49152 <= port <= 65535
        with pytest.raises(OSError) as exc:
            await open_tcp_listener(server, SERVER_ADDR, port)
        assert exc.value.errno == errno.EADDRINUSE
        await listener.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await listener.accept()
        started = trio.current_time()
        with pytest.raises(OSError) as exc:
            await open_tcp_stream(client, "192.168.99.1", 80)     # no route, no gateway
        assert exc.value.errno == errno.EHOSTUNREACH
        assert trio.current_time() - started < 0.5              # at once, not after an RTO


async def test_connect_from_a_chosen_local_port():
    async with two_hosts() as (client, server):
        listener = await open_tcp_listener(server, SERVER_ADDR, 5006)
        stream = await open_tcp_stream(client, SERVER_ADDR, 5006, local_port=40000)
        assert stream.local_address[1] == 40000
        accepted = await listener.accept()
        assert accepted.remote_address[1] == 40000
        with pytest.raises(OSError) as exc:                  # the same 4-tuple again
            await open_tcp_stream(client, SERVER_ADDR, 5006, local_port=40000)
        assert exc.value.errno == errno.EADDRINUSE
        await stream.aclose()
        await accepted.aclose()
