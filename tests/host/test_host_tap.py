"""The user-level Host over TAP against the Linux stack in a network namespace."""

import json
import subprocess
import sys
from ipaddress import ip_address

import pytest
import trio

from multistack.tap import ip
from stacks.host import IcmpErrorKind
from stacks.udp import UdpIcmpError, open_udp_socket

from hostkit import tap_host as kit_tap_host
from hostkit import trio_test

pytestmark = pytest.mark.netns

KERNEL = ["10.31.0.1/24", "fd00:31::1/64"]
STACK = ["10.31.0.2/24", "fd00:31::2/64"]

KERNEL_ECHO = r"""
import select, socket, sys
socks = []
for family, address in ((socket.AF_INET, "10.31.0.1"), (socket.AF_INET6, "fd00:31::1")):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((address, 9007))
    socks.append(s)
print("ready", flush=True)
while True:
    for s in select.select(socks, [], [])[0]:
        data, peer = s.recvfrom(65535)
        s.sendto(b"kernel:" + data, peer)
"""


def tap_host():
    return kit_tap_host(KERNEL, STACK)


async def in_ns(ns, *argv):
    return await trio.run_process(["ip", "netns", "exec", ns, *argv], capture_stdout=True,
                                  capture_stderr=True, check=False)


def kernel_neighbour(ns, address):
    entries = json.loads(ip("-j", "neigh", "show", address, netns=ns))
    return entries[0].get("lladdr") if entries else None


@pytest.mark.parametrize("address", ["10.31.0.2", "fd00:31::2"])
@trio_test
async def test_linux_pings_the_user_host_and_learns_its_mac(address):
    async with tap_host() as (ns, port, host):
        done = await in_ns(ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", address)
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
        assert b"3 received" in done.stdout
        assert kernel_neighbour(ns, address) == ":".join(f"{b:02x}" for b in port.mac)
        assert host.counters["echo_replies_sent"] == 3
        key = "arp_replies_sent" if ":" not in address else "nd_adverts_sent"
        assert host.counters[key] >= 1


@pytest.mark.parametrize("address", ["10.31.0.2", "fd00:31::2"])
@trio_test
async def test_large_pings_are_reassembled_and_answered_in_fragments(address):
    async with tap_host() as (ns, port, host):
        done = await in_ns(ns, "ping", "-c", "2", "-i", "0.2", "-W", "2", "-s", "5000", address)
        assert b"2 received" in done.stdout, done.stdout.decode() + done.stderr.decode()
        assert host.counters["datagrams_reassembled"] == 2
        assert host.counters["tx_datagrams_fragmented"] == 2
        assert port.stats().tx_dropped == 0


@pytest.mark.parametrize("kernel_address, local", [("10.31.0.1", "10.31.0.2"), ("fd00:31::1", "::")])
@trio_test
async def test_user_udp_client_reaches_a_kernel_server(kernel_address, local):
    async with tap_host() as (ns, port, host):
        server = await trio.lowlevel.open_process(
            ["ip", "netns", "exec", ns, sys.executable, "-c", KERNEL_ECHO], stdout=subprocess.PIPE)
        try:
            with trio.fail_after(10):
                assert (await server.stdout.receive_some(100)).startswith(b"ready")
                with open_udp_socket(host, local, 0) as sock:
                    for i in range(3):
                        await sock.sendto(b"msg%d" % i, (kernel_address, 9007))
                        data, peer = await sock.recvfrom()
                        assert data == b"kernel:msg%d" % i
                        assert peer == (ip_address(kernel_address), 9007)
            # The host resolved the kernel's MAC itself.
            assert host.neighbours.entries()[ip_address(kernel_address)] == port.kernel_mac
        finally:
            server.kill()
            await server.wait()


@pytest.mark.parametrize("kernel_address", ["10.31.0.1", "fd00:31::1"])
@trio_test
async def test_port_unreachable_from_linux_reaches_the_socket(kernel_address):
    async with tap_host() as (ns, port, host):
        with open_udp_socket(host, "::" if ":" in kernel_address else "0.0.0.0", 0,
                             report_errors=True) as sock:
            with trio.fail_after(10):
                await sock.sendto(b"anyone?", (kernel_address, 9999))
                with pytest.raises(UdpIcmpError) as raised:
                    await sock.recvfrom()
        error = raised.value.error
        assert error.kind is IcmpErrorKind.UNREACHABLE and error.is_hard
        assert error.reporter == ip_address(kernel_address)
        assert (error.dst, error.dst_port, error.src_port) == (ip_address(kernel_address), 9999,
                                                                sock.getsockname()[1])


@trio_test
async def test_linux_client_reaches_the_user_udp_server():
    async with tap_host() as (ns, port, host):
        with open_udp_socket(host, "10.31.0.2", 5353) as sock:
            client = r"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(b"question", ("10.31.0.2", 5353))
print(s.recvfrom(100)[0].decode())
"""

            async def answer():
                data, peer = await sock.recvfrom()
                await sock.sendto(b"answer to " + data, peer)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(answer)
                with trio.fail_after(10):
                    done = await in_ns(ns, sys.executable, "-c", client)
        assert done.stdout.decode().strip() == "answer to question", done.stderr.decode()
