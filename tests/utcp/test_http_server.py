"""The HTTP server app: the same code on UTCP (over the memory pair) and on kernel sockets."""

from __future__ import annotations

import contextlib
import functools

import pytest
import trio
import trio.testing

from stacks.apps import http_server
from stacks.apps.http_server import BadRequest, body_size, parse_head
from stacks.utcp.trio_api import open_tcp_listener, open_tcp_stream

from .test_trio_api import SERVER_ADDR, two_hosts


async def read_response(stream, buf: bytearray):
    """One response: (status, headers, body); ``buf`` keeps bytes of the next one."""
    while b"\r\n\r\n" not in buf:
        data = await stream.receive_some()
        assert data, "connection closed before the response head"
        buf += data
    end = buf.index(b"\r\n\r\n")
    head = bytes(buf[:end]).decode()
    del buf[:end + 4]
    status_line, *lines = head.split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    length = int(headers["content-length"])
    return int(status_line.split()[1]), headers, buf, length


async def fetch_all(stream, requests: list[bytes], *, head_only=()):
    await stream.send_all(b"".join(requests))
    buf = bytearray()
    out = []
    for i in range(len(requests)):
        status, headers, buf, length = await read_response(stream, buf)
        if i in head_only:
            length = 0
        while len(buf) < length:
            data = await stream.receive_some()
            assert data
            buf += data
        out.append((status, headers, bytes(buf[:length])))
        del buf[:length]
    return out


def expected_body(n: int) -> bytes:
    return (bytes(range(256)) * (n // 256 + 1))[:n]


def test_expected_body_helper_matches_the_pattern():
    for n in (0, 1, 255, 256, 65536, 65792, 65793, 200_001):
        assert http_server.expected_body(n) == expected_body(n)


REQUESTS = [
    b"GET /bytes/100000 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /1024 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"HEAD /bytes/5 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /bytes/3 HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody",
    b"GET /nothing HTTP/1.1\r\n\r\n",
    b"GET /bytes/0 HTTP/1.1\r\nConnection: close\r\n\r\n",
]


def check(responses):
    assert [r[0] for r in responses] == [200, 200, 200, 405, 404, 200]
    assert responses[0][2] == expected_body(100_000)
    assert responses[1][2] == expected_body(1024)
    assert responses[2][1]["content-length"] == "5" and responses[2][2] == b""
    assert responses[5][1]["connection"] == "close" and responses[5][2] == b""


async def exchange(stream):
    responses = await fetch_all(stream, REQUESTS, head_only={2})
    check(responses)
    assert await stream.receive_some() == b""           # the server closed after "close"


async def test_http_over_utcp():
    async with two_hosts() as (client, server):
        listener = await open_tcp_listener(server, SERVER_ADDR, 80)
        async with trio.open_nursery() as nursery:
            await nursery.start(http_server.serve, [listener])
            stream = await open_tcp_stream(client, SERVER_ADDR, 80)
            async with stream:
                await exchange(stream)
            nursery.cancel_scope.cancel()


async def test_http_over_kernel_sockets():
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(http_server.serve, listeners)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await exchange(stream)
        nursery.cancel_scope.cancel()


async def test_bad_request_gets_400_and_close():
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(http_server.serve, listeners)
        for raw, status in ((b"NONSENSE\r\n\r\n", 400), (b"GET / HTTP/2.0\r\n\r\n", 505),
                            (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
                            (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 5000 + b"\r\n", 431)):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                with contextlib.suppress(trio.BrokenResourceError):
                    await stream.send_all(raw)
                buf = bytearray()
                got, _, _, _ = await read_response(stream, buf)
                assert got == status
        nursery.cancel_scope.cancel()


def test_idle_connections_are_closed_and_busy_ones_kept():
    # Nothing moving for idle_timeout closes the connection: a client that never
    # asks, one that stops inside a head; one that keeps asking stays served.
    async def main():
        async with two_hosts() as (client, server):
            listener = await open_tcp_listener(server, SERVER_ADDR, 80)
            async with trio.open_nursery() as nursery:
                await nursery.start(functools.partial(http_server.serve, idle_timeout=5.0),
                                    [listener])

                async def closed_after(stream, first: bytes) -> float:
                    start = trio.current_time()
                    await stream.send_all(first)
                    assert await stream.receive_some() == b""
                    return trio.current_time() - start

                for first in (b"", b"GET /bytes/1 HTTP/1.1\r\nHost:"):
                    stream = await open_tcp_stream(client, SERVER_ADDR, 80)
                    async with stream:
                        assert await closed_after(stream, first) == pytest.approx(5.0, abs=0.1)

                stream = await open_tcp_stream(client, SERVER_ADDR, 80)
                async with stream:
                    for _ in range(4):                      # 12 s in all, 3 s apart
                        await trio.sleep(3.0)
                        [(status, _, body)] = await fetch_all(
                            stream, [b"GET /bytes/10 HTTP/1.1\r\n\r\n"])
                        assert (status, body) == (200, expected_body(10))
                    assert await closed_after(stream, b"") == pytest.approx(5.0, abs=0.1)
                nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_parsing_units():
    request = parse_head(b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\nHost: h")
    assert request.keep_alive and request.headers["host"] == "h"
    assert not parse_head(b"GET /x HTTP/1.1\r\nConnection: close").keep_alive
    with pytest.raises(BadRequest):
        parse_head(b"GET /x HTTP/1.1\r\nbroken header")
    assert body_size("/bytes/12") == 12 and body_size("/12?x=1") == 12
    assert body_size("/bytes/x") is None and body_size("/a/b/12") is None
    assert body_size(f"/{(1 << 30) + 1}") is None
