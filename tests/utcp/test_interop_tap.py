"""UTCP against the Linux kernel's TCP, over a TAP device whose kernel side sits in a
namespace this test creates (10.x addresses only there).

curl and Python socket clients against UTCP servers, UTCP clients against a
Python socket server: bulk transfers checked by sha256 in both directions,
half-close, and a thousand concurrent connections.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import subprocess
import sys

import pytest
import trio

from multistack.port import Port
from multistack.tap import create_netns, delete_netns, open_tap_in_netns, unique_netns_name
from stacks.apps import http_server
from stacks.host import Host, OwnNeighbours
from stacks.utcp import TcpConfig
from stacks.utcp.trio_api import TcpLayer, open_tcp_listener, open_tcp_stream

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                       reason="needs root and /dev/net/tun for namespaces and TAP"),
]

KERNEL = "10.44.0.1"
STACK = "10.44.0.2"
KERNEL6 = "fd00:44::1"
STACK6 = "fd00:44::2"
BULK = 50 * 1024 * 1024


class ImpairedPort(Port):
    """A real port with seeded loss, duplication and reordering in both directions.

    This machine's kernel has no netem, so the impairment sits on the user
    side of the TAP: frames from Linux are dropped, doubled or held back a
    few milliseconds (so later ones overtake them) before the stack sees
    them, and frames to Linux are dropped, doubled or swapped with the next.
    """

    HOLD = 0.004

    def __init__(self, inner: Port, *, loss: float, duplicate: float, reorder: float, seed: int):
        self.inner = inner
        self.name, self.mac, self.mtu = inner.name, inner.mac, inner.mtu
        self.loss, self.duplicate, self.reorder = loss, duplicate, reorder
        self._rng = random.Random(seed)
        self._held: list[tuple[float, bytes]] = []

    def recv_batch(self, max_frames: int = 256):
        now = trio.current_time()
        due = [frame for t, frame in self._held if t <= now]
        self._held = [(t, frame) for t, frame in self._held if t > now]
        out = []
        for view in self.inner.recv_batch(max_frames):
            frame = bytes(view)
            r = self._rng.random()
            if r < self.loss:
                continue
            if r < self.loss + self.reorder:
                self._held.append((now + self.HOLD, frame))
                continue
            out.append(frame)
            if self._rng.random() < self.duplicate:
                out.append(frame)
        return out + due

    def poll_at(self):
        return min(t for t, _ in self._held) if self._held else None

    def send_batch(self, frames) -> int:
        frames = [bytes(f) for f in frames]
        out: list[bytes] = []
        for frame in frames:
            r = self._rng.random()
            if r < self.loss:
                continue
            out.append(frame)
            if r < self.loss + self.duplicate:
                out.append(frame)
        for i in range(len(out) - 1):
            if self._rng.random() < self.reorder:
                out[i], out[i + 1] = out[i + 1], out[i]
        self.inner.send_batch(out)
        return len(frames)

    def sync(self):
        self.inner.sync()

    def fileno(self):
        return self.inner.fileno()

    def stats(self):
        return self.inner.stats()

    def close(self):
        self.inner.close()

    @property
    def closed(self):
        return self.inner.closed


@contextlib.asynccontextmanager
async def tap_stack(config: TcpConfig | None = None, impair: dict | None = None):
    ns = unique_netns_name("msutcp")
    create_netns(ns)
    port = None
    try:
        port = open_tap_in_netns(ns, [KERNEL + "/24", KERNEL6 + "/64"])
        stack_port = ImpairedPort(port, **impair) if impair else port
        host = Host(stack_port, [STACK + "/24", STACK6 + "/64"], neighbours=OwnNeighbours())
        TcpLayer(host, config=config or TcpConfig(min_rto=0.2))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(host.run)
            yield ns, host
            nursery.cancel_scope.cancel()
    finally:
        if port is not None:
            port.close()
        delete_netns(ns)


async def in_ns(ns, *argv, stdin: bytes = b"", timeout: float = 60.0):
    with trio.fail_after(timeout):
        return await trio.run_process(["ip", "netns", "exec", ns, *argv], stdin=stdin,
                                      capture_stdout=True, capture_stderr=True, check=False)


def pattern_sha256(n: int) -> str:
    block = bytes(range(256)) * 4096
    h = hashlib.sha256()
    for i in range(0, n, len(block)):
        h.update(block[:min(len(block), n - i)])
    return h.hexdigest()


async def serve_http(host, address):
    listener = await open_tcp_listener(host, address, 80, backlog=1024)
    return listener


# ---------------------------------------------------------------- curl -> UTCP


@pytest.mark.parametrize("server, url", [(STACK, f"http://{STACK}/bytes/{BULK}"),
                                         (STACK6, f"http://[{STACK6}]/bytes/1000000")])
async def test_curl_fetches_from_the_utcp_http_server(server, url):
    size = int(url.rsplit("/", 1)[1])
    async with tap_stack() as (ns, host):
        listener = await serve_http(host, server)
        async with trio.open_nursery() as nursery:
            await nursery.start(http_server.serve, [listener])
            done = await in_ns(ns, "sh", "-c", f"curl -sS --max-time 100 {url} | sha256sum",
                               timeout=110)
            nursery.cancel_scope.cancel()
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.split()[0].decode() == pattern_sha256(size)


# ---------------------------------------------------------------- Linux client -> UTCP server

UPLOAD_CLIENT = r"""
import hashlib, socket, sys
n = int(sys.argv[2]); block = bytes(range(256)) * 4096
s = socket.create_connection((sys.argv[1], 9000), timeout=60)
left = n
while left:
    k = min(left, len(block)); s.sendall(block[:k]); left -= k
s.shutdown(socket.SHUT_WR)                    # half-close: the reply still comes back
reply = b""
while chunk := s.recv(65536):
    reply += chunk
print(reply.decode())
"""


async def answer_digest(listener, receivers):
    """Accept one upload, read to the client's half-close, answer "<bytes> <sha256>"."""
    stream = await listener.accept()
    receivers.append(stream.connection)
    h = hashlib.sha256()
    total = 0
    while chunk := await stream.receive_some():
        h.update(chunk)
        total += len(chunk)
    # The client half-closed; our direction is still open for the answer.
    await stream.send_all(f"{total} {h.hexdigest()}".encode())
    await stream.aclose()


async def test_linux_client_uploads_50mb_then_half_closes():
    async with tap_stack() as (ns, host):
        listener = await open_tcp_listener(host, STACK, 9000)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer_digest, listener, [])
            done = await in_ns(ns, sys.executable, "-c", UPLOAD_CLIENT, STACK, str(BULK),
                               timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == [str(BULK), pattern_sha256(BULK)]


# ---------------------------------------------------------------- UTCP client -> Linux server

DOWNLOAD_SERVER = r"""
import socket, sys
n = int(sys.argv[2]); block = bytes(range(256)) * 4096
srv = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], 9001)); srv.listen(8)
print("ready", flush=True)
c, _ = srv.accept()
request = b""
while not request.endswith(b"\n"):
    request += c.recv(100)
left = n
while left:
    k = min(left, len(block)); c.sendall(block[:k]); left -= k
c.shutdown(socket.SHUT_WR)
assert c.recv(10) == b""                     # the UTCP side closes after reading all
c.close()
print("done", flush=True)
"""


@pytest.mark.parametrize("kernel, size", [(KERNEL, BULK), (KERNEL6, 2_000_000)])
async def test_utcp_client_downloads_from_a_linux_server(kernel, size):
    async with tap_stack() as (ns, host):
        server = await trio.lowlevel.open_process(
            ["ip", "netns", "exec", ns, sys.executable, "-c", DOWNLOAD_SERVER, kernel, str(size)],
            stdout=subprocess.PIPE)
        try:
            with trio.fail_after(120):
                assert (await server.stdout.receive_some(100)).startswith(b"ready")
                stream = await open_tcp_stream(host, kernel, 9001)
                await stream.send_all(b"send\n")
                h = hashlib.sha256()
                total = 0
                while chunk := await stream.receive_some():
                    h.update(chunk)
                    total += len(chunk)
                await stream.aclose()
                assert (total, h.hexdigest()) == (size, pattern_sha256(size))
                assert await server.wait() == 0
        finally:
            with contextlib.suppress(ProcessLookupError):
                server.kill()


UPLOAD_SERVER = r"""
import hashlib, socket, sys
srv = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], 9002)); srv.listen(8)
print("ready", flush=True)
c, _ = srv.accept()
h, total = hashlib.sha256(), 0
while chunk := c.recv(65536):
    h.update(chunk); total += len(chunk)
c.sendall(f"{total} {h.hexdigest()}".encode())   # after the EOF: the other direction lives
c.close()
"""


async def test_utcp_client_uploads_50mb_to_a_linux_server_then_half_closes():
    """UTCP -> Linux bulk; UTCP's send_eof half-closes and it reads the answer."""
    body = bytes(range(256)) * (BULK // 256)
    async with tap_stack() as (ns, host):
        server = await trio.lowlevel.open_process(
            ["ip", "netns", "exec", ns, sys.executable, "-c", UPLOAD_SERVER, KERNEL],
            stdout=subprocess.PIPE)
        try:
            with trio.fail_after(120):
                assert (await server.stdout.receive_some(100)).startswith(b"ready")
                stream = await open_tcp_stream(host, KERNEL, 9002)
                await stream.send_all(body)
                await stream.send_eof()
                reply = b""
                while chunk := await stream.receive_some():
                    reply += chunk
                await stream.aclose()
                assert await server.wait() == 0
        finally:
            with contextlib.suppress(ProcessLookupError):
                server.kill()
    assert reply.decode().split() == [str(BULK), hashlib.sha256(body).hexdigest()]


SAME_PORT_CLIENT = r"""
import socket, sys, time
for i in range(int(sys.argv[2])):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", int(sys.argv[3])))
    s.settimeout(5)
    s.connect((sys.argv[1], 9004))
    s.sendall(b"request %d" % i)
    reply = b""
    while chunk := s.recv(100):
        reply += chunk
    s.close()
    print(i, reply.decode(), flush=True)
    time.sleep(0.01)            # Linux's TSvals tick in milliseconds
"""


async def test_linux_client_reopens_a_port_utcp_holds_in_time_wait():
    """The reverse: UTCP closes first and holds each tuple in TIME-WAIT; a Linux
    client connecting again from the same port gets in by its newer TSval
    (RFC 6191), its first SYN taken."""
    count, client_port = 8, 45001
    async with tap_stack() as (ns, host):
        listener = await open_tcp_listener(host, STACK, 9004)
        served = []

        async def serve_one():
            stream = await listener.accept()
            request = await stream.receive_some()
            await stream.send_all(b"answer to " + request)
            await stream.aclose()         # first: UTCP's TIME-WAIT
            served.append(stream.connection)

        async with trio.open_nursery() as nursery:
            async def serve_all():
                for _ in range(count):
                    await serve_one()
            nursery.start_soon(serve_all)
            done = await in_ns(ns, sys.executable, "-c", SAME_PORT_CLIENT, STACK, str(count),
                               str(client_port))
            nursery.cancel_scope.cancel()
    assert done.returncode == 0, done.stderr.decode()
    lines = done.stdout.decode().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        f"answer to request {i}" for i in range(count)]
    # Each SYN after the first met a TIME-WAIT and reopened it: a refused one would
    # have drawn the client's RST, and its retransmission would find no tuple.
    stats = TcpLayer.of(host).endpoint.stats
    assert stats["time_wait_reopened"] == count - 1
    # The streams were closed, so each tuple waited as a record, which the SYN that
    # reopened it was judged by alone: no connection was made of it again.
    assert stats["time_wait_recorded"] >= count - 1
    assert stats["time_wait_resumed"] == 0
    assert all(c.stats["rst_in"] == 0 for c in served)


CLOSE_FIRST_SERVER = r"""
import socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], 9003)); srv.listen(8)
print("ready", flush=True)
for i in range(int(sys.argv[2])):
    c, peer = srv.accept()
    c.sendall(b"reply %d from %s" % (i, str(peer).encode()))
    c.close()          # first: this side holds the tuple in TIME-WAIT
"""


async def test_utcp_client_reopens_a_port_linux_holds_in_time_wait():
    """Linux (RFC 6191) takes a SYN into a TIME-WAIT tuple only with a newer TSval:
    UTCP's TSvals to one peer advance across connections, so each reconnect from
    the same port is taken at once, with no refusal, reset or SYN timeout."""
    count, local_port = 8, 45000
    async with tap_stack() as (ns, host):
        server = await trio.lowlevel.open_process(
            ["ip", "netns", "exec", ns, sys.executable, "-c", CLOSE_FIRST_SERVER, KERNEL,
             str(count)], stdout=subprocess.PIPE)
        try:
            with trio.fail_after(60):
                assert (await server.stdout.receive_some(100)).startswith(b"ready")
                for i in range(count):
                    stream = await open_tcp_stream(host, KERNEL, 9003, local_port=local_port)
                    reply = b""
                    while chunk := await stream.receive_some():
                        reply += chunk
                    await stream.aclose()
                    stats = stream.connection.stats
                    assert reply == b"reply %d from ('%s', %d)" % (i, STACK.encode(), local_port)
                    assert (stats["syn_retransmits"], stats["rst_in"]) == (0, 0)
                    await trio.sleep(0.01)      # TSvals tick in milliseconds
                assert await server.wait() == 0
        finally:
            with contextlib.suppress(ProcessLookupError):
                server.kill()


# ---------------------------------------------------------------- many connections

MANY_CLIENT = r"""
import selectors, socket, sys, time
n = int(sys.argv[2]); sel = selectors.DefaultSelector(); socks = {}
for i in range(n):
    s = socket.socket(); s.setblocking(False)
    s.connect_ex((sys.argv[1], 7))
    sel.register(s, selectors.EVENT_WRITE, i); socks[s] = [i, b""]
opened = 0; done = 0; deadline = time.time() + 90
while done < n and time.time() < deadline:
    for key, ev in sel.select(1):
        s = key.fileobj; i, got = socks[s]
        if ev & selectors.EVENT_WRITE:
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                print("connect error", i, err); sys.exit(1)
            opened += 1
            s.send(b"hello %d\n" % i)
            sel.modify(s, selectors.EVENT_READ, i)
        else:
            data = s.recv(100)
            socks[s][1] = got + data
            if socks[s][1].endswith(b"\n"):
                assert socks[s][1] == b"hello %d\n" % i, socks[s][1]
                done += 1
# All connections were open at the same time: none is closed before every echo is back.
print(opened, done)
for s in socks: s.close()
"""


async def test_a_thousand_concurrent_connections_from_linux():
    config = TcpConfig(min_rto=0.2, recv_buffer=16384, send_buffer=16384)
    async with tap_stack(config) as (ns, host):
        listener = await open_tcp_listener(host, STACK, 7, backlog=1024)
        served = 0

        async def echo(stream):
            nonlocal served
            async with stream:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = await stream.receive_some()
                    if not chunk:
                        return
                    data += chunk
                await stream.send_all(data)
                served += 1
                await stream.receive_some()         # stay open until the client closes

        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, echo, [listener])
            done = await in_ns(ns, sys.executable, "-c", MANY_CLIENT, STACK, "1000", timeout=120)
            nursery.cancel_scope.cancel()
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert done.stdout.decode().split() == ["1000", "1000"]
    assert served == 1000


# ---------------------------------------------------------------- spoofed segments (RFC 5961)

LINE_CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], 9100), timeout=30)
print(s.getsockname()[1], flush=True)
for line in sys.stdin:
    s.sendall(line.encode())
    print(s.recv(100).decode().strip(), flush=True)
"""

SPOOFER = r"""
import sys
from scapy.all import IP, TCP, send
print("ready", flush=True)
for line in sys.stdin:                       # src dst sport dport flags seq
    src, dst, sport, dport, flags, seq = line.split()
    send(IP(src=src, dst=dst) / TCP(sport=int(sport), dport=int(dport), flags=flags,
                                     seq=int(seq), window=1000), verbose=0)
    print("sent", flush=True)
"""


class LineReader:
    def __init__(self, pipe):
        self._pipe = pipe
        self._buf = bytearray()

    async def next(self) -> str:
        while b"\n" not in self._buf:
            data = await self._pipe.receive_some(1000)
            assert data, "the process ended"
            self._buf += data
        end = self._buf.index(b"\n")
        out = bytes(self._buf[:end]).decode().strip()
        del self._buf[:end + 1]
        return out

    async def until(self, wanted: str) -> bool:
        while (await self.next()) != wanted:
            pass
        return True


async def test_spoofed_resets_and_syns_draw_challenge_acks_and_only_an_exact_reset_kills():
    async with tap_stack() as (ns, host):
        listener = await open_tcp_listener(host, STACK, 9100)
        client = await trio.lowlevel.open_process(
            ["ip", "netns", "exec", ns, sys.executable, "-c", LINE_CLIENT, STACK],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        # scapy in the namespace forges segments from the Linux side's address.
        spoofer = await trio.lowlevel.open_process(
            ["ip", "netns", "exec", ns, sys.executable, "-c", SPOOFER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            with trio.fail_after(90):
                client_lines = LineReader(client.stdout)
                spoofer_lines = LineReader(spoofer.stdout)
                assert await spoofer_lines.until("ready")
                stream = await listener.accept()
                conn = stream.connection
                line = client_lines.next
                client_port = int(await line())

                async def echo_once(text):
                    await client.stdin.send_all(text.encode() + b"\n")
                    data = await stream.receive_some()
                    await stream.send_all(data)
                    assert await line() == text

                async def spoof(flags, seq):
                    await spoofer.stdin.send_all(
                        f"{KERNEL} {STACK} {client_port} 9100 {flags} {seq & 0xFFFFFFFF}\n"
                        .encode())
                    assert await spoofer_lines.until("sent")
                    await trio.sleep(0.2)

                await echo_once("first")
                await spoof("R", conn.rcv_nxt + 5000)            # in the window, not exact
                assert conn.stats["challenge_acks"] == 1
                await spoof("S", conn.rcv_nxt + 123456)          # a SYN, anywhere
                assert conn.stats["challenge_acks"] == 2
                await spoof("R", conn.rcv_nxt + 3_000_000)       # outside the window
                assert conn.stats["challenge_acks"] == 2
                assert conn.stats["rst_out_of_window"] == 1
                await echo_once("second")                        # the connection survived
                await spoof("R", conn.rcv_nxt)                   # exactly RCV.NXT: reset
                assert conn.error is not None and conn.error.reason == "reset"
                with pytest.raises(trio.BrokenResourceError):
                    await stream.receive_some()
        finally:
            for process in (client, spoofer):
                with contextlib.suppress(ProcessLookupError):
                    process.kill()


# ---------------------------------------------------------------- loss, duplication, reordering

IMPAIR = dict(loss=0.02, duplicate=0.01, reorder=0.03, seed=7)
LOSSY_SIZE = 5 * 1024 * 1024


async def test_lossy_link_linux_sends_to_utcp():
    async with tap_stack(impair=IMPAIR) as (ns, host):
        listener = await open_tcp_listener(host, STACK, 9000)
        receivers = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer_digest, listener, receivers)
            done = await in_ns(ns, sys.executable, "-c", UPLOAD_CLIENT, STACK, str(LOSSY_SIZE),
                               timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == [str(LOSSY_SIZE), pattern_sha256(LOSSY_SIZE)]
    assert receivers[0].stats["out_of_order_in"] > 0      # the impairment really bit


async def test_lossy_link_utcp_sends_to_curl():
    async with tap_stack(impair=IMPAIR) as (ns, host):
        listener = await serve_http(host, STACK)
        senders = []

        async def handle(stream):
            senders.append(stream.connection)
            await http_server.handle(stream)

        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, handle, [listener])
            done = await in_ns(ns, "sh", "-c", f"curl -sS --max-time 100 "
                               f"http://{STACK}/bytes/{LOSSY_SIZE} | sha256sum", timeout=110)
            nursery.cancel_scope.cancel()
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.split()[0].decode() == pattern_sha256(LOSSY_SIZE)
    stats = senders[0].stats
    assert stats["retransmitted_segments"] > 0 and stats["fast_retransmits"] > 0


async def test_curl_through_syn_cookies():
    """With no room for half-open state, every connection is rebuilt from its cookie,
    and keeps the options Linux offered: its SYN has timestamps."""
    async with tap_stack() as (ns, host):
        listener = await open_tcp_listener(host, STACK, 80, syn_queue=0)
        connections = []

        async def handle(stream):
            connections.append(stream.connection)
            await http_server.handle(stream)

        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, handle, [listener])
            done = await in_ns(ns, "sh", "-c", f"for i in 1 2 3; do curl -sS --max-time 20 "
                               f"http://{STACK}/bytes/300000 | sha256sum; done", timeout=70)
            nursery.cancel_scope.cancel()
        assert done.returncode == 0, done.stderr.decode()
        assert done.stdout.decode().split()[::2] == [pattern_sha256(300000)] * 3
        assert listener.listener.stats["syn_cookies_accepted"] == 3
        assert [(c.ts_ok, c.sack_ok, c.snd_wscale > 0, c.rcv_wscale > 0)
                for c in connections] == [(True, True, True, True)] * 3


# ---------------------------------------------------------------- keepalive and zero window

HOLD_SERVER = r"""
import socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], 9002)); srv.listen(1)
print("ready", flush=True)
c, _ = srv.accept()
size = int(sys.argv[2])
if size:
    c.sendall(bytes(range(256)) * (size // 256))
    print("sent", flush=True)
c.recv(10)                                   # until the peer goes away
"""


async def test_keepalive_against_linux_then_timeout_when_the_path_dies():
    impair = dict(loss=0.0, duplicate=0.0, reorder=0.0, seed=1)
    async with tap_stack(impair=impair) as (ns, host):
        server = await trio.lowlevel.open_process(
            ["ip", "netns", "exec", ns, sys.executable, "-c", HOLD_SERVER, KERNEL, "0"],
            stdout=subprocess.PIPE)
        try:
            with trio.fail_after(60):
                assert (await server.stdout.receive_some(100)).startswith(b"ready")
                stream = await open_tcp_stream(host, KERNEL, 9002)
                stream.set_keepalive(1.0, 0.5, 3)
                conn = stream.connection
                await trio.sleep(4.0)
                assert conn.stats["keepalives"] >= 2 and conn.error is None   # Linux answered
                host.port.loss = 1.0                                     # the path dies
                while conn.error is None:
                    await trio.sleep(0.2)
                assert conn.error.reason == "timeout"
        finally:
            with contextlib.suppress(ProcessLookupError):
                server.kill()


async def test_linux_probes_a_zero_window_until_utcp_reads():
    size = 256 * 1500
    async with tap_stack(TcpConfig(min_rto=0.2, recv_buffer=8192)) as (ns, host):
        server = await trio.lowlevel.open_process(
            ["ip", "netns", "exec", ns, sys.executable, "-c", HOLD_SERVER, KERNEL, str(size)],
            stdout=subprocess.PIPE)
        try:
            with trio.fail_after(60):
                assert (await server.stdout.receive_some(100)).startswith(b"ready")
                stream = await open_tcp_stream(host, KERNEL, 9002)
                conn = stream.connection
                await trio.sleep(2.0)                  # nobody reads: the window closes
                assert conn.readable == 8192
                unacceptable = conn.stats["unacceptable"]
                await trio.sleep(2.0)
                assert conn.stats["unacceptable"] > unacceptable   # Linux's probes, answered
                got = bytearray()
                while len(got) < size:
                    got += await stream.receive_some()
                assert bytes(got) == bytes(range(256)) * (size // 256)
                await stream.aclose()
        finally:
            with contextlib.suppress(ProcessLookupError):
                server.kill()
