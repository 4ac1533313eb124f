"""A UDP echo server (RFC 862) on a user-level Host.

    async with trio.open_nursery() as nursery:
        nursery.start_soon(host.run)
        await nursery.start(serve_udp_echo, host, "0.0.0.0", 7)

``on_echo(data, peer, local)`` is called for each datagram echoed, for
transcripts.  Datagrams that cannot be echoed (no route, too big) are
counted in ``EchoStats`` instead of stopping the server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import trio

from stacks.host.host import Host, IPAddress, NoRoute, PacketTooBig
from stacks.udp import open_udp_socket

ECHO_PORT = 7


@dataclass
class EchoStats:
    echoed: int = 0
    bytes: int = 0
    failed: int = 0


async def serve_udp_echo(host: Host, address: IPAddress | str = "0.0.0.0", port: int = ECHO_PORT,
                         *, on_echo: Callable[[bytes, tuple, tuple], None] | None = None,
                         stats: EchoStats | None = None,
                         task_status=trio.TASK_STATUS_IGNORED) -> None:
    stats = stats if stats is not None else EchoStats()
    with open_udp_socket(host, address, port) as sock:
        task_status.started(sock.getsockname())
        while True:
            datagram = await sock.receive()
            data, peer, local = datagram.data, datagram.src, datagram.dst
            try:
                # Answer from the address the client wrote to, as it expects.
                await sock.sendto(data, peer, source=local[0])
            except (NoRoute, PacketTooBig, ValueError):
                stats.failed += 1
                continue
            stats.echoed += 1
            stats.bytes += len(data)
            if on_echo is not None:
                on_echo(data, peer, local)
