"""A process with two user-level stacks on a memory pair and a control socket, for the
`multistack-ctl ss` tests: TCP over IPv4 and IPv6 with data both ways (some of it lost
and retransmitted), and UDP datagrams waiting unread.  Prints "ready" once all is up,
then serves until killed.

    python tests/host/control_stack.py
"""

import sys

import trio

from multistack.memport import memory_pair
from stacks.host import Host, OwnNeighbours
from stacks.udp.socket import open_udp_socket
from stacks.utcp.trio_api import open_tcp_listener, open_tcp_stream

BULK = 200_000
REPLY = 1000
DATAGRAMS = 3


async def serve_one(listener, reply_size: int, task_status=trio.TASK_STATUS_IGNORED) -> None:
    stream = await listener.accept()
    task_status.started()
    received = 0
    while received < BULK:
        received += len(await stream.receive_some())
    await stream.send_all(b"r" * reply_size)
    await trio.sleep_forever()          # the connection stays open for ss to see


async def main() -> None:
    client_port, server_port = memory_pair(seed=3)
    client = Host(client_port, ["10.9.0.1/24", "fd00:9::1/64"], neighbours=OwnNeighbours(),
                  control_socket=True)
    server = Host(server_port, ["10.9.0.2/24", "fd00:9::2/64"], neighbours=OwnNeighbours(),
                  control_socket=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.run)
        nursery.start_soon(server.run)
        streams = []
        for address, port in (("10.9.0.2", 80), ("fd00:9::2", 8080)):
            listener = await open_tcp_listener(server, address, port)
            nursery.start_soon(serve_one, listener, REPLY)
            stream = await open_tcp_stream(client, address, port)
            streams.append(stream)
        # Lose some of the client's segments on the way, so that some are sent again.
        client_port.tx_impairment.loss = 0.05
        for stream in streams:
            await stream.send_all(b"d" * BULK)
        for stream in streams:
            received = 0
            while received < REPLY:
                received += len(await stream.receive_some())
        client_port.tx_impairment.loss = 0.0
        await open_tcp_listener(server, "0.0.0.0", 9000)        # nobody connects
        sink = open_udp_socket(server, "10.9.0.2", 7)
        sender = open_udp_socket(client, "0.0.0.0", 0)
        for _ in range(DATAGRAMS):
            await sender.sendto(b"u" * 100, ("10.9.0.2", 7))
        while len(sink._endpoint.received) < DATAGRAMS:
            await trio.sleep(0.01)
        print("ready", flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    try:
        trio.run(main)
    except KeyboardInterrupt:
        sys.exit(130)
