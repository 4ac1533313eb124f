"""The trio UDP API between two user-level hosts over the memory pair."""

import sys
from pathlib import Path

import pytest
import trio
import trio.testing

from multistack.memport import memory_pair
from stacks.host import Host, IcmpErrorKind, OwnNeighbours
from stacks.udp import UdpIcmpError, open_udp_socket

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))
from hostkit import trio_test  # noqa: E402


def two_hosts(**link):
    a, b = memory_pair(**link)
    return (Host(a, ["10.3.0.1/24", "fd00:3::1/64"], neighbours=OwnNeighbours()),
            Host(b, ["10.3.0.2/24", "fd00:3::2/64"], neighbours=OwnNeighbours()))


async def echo_forever(sock):
    while True:
        data, peer = await sock.recvfrom()
        await sock.sendto(data, peer)


@pytest.mark.parametrize("server_address, client_address, target", [
    ("0.0.0.0", "10.3.0.1", "10.3.0.2"), ("::", "fd00:3::1", "fd00:3::2")])
@trio_test
async def test_echo_round_trips(server_address, client_address, target):
    ha, hb = two_hosts()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ha.run)
        nursery.start_soon(hb.run)
        nursery.start_soon(echo_forever, open_udp_socket(hb, server_address, 7))
        client = open_udp_socket(ha, client_address, 0)
        with trio.fail_after(5):
            for size in (0, 1, 100, 1000, 1400):
                data = bytes(range(256)) * (size // 256) + bytes(size % 256)
                await client.sendto(data, (target, 7))
                got, peer = await client.recvfrom()
                assert got == data and str(peer[0]) == target and peer[1] == 7
        nursery.cancel_scope.cancel()


def test_lossy_link_loses_whole_datagrams_never_corrupts_them():
    async def main():
        ha, hb = two_hosts(loss=0.2, duplicate=0.1, reorder=0.2, seed=11)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ha.run)
            nursery.start_soon(hb.run)
            server = open_udp_socket(hb, "10.3.0.2", 9, queue_limit=1000)
            client = open_udp_socket(ha, "10.3.0.1", 0)
            # The neighbours first, over the same lossy link (ARP retries).
            await client.sendto(b"hello", ("10.3.0.2", 9))
            await trio.sleep(5)
            while server._endpoint.received:
                await server.recvfrom()
            lost_before = ha.port.stats().extra.get("impair_lost", 0)
            for i in range(200):
                await client.sendto(b"%04d" % i * 50, ("10.3.0.2", 9))
            await trio.sleep(1)
            got = []
            while server._endpoint.received:
                got.append((await server.recvfrom())[0])
            nursery.cancel_scope.cancel()
        return got, ha.port.stats().extra["impair_lost"] - lost_before

    got, lost = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    numbers = [int(d[:4]) for d in got]
    assert all(d == b"%04d" % n * 50 for d, n in zip(got, numbers))  # intact
    assert 0 < lost < 80
    assert len(set(numbers)) == 200 - lost  # exactly the lost ones are missing
    assert len(numbers) > len(set(numbers))  # duplicates arrived as duplicates
    assert numbers != sorted(numbers)  # and some overtook others


@trio_test
async def test_cancelled_receive_loses_nothing():
    ha, hb = two_hosts()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ha.run)
        nursery.start_soon(hb.run)
        server = open_udp_socket(hb, "10.3.0.2", 9)
        client = open_udp_socket(ha, "10.3.0.1", 0)
        with trio.move_on_after(0.05):
            await server.recvfrom()  # nothing yet: cancelled while parked
        await client.sendto(b"after", ("10.3.0.2", 9))
        with trio.fail_after(5):
            assert (await server.recvfrom())[0] == b"after"
        nursery.cancel_scope.cancel()


@trio_test
async def test_close_wakes_a_waiting_receiver():
    ha, _ = two_hosts()
    sock = open_udp_socket(ha, "10.3.0.1", 9)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ha.run)

        async def close_soon():
            await trio.sleep(0.01)
            sock.close()

        nursery.start_soon(close_soon)
        with pytest.raises(trio.ClosedResourceError):
            await sock.recvfrom()
        with pytest.raises(trio.ClosedResourceError):
            await sock.sendto(b"x", ("10.3.0.2", 9))
        nursery.cancel_scope.cancel()
    # The port number is free again.
    open_udp_socket(ha, "10.3.0.1", 9).close()


def test_unresolvable_peer_surfaces_as_an_icmp_error():
    async def main():
        ha, _ = two_hosts()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ha.run)
            sock = open_udp_socket(ha, "10.3.0.1", 0, report_errors=True)
            await sock.sendto(b"anyone?", ("10.3.0.77", 9))
            with pytest.raises(UdpIcmpError) as raised:
                await sock.recvfrom()
            nursery.cancel_scope.cancel()
        return raised.value.error

    error = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert error.kind is IcmpErrorKind.UNREACHABLE and str(error.dst) == "10.3.0.77"
