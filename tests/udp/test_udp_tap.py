"""User-level UDP against Linux's UDP over TAP: sizes up to the MTU, bursts, both families."""

import subprocess
import sys
from pathlib import Path

import pytest
import trio

from stacks.udp import open_udp_socket

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))
from hostkit import tap_host, trio_test  # noqa: E402

pytestmark = pytest.mark.netns

KERNEL = ["10.32.0.1/24", "fd00:32::1/64"]
STACK = ["10.32.0.2/24", "fd00:32::2/64"]

# A Linux UDP client: sends every size from argv, expects each echoed, prints "ok N".
KERNEL_CLIENT = r"""
import socket, sys
address, port, sizes = sys.argv[1], int(sys.argv[2]), [int(x) for x in sys.argv[3:]]
s = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
ok = 0
for size in sizes:
    data = bytes((i * 7 + size) & 0xFF for i in range(size))
    s.sendto(data, (address, port))
    if s.recv(65535) == data:
        ok += 1
print("ok", ok)
"""


@pytest.mark.parametrize("address, biggest", [("10.32.0.2", 1500 - 28), ("fd00:32::2", 1500 - 48)])
@trio_test
async def test_linux_client_echoed_by_user_udp_at_every_size(address, biggest):
    async with tap_host(KERNEL, STACK, "msudp") as (ns, port, host):
        sock = open_udp_socket(host, "::" if ":" in address else "0.0.0.0", 7)

        async def echo():
            while True:
                data, peer = await sock.recvfrom()
                await sock.sendto(data, peer)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo)
            # Past the MTU both stacks fragment and reassemble.
            sizes = [0, 1, 17, 512, 1024, biggest - 1, biggest, biggest + 1, 8000, 30000] + [100] * 50
            with trio.fail_after(30):
                done = await trio.run_process(
                    ["ip", "netns", "exec", ns, sys.executable, "-c", KERNEL_CLIENT, address, "7",
                     *map(str, sizes)], capture_stdout=True, capture_stderr=True, check=False)
            nursery.cancel_scope.cancel()
        assert done.stdout.decode().split() == ["ok", str(len(sizes))], done.stderr.decode()
        assert host.counters["tx_datagrams_fragmented"] == 3
        assert host.counters["datagrams_reassembled"] == 3


@trio_test
async def test_user_client_burst_to_a_linux_server():
    async with tap_host(KERNEL, STACK, "msudp") as (ns, port, host):
        server = await trio.lowlevel.open_process(
            ["ip", "netns", "exec", ns, sys.executable, "-c", r"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.bind(("10.32.0.1", 9000))
print("ready", flush=True)
seen = set()
s.settimeout(2)
try:
    while True:
        seen.add(s.recv(100))
except socket.timeout:
    pass
print(len(seen), flush=True)
"""], stdout=subprocess.PIPE)
        try:
            with trio.fail_after(20):
                assert (await server.stdout.receive_some(100)).startswith(b"ready")
                sock = open_udp_socket(host, "10.32.0.2", 0)
                for i in range(500):
                    await sock.sendto(b"datagram %d" % i, ("10.32.0.1", 9000))
                    if i % 50 == 0:
                        await trio.sleep(0.001)  # let the runtime flush
                output = b""
                while chunk := await server.stdout.receive_some(100):
                    output += chunk
            assert output.split() == [b"500"], (output, host.counters, port.stats())
            assert set(host.drops()) <= {"not_our_address"}  # the kernel's own MLD/RS chatter
        finally:
            server.kill()
            await server.wait()


@pytest.mark.parametrize("address", ["10.32.0.2", "fd00:32::2"])
@trio_test
async def test_linux_client_is_refused_by_a_closed_user_port(address):
    async with tap_host(KERNEL, STACK, "msudp") as (ns, port, host):
        open_udp_socket(host, "0.0.0.0", 7)  # the layer exists; port 9 is closed
        client = r"""
import socket, sys
address = sys.argv[1]
s = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect((address, 9))
s.send(b"anyone?")
try:
    s.recv(100)
    print("answered")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")
"""
        with trio.fail_after(20):
            done = await trio.run_process(["ip", "netns", "exec", ns, sys.executable, "-c", client,
                                           address], capture_stdout=True, check=False)
        assert done.stdout.decode().strip() == "refused"
        assert host.counters["icmp_unreachables_sent"] == 1


@pytest.mark.parametrize("address", ["10.32.0.2", "fd00:32::2"])
@trio_test
async def test_fragmented_datagrams_from_linux_are_reassembled(address):
    async with tap_host(KERNEL, STACK, "msudp") as (ns, port, host):
        sock = open_udp_socket(host, "::" if ":" in address else "0.0.0.0", 7)

        async def answer_with_digest():
            import hashlib

            while True:
                data, peer = await sock.recvfrom()
                await sock.sendto(f"{len(data)} {hashlib.sha256(data).hexdigest()}".encode(), peer)

        client = r"""
import hashlib, socket, sys
address = sys.argv[1]
s = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
data = bytes(i * 31 % 251 for i in range(8000))  # Linux fragments it for the 1500-byte link
s.sendto(data, (address, 7))
print(s.recv(200).decode() == f"{len(data)} {hashlib.sha256(data).hexdigest()}")
"""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer_with_digest)
            with trio.fail_after(30):
                done = await trio.run_process(["ip", "netns", "exec", ns, sys.executable, "-c", client,
                                               address], capture_stdout=True, capture_stderr=True,
                                              check=False)
            nursery.cancel_scope.cancel()
        assert done.stdout.decode().strip() == "True", done.stderr.decode()
        assert host.counters["datagrams_reassembled"] == 1
        assert host.counters["rx_fragments_held"] == 5  # 8008 bytes in six fragments
