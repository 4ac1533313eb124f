"""Churn through the trio front end: hundreds of short HTTP fetches over a lossy
memory pair, many of them cancelled at a random point (while connecting,
sending, reading).  Every fetch that is not cancelled gets its whole body,
and once the timers have run out nothing is left behind on either side: no
connection, no parked-task lot, no orphan.  The clock is trio's mock clock.
"""

from __future__ import annotations

import functools
import random

import pytest
import trio
import trio.testing

from multistack.memport import memory_pair
from stacks.apps import http_server
from stacks.host import Host, OwnNeighbours
from stacks.utcp import TcpConfig
from stacks.utcp.trio_api import TcpLayer, open_tcp_listener, open_tcp_stream

CLIENT_ADDR = "10.7.1.1"
SERVER_ADDR = "10.7.1.2"


def leftovers(layer: TcpLayer) -> dict[str, int]:
    return {"connections": len(layer.endpoint.connections), "lots": len(layer._lots),
            "orphans": len(layer._orphans)}


@pytest.mark.parametrize("impairment", [0.0, 0.05])
def test_cancelled_and_finished_fetches_leave_nothing_behind(impairment):
    async def main():
        rng = random.Random(7)
        config = TcpConfig(min_rto=0.2, initial_rto=0.5, msl=0.5)
        # 2 ms each way, so the patience below runs out at every stage of a fetch.
        a, b = memory_pair(loss=impairment, duplicate=impairment, reorder=impairment,
                           delay=0.002, seed=3)
        client = Host(a, [CLIENT_ADDR + "/24"], neighbours=OwnNeighbours())
        server = Host(b, [SERVER_ADDR + "/24"], neighbours=OwnNeighbours())
        client_tcp = TcpLayer(client, config=config, seed=1)
        server_tcp = TcpLayer(server, config=config, seed=2)
        outcomes = {"complete": 0, "cancelled": 0}

        async def fetch(size: int, patience: float) -> None:
            with trio.move_on_after(patience) as scope:
                stream = await open_tcp_stream(client, SERVER_ADDR, 80)
                async with stream:
                    await stream.send_all(b"GET /bytes/%d HTTP/1.1\r\nConnection: close\r\n\r\n"
                                          % size)
                    got = bytearray()
                    while chunk := await stream.receive_some():
                        got += chunk
                _, _, body = bytes(got).partition(b"\r\n\r\n")
                assert body == http_server.expected_body(size)
                outcomes["complete"] += 1
            if scope.cancelled_caught:
                outcomes["cancelled"] += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.run)
            nursery.start_soon(server.run)
            listener = await open_tcp_listener(server, None, 80, backlog=512)
            await nursery.start(functools.partial(http_server.serve, idle_timeout=2.0),
                                [listener])
            async with trio.open_nursery() as clients:
                for i in range(200):
                    size = rng.choice([0, 1, 1000, 20_000, 100_000])
                    clients.start_soon(fetch, size, rng.choice([0.003, 0.007, 0.012, 0.02, 0.05, 30.0]))
                    if i % 20 == 0:
                        await trio.sleep(0.001)
            await trio.sleep(60)     # TIME-WAIT, retransmissions, orphans, idle servers
            assert outcomes["complete"] > 50 and outcomes["cancelled"] > 50
            assert outcomes["complete"] + outcomes["cancelled"] >= 200
            assert leftovers(client_tcp) == leftovers(server_tcp) == {
                "connections": 0, "lots": 0, "orphans": 0}
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
