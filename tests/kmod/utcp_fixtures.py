"""UTCP on a kernel-module port inside the VM: helpers of ``test_kmod_utcp.py``.

The stack side is the VM's own namespace (``ms0``, MultiStack attached): a
:class:`~multistack.kernel.KernelPort`, a :class:`~stacks.host.Host` reading
the OS neighbour table, and the UTCP layer, run by one trio task.  Every TCP
port UTCP uses -- a listener's or a client's local one -- is first claimed
on the port (a bound kernel socket proves the ownership), so the module
steers exactly those segments to UTCP and lets UTCP send from them.

The Linux side is the namespace ``mspeer`` (``ms1``): sockets made there
by a thread that entered it (``kmodutil.in_netns``) and then driven by trio
in this process, curl started with ``ip netns exec``, and an AF_PACKET
socket pair that captures and forges frames on ``ms1``.

Booting the topology costs seconds under TCG, so the tests share one per
module (``Topology`` of this folder's conftest); each stack closes what it
opened and netem is removed after use.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import ipaddress
import os
import resource
import socket
import struct
import time

import trio

import kmodutil as ku
from stacks.apps.http_server import expected_body
from stacks.host import Host, OsNeighbours
from stacks.utcp import TcpConfig
from stacks.utcp.trio_api import TcpLayer, open_tcp_listener, open_tcp_stream

# RTO floor as over TAP; under TCG a round trip is a few ms when the machine is idle.
CONFIG = TcpConfig(min_rto=0.2)

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_BLOCK = bytes(range(256)) * 4096                # 1 MiB; the HTTP server's body pattern


def trio_test(limit: float):
    """Run an async test function under ``trio.run`` within ``limit`` seconds."""
    def decorate(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            async def bounded():
                with trio.fail_after(limit):
                    await fn(*args, **kwargs)
            trio.run(bounded)
        return run
    return decorate


def pattern(n: int) -> bytes:
    return expected_body(n)


def pattern_sha256(n: int) -> str:
    h = hashlib.sha256()
    for i in range(0, n, len(_BLOCK)):
        h.update(_BLOCK[:min(len(_BLOCK), n - i)])
    return h.hexdigest()


# -- the UTCP side --------------------------------------------------------------


def _load_topology_class():
    """``Topology`` of this folder's conftest (loaded under another name: the
    suite's own conftest stays pytest's business)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conftest.py")
    spec = importlib.util.spec_from_file_location("kmod_conftest_topology", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Topology


Topology = _load_topology_class()


class KmodUtcp:
    """UTCP over a KernelPort of ``topo`` (running inside :func:`utcp_stack`).

    The stack owns what a test opens through it -- the port, the claimed
    kernel sockets, the Linux peers' sockets, the capture -- and closes all
    of it at the end, so tests can share one topology.
    """

    def __init__(self, topo, config: TcpConfig | None = None, *, gateway=None, **port_kw):
        from multistack.kernel import KernelPort
        self.topo = topo
        self.sockets: list = []
        self.port = KernelPort(topo.if_a, **port_kw)
        try:
            self.neighbours = OsNeighbours(topo.if_a)
        except BaseException:
            self.port.close()
            raise
        self.host = Host(self.port, [f"{topo.a4}/24", f"{topo.a6}/64"], neighbours=self.neighbours,
                         gateway=gateway)
        self.layer = TcpLayer(self.host, config=config or CONFIG)

    def track(self, sock):
        self.sockets.append(sock)
        return sock

    def claim(self, number: int, address: str | None = None) -> int:
        """Register TCP ``number`` (0: any free one) on ``address``; the bound port."""
        sock = self.track(self.port.claim("tcp", address or self.topo.a4, number))
        return sock.getsockname()[1]

    async def listen(self, number: int, address: str | None = None, *, backlog: int = 128,
                     config: TcpConfig | None = None):
        address = address or self.topo.a4
        self.claim(number, address)
        return await open_tcp_listener(self.host, address, number, backlog=backlog, config=config)

    async def connect(self, remote: str, number: int, *, config: TcpConfig | None = None):
        local = self.topo.a6 if ":" in remote else self.topo.a4
        local_port = self.claim(0, local)
        return await open_tcp_stream(self.host, remote, number, source=local,
                                     local_port=local_port, config=config)

    def peer_tcp(self, count: int | None = None, family: int = socket.AF_INET):
        """Kernel TCP socket(s) in the peer namespace, wrapped for trio."""
        fd_room(count or 1)

        def make():
            return [socket.socket(family, socket.SOCK_STREAM) for _ in range(count or 1)]
        socks = ku.in_netns(self.topo.ns, make)
        wrapped = [trio.socket.from_stdlib_socket(self.track(s)) for s in socks]
        return wrapped if count is not None else wrapped[0]

    async def linux_server(self, address: str, number: int, backlog: int = 1024):
        srv = self.peer_tcp(family=socket.AF_INET6 if ":" in address else socket.AF_INET)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        await srv.bind((address, number))
        srv.listen(backlog)
        return srv

    def wire(self) -> "Wire":
        wire = Wire(self.topo)
        self.track(wire.sender)
        self.track(wire.sniffer)
        return wire

    def close(self):
        for s in self.sockets:
            s.close()
        self.neighbours.close()
        self.port.close()


@contextlib.asynccontextmanager
async def utcp_stack(topo, config: TcpConfig | None = None, *, gateway=None, **port_kw):
    """A running UTCP stack on the attached side of ``topo`` (routing through
    ``gateway``, an address or a list, if given); closed on exit."""
    stack = KmodUtcp(topo, config, gateway=gateway, **port_kw)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stack.host.run)
            yield stack
            nursery.cancel_scope.cancel()
    finally:
        stack.close()


# -- the Linux side -------------------------------------------------------------


async def send_pattern(sock, n: int) -> None:
    left = n
    while left:
        k = min(left, len(_BLOCK))
        view = memoryview(_BLOCK)[:k]
        while view:
            sent = await sock.send(view)
            view = view[sent:]
        left -= k


async def recv_all_sha(receive) -> tuple[int, str]:
    """Read to EOF with ``receive()`` (returns b"" at EOF): (bytes, sha256)."""
    h = hashlib.sha256()
    total = 0
    while chunk := await receive():
        h.update(chunk)
        total += len(chunk)
    return total, h.hexdigest()


def fd_room(count: int) -> None:
    """Raise this process's open-file limit so ``count`` more sockets fit
    (the VM's default soft limit is 1024; root may go up to the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = len(os.listdir("/proc/self/fd")) + count + 64
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


async def in_peer(topo, *argv, timeout: float = 120.0):
    """Run a command in the peer namespace; its CompletedProcess."""
    with trio.fail_after(timeout):
        return await trio.run_process(["ip", "netns", "exec", topo.ns, *argv],
                                      capture_stdout=True, capture_stderr=True, check=False)


@contextlib.contextmanager
def netem(topo, spec: str):
    """The same netem impairment on both ends of the veth (both directions).

    The module sends with dev_queue_xmit(), so the qdisc of ``ms0`` sees
    UTCP's frames; the one of ``ms1`` sees Linux's.
    """
    peer = f"ip netns exec {topo.ns} "
    try:
        ku.sh(f"tc qdisc add dev {topo.if_a} root netem {spec}")
        ku.sh(f"{peer}tc qdisc add dev {topo.if_b} root netem {spec}")
        yield
    finally:
        ku.sh(f"tc qdisc del dev {topo.if_a} root", check=False)
        ku.sh(f"{peer}tc qdisc del dev {topo.if_b} root", check=False)


def netem_stats(topo) -> str:
    a = ku.sh(f"tc -s qdisc show dev {topo.if_a}", check=False).stdout
    b = ku.sh(f"ip netns exec {topo.ns} tc -s qdisc show dev {topo.if_b}", check=False).stdout
    return a + b


# -- forged segments and the capture on the peer's end ---------------------------


def tcp_frame(topo, sport: int, dport: int, seq: int, ack: int, flags: int, *,
              payload: bytes = b"", window: int = 1000,
              timestamp: tuple[int, int] | None = None) -> bytes:
    """A whole Ethernet frame, peer -> stack, carrying one TCP segment over IPv4."""
    options = b""
    if timestamp is not None:
        options = b"\x01\x01\x08\x0a" + struct.pack("!II", timestamp[0] & 0xFFFFFFFF,
                                                    timestamp[1] & 0xFFFFFFFF)
    doff = (20 + len(options)) // 4
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      doff << 4, flags, window, 0, 0) + options
    seg = hdr + payload
    src, dst = topo.b4, topo.a4
    pseudo = (ipaddress.ip_address(src).packed + ipaddress.ip_address(dst).packed
              + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(seg)))
    c = ku.csum(pseudo + seg)
    seg = seg[:16] + struct.pack("!H", c) + seg[18:]
    return ku.eth(topo.mac_a, topo.mac_b, 0x0800,
                  ku.ip_packet(socket.IPPROTO_TCP, src, dst, seg, frag=0x4000))


def parse_tcp(frame: bytes) -> dict | None:
    """Addresses, ports, seq, ack, flags and payload of an IPv4 TCP frame."""
    frame = bytes(frame)
    if len(frame) < 54 or frame[12:14] != b"\x08\x00" or frame[23] != socket.IPPROTO_TCP:
        return None
    ihl = (frame[14] & 0x0F) * 4
    total = struct.unpack_from("!H", frame, 16)[0]
    off = 14 + ihl
    sport, dport, seq, ack, doff, flags = struct.unpack_from("!HHIIBB", frame, off)
    return {"src": socket.inet_ntoa(frame[26:30]), "dst": socket.inet_ntoa(frame[30:34]),
            "sport": sport, "dport": dport, "seq": seq, "ack": ack, "flags": flags,
            "payload": frame[off + (doff >> 4) * 4:14 + total]}


class Wire:
    """Forge frames out of ``ms1`` and capture every frame crossing it."""

    def __init__(self, topo):
        self.topo = topo
        self.sender = ku.peer_raw_sender(topo.if_b)
        self.sniffer = ku.peer_sniffer(topo.if_b)

    def send(self, frame: bytes) -> None:
        self.sender.send(frame)

    def take(self) -> list[dict]:
        """TCP frames captured since the last call (non-blocking)."""
        out = []
        while True:
            try:
                raw = self.sniffer.recv(65536)
            except BlockingIOError:
                return out
            seg = parse_tcp(raw)
            if seg is not None:
                out.append(seg)

    async def settle(self, seconds: float = 0.3) -> list[dict]:
        """Let the stack answer for ``seconds`` (trio keeps running it), then capture."""
        await trio.sleep(seconds)
        return self.take()


def elapsed(t0: float) -> str:
    return f"{time.monotonic() - t0:.1f}s"
