"""The MultiStack demo: user-level stacks answering Linux clients in another namespace.

    python -m stacks.apps.demo [--backend tap|kmod] [--count N] [--pcap FILE]   (root)

``scripts/demo`` picks the backend: ``kmod`` (multistack.ko, in the VM when
this kernel cannot load modules) by default, ``tap`` on request.

Backend ``kmod`` (stacks/apps/demo_kmod.py): two namespaces over a veth,
MultiStack attached on the server side, where a user-level IP host serves
UDP echo (RFC 862, port 7) and HTTP/1.1 on UTCP (port 80) beside a legacy
HTTP server on the OS stack (:8080) and the OS answering ping; a second
port tries to spoof the first one's 3-tuple.  Backend ``tap``: the same
user-level services on a TAP port whose kernel side sits in a client
namespace.  In both, Linux's own stack plays the client (a Python socket,
netcat, curl and ping, over IPv4 and IPv6), and the demo prints a
transcript, a table of who served what and the counters of both sides,
then removes its namespaces.

The pieces: a *backend* builds the topology (``TapBackend`` here,
``KmodBackend`` in demo_kmod), a *service* starts something on the stack
side (``SERVICES``) and an *act* is one client-side exercise that appends
rows to the table (``ACTS``; a backend may add its own).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from ipaddress import IPv4Interface, IPv6Interface, ip_interface

import trio

from multistack.pcap import CapturePort, PcapWriter
from multistack.tap import create_netns, delete_netns, ip, list_netns, open_tap_in_netns, unique_netns_name
from stacks.apps import http_server
from stacks.apps.udp_echo import ECHO_PORT, EchoStats, serve_udp_echo
from stacks.host import Host, OwnNeighbours
from stacks.udp import UdpLayer
from stacks.utcp.trio_api import TcpLayer, open_tcp_listener

NETNS_PREFIX = "msdemo"
HTTP_PORT = 80
HTTP_SIZE = 16384


@dataclass
class Row:
    """One line of the "who served what" table."""

    service: str
    client: str
    server: str
    result: str
    ok: bool


@dataclass
class Event:
    time: float  # CLOCK_MONOTONIC, shared by every process on the machine
    src: str
    dst: str
    text: str


@dataclass
class Demo:
    """What every act can use: the topology, the running host, the records."""

    client_ns: str
    client_addresses: list[IPv4Interface | IPv6Interface]
    stack_addresses: list[IPv4Interface | IPv6Interface]
    host: Host
    count: int
    backend: object = None
    events: list[Event] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    echo_stats: EchoStats = field(default_factory=EchoStats)
    utcp_accepted: int = 0      # connections the UTCP HTTP service accepted
    sockets: list[str] = field(default_factory=list)   # `multistack-ctl ss` of the stack
    rejects: list[str] = field(default_factory=list)   # `multistack-ctl rejects` of a port
    rejects_port: int | None = None

    def stack_address(self, version: int):
        return next(i.ip for i in self.stack_addresses if i.version == version)

    def client_address(self, version: int):
        return next(i.ip for i in self.client_addresses if i.version == version)

    async def in_client(self, *argv: str, timeout: float = 20) -> trio.CompletedProcess:
        """Run a command on the Linux stack of the client namespace."""
        with trio.fail_after(timeout):
            return await trio.run_process(["ip", "netns", "exec", self.client_ns, *argv],
                                          capture_stdout=True, capture_stderr=True, check=False)


def endpoint(address, port) -> str:
    address = str(address)
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


# -- acts --------------------------------------------------------------


async def act_udp_echo(demo: Demo, version: int) -> None:
    target = demo.stack_address(version)
    done = await demo.in_client(sys.executable, "-m", "stacks.apps.udp_client", str(target),
                                str(ECHO_PORT), "--count", str(demo.count),
                                "--label", f"hello over IPv{version}")
    echoed = 0
    for line in done.stdout.decode().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        src, dst = endpoint(*event["src"]), endpoint(*event["dst"])
        if event["event"] == "sent":
            demo.events.append(Event(event["time"], f"linux  {src}", f"{dst}",
                                     f"sends {event['data']!r} ({event['size']} B)"))
        elif event["event"] == "echoed":
            echoed += 1
            demo.events.append(Event(event["time"], f"linux  {dst}", "",
                                     f"got its echo back, rtt {event['rtt_ms']} ms"))
        else:
            demo.events.append(Event(event["time"], f"linux  {dst}", "", f"{event['event']}: "
                                     f"{event['data']!r} {event.get('error', '')}"))
    ok = done.returncode == 0 and echoed == demo.count
    demo.rows.append(Row(f"UDP echo, IPv{version}", "Linux socket (Python)",
                         "user-level UDP echo", f"{echoed}/{demo.count} echoed", ok))


async def act_netcat(demo: Demo) -> None:
    target = demo.stack_address(4)
    message = "hello from netcat"
    sent_at = time.monotonic()
    done = await demo.in_client("sh", "-c", f"printf '{message}' | nc -u -w1 {target} {ECHO_PORT}")
    reply = done.stdout.decode()
    demo.events.append(Event(sent_at, "linux  nc -u", endpoint(target, ECHO_PORT), f"sends {message!r}"))
    # netcat waits one idle second (-w1) before it exits and its output is known.
    demo.events.append(Event(time.monotonic(), "linux  nc -u", "", f"printed {reply!r}"))
    demo.rows.append(Row("UDP echo, IPv4", "netcat (nc -u)", "user-level UDP echo",
                         "echoed" if reply == message else f"got {reply!r}", reply == message))


async def act_ping(demo: Demo, version: int) -> None:
    target = demo.stack_address(version)
    argv = ["ping", "-c", str(demo.count), "-i", "0.2", "-W", "1", str(target)]
    if version == 6:
        argv.insert(1, "-6")
    sent_at = time.monotonic()
    done = await demo.in_client(*argv)
    received = 0
    for line in done.stdout.decode().splitlines():
        if "packets transmitted" in line:
            received = int(line.split(",")[1].split()[0])
    demo.events.append(Event(sent_at, f"linux  ping{'6' if version == 6 else ''}", str(target),
                             f"{demo.count} echo requests, {received} replies"))
    demo.rows.append(Row(f"ping, IPv{version}", "Linux ping", demo.backend.ping_server,
                         f"{received}/{demo.count} answered", received == demo.count))


async def act_http(demo: Demo, version: int, port: int = HTTP_PORT,
                   server: str = "HTTP/1.1 on UTCP (user-level TCP)", retry: bool = False) -> None:
    """curl fetches a body from ``port``; ``retry`` waits for a server still starting."""
    target = demo.stack_address(version)
    host = f"[{target}]" if version == 6 else str(target)
    url = f"http://{host}:{port}/bytes/{HTTP_SIZE}"
    retries = ["--retry", "30", "--retry-connrefused", "--retry-delay", "1"] if retry else []
    fd, path = tempfile.mkstemp(prefix="msdemo-http-")
    os.close(fd)
    try:
        started = time.monotonic()
        demo.events.append(Event(started, "linux  curl", endpoint(target, port),
                                 f"GET /bytes/{HTTP_SIZE} (IPv{version})"))
        done = await demo.in_client("curl", "-sS", "--max-time", "10", *retries, "-o", path,
                                    "-w", "%{http_code} %{size_download}", url, timeout=60)
        with open(path, "rb") as f:
            body = f.read()
    finally:
        os.unlink(path)
    status = done.stdout.decode().split()[0] if done.stdout else "no answer"
    intact = body == http_server._PATTERN[:HTTP_SIZE] if len(body) == HTTP_SIZE else False
    took = (time.monotonic() - started) * 1000
    demo.events.append(Event(time.monotonic(), "linux  curl", "",
                             f"got HTTP {status}, {len(body)} B, body {'intact' if intact else 'WRONG'}"
                             f", {took:.0f} ms {done.stderr.decode().strip()}"))
    demo.rows.append(Row(f"HTTP GET :{port}, IPv{version}", "curl", server,
                         f"{status}, {len(body)} B intact" if intact else f"{status}, {len(body)} B",
                         status == "200" and intact))


Service = Callable[[Demo, trio.Nursery], Awaitable[str]]


async def act_ss(demo: Demo) -> None:
    """`multistack-ctl ss` reads the running stack's sockets through its control
    socket, while a Linux client holds an HTTP connection open half-way through
    its request."""
    server = demo.stack_address(4)
    holder = ("import socket, sys, time\n"
              f"s = socket.create_connection(({str(server)!r}, {HTTP_PORT}))\n"
              "s.sendall(b'GET / HTTP/1.1\\r\\nHost: demo\\r\\n')\n"
              "print('connected', flush=True)\n"
              "time.sleep(600)\n")
    argv = [sys.executable, "-m", "multistack.ctl", "ss", "--pid", str(os.getpid())]
    async with trio.open_nursery() as nursery:
        client = await nursery.start(partial(trio.run_process, ["ip", "netns", "exec",
                                             demo.client_ns, sys.executable, "-c", holder],
                                             stdout=subprocess.PIPE, check=False))
        try:
            with trio.fail_after(180):     # Python starts slowly in the (emulated) VM
                await client.stdout.receive_some()           # "connected"
                while True:
                    done = await trio.run_process(argv, capture_stdout=True,
                                                  capture_stderr=True, check=False)
                    demo.sockets = done.stdout.decode(errors="replace").splitlines()
                    if done.returncode != 0 or any(
                            line.startswith("tcp   ESTAB") for line in demo.sockets):
                        break
                    await trio.sleep(0.05)
        finally:
            client.kill()
    echo = [line for line in demo.sockets if line.startswith("udp") and f":{ECHO_PORT} " in line]
    held = [line for line in demo.sockets if line.startswith("tcp   ESTAB")
            and f"{server}:{HTTP_PORT} " in line]
    listed = sum(1 for line in demo.sockets[1:] if line[:3] in ("tcp", "udp"))
    result = (f"{listed} sockets listed" if done.returncode == 0
              else done.stderr.decode(errors="replace").strip())
    demo.rows.append(Row("sockets of the stack", "multistack-ctl ss", "control socket", result,
                         done.returncode == 0 and len(echo) == 2 and len(held) == 1))


async def service_udp_echo(demo: Demo, nursery: trio.Nursery) -> str:
    def on_echo(data: bytes, peer, local) -> None:
        demo.events.append(Event(time.monotonic(), f"stack  {endpoint(*local)}",
                                 endpoint(*peer), f"echoes {data.decode(errors='replace')!r}"))

    for wildcard in ("0.0.0.0", "::"):
        await nursery.start(lambda task_status, w=wildcard: serve_udp_echo(
            demo.host, w, ECHO_PORT, on_echo=on_echo, stats=demo.echo_stats,
            task_status=task_status))
    return f"UDP echo on port {ECHO_PORT} (user-level UDP, IPv4 and IPv6)"


async def service_http(demo: Demo, nursery: trio.Nursery) -> str:
    async def logged(stream) -> None:
        demo.utcp_accepted += 1
        local, remote = stream.local_address, stream.remote_address
        demo.events.append(Event(time.monotonic(), f"stack  {endpoint(*local)}", endpoint(*remote),
                                 "UTCP accepted the connection, HTTP server answers"))
        await http_server.handle(stream, idle_timeout=http_server.IDLE_TIMEOUT)

    listener = await open_tcp_listener(demo.host, None, HTTP_PORT)
    await nursery.start(trio.serve_listeners, logged, [listener])
    return f"HTTP/1.1 on port {HTTP_PORT} (UTCP, the user-level TCP, IPv4 and IPv6)"


SERVICES: list[Service] = [service_udp_echo, service_http]

Act = Callable[[Demo], Awaitable[None]]
ACTS: list[tuple[str, Act]] = [
    ("udp-echo-v4", lambda demo: act_udp_echo(demo, 4)),
    ("udp-echo-v6", lambda demo: act_udp_echo(demo, 6)),
    ("netcat", act_netcat),
    ("http-v4", lambda demo: act_http(demo, 4)),
    ("http-v6", lambda demo: act_http(demo, 6)),
    ("ping-v4", lambda demo: act_ping(demo, 4)),
    ("ping-v6", lambda demo: act_ping(demo, 6)),
]


# -- backends ----------------------------------------------------------


class TapBackend:
    """The user-level stack on a TAP device; Linux in the client namespace on
    the device's kernel side.  The stack is its own host on that link: it
    answers ARP, neighbour solicitations and pings itself."""

    name = "tap"
    description = "TAP device (user-level stack owns the link; the kernel module is not used)"
    ping_server = "user-level host (ICMP echo)"
    extra_acts: list = []
    client_addresses = [ip_interface("10.200.0.1/24"), ip_interface("fd00:200::1/64")]
    stack_addresses = [ip_interface("10.200.0.2/24"), ip_interface("fd00:200::2/64")]

    def __init__(self, pcap: str | None = None):
        self.client_ns = unique_netns_name(NETNS_PREFIX)
        self.namespaces = [self.client_ns]
        self.pcap = pcap
        self.port = None

    def setup(self) -> Host:
        create_netns(self.client_ns)
        self.port = open_tap_in_netns(self.client_ns, [str(a) for a in self.client_addresses])
        port = self.port
        if self.pcap:  # every frame the stack receives and sends, for Wireshark
            port = CapturePort(port, PcapWriter(self.pcap), time.time)
        return Host(port, self.stack_addresses, neighbours=OwnNeighbours())

    def describe(self) -> list[str]:
        port = self.port
        return [
            f"client namespace {self.client_ns} (Linux stack): {port.name} "
            f"{' '.join(map(str, self.client_addresses))}  mac {_mac(port.kernel_mac)}",
            f"user-level stack (this process, pid {os.getpid()}): TAP fd "
            f"{' '.join(map(str, self.stack_addresses))}  mac {_mac(port.mac)}",
        ]

    def counter_sections(self, host: Host) -> list[tuple[str, dict[str, int]]]:
        kernel = json.loads(ip("-s", "-j", "link", "show", "dev", self.port.name,
                               netns=self.client_ns))[0]["stats64"]
        return [
            (f"TAP port {self.port.name} (user side)", self.port.stats().as_dict()),
            (f"Linux interface {self.port.name} in {self.client_ns}",
             {"rx_packets": kernel["rx"]["packets"], "tx_packets": kernel["tx"]["packets"],
              "rx_dropped": kernel["rx"]["dropped"], "tx_dropped": kernel["tx"]["dropped"]}),
        ]

    def teardown(self, host: Host | None = None) -> None:
        if host is not None:
            host.port.close()  # a CapturePort closes its file too
        elif self.port is not None:
            self.port.close()
        delete_netns(self.client_ns)


class DemoError(Exception):
    """A reason the demo cannot run here, printed as one line."""


def backend_class(name: str):
    if name == "tap":
        return TapBackend
    if name == "kmod":
        from stacks.apps.demo_kmod import KmodBackend  # needs the cffi binding of the module

        return KmodBackend
    raise DemoError(f"unknown backend {name!r}")


BACKENDS = ("tap", "kmod")


def _mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def remove_stale_namespaces() -> list[str]:
    """Delete demo namespaces left by runs that were killed (their pid is gone)."""
    removed = []
    for name in list_netns():
        if not name.startswith(NETNS_PREFIX):
            continue
        pid = name[len(NETNS_PREFIX):].split("-")[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            delete_netns(name)
            removed.append(name)
    return removed


# -- output ------------------------------------------------------------


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]
    line = lambda cells: "  " + "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return [line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows]


def report(demo: Demo, backend, out) -> None:
    print("\nTranscript (time since start, who, to whom, what)", file=out)
    start = min((e.time for e in demo.events), default=0.0)
    rows = [[f"{e.time - start:7.3f}s", e.src, ("-> " + e.dst) if e.dst else "", e.text]
            for e in sorted(demo.events, key=lambda e: e.time)]
    for line in table(["time", "who", "to", "what"], rows):
        print(line, file=out)

    print("\nWho served what", file=out)
    rows = [[r.service, r.client, r.server, r.result, "ok" if r.ok else "FAILED"] for r in demo.rows]
    for line in table(["service", "client", "served by", "result", "check"], rows):
        print(line, file=out)

    if demo.sockets:
        print(f"\nSockets of the stack (multistack-ctl ss --pid {os.getpid()})", file=out)
        for line in demo.sockets:
            print("  " + line, file=out)

    if demo.rejects:
        print(f"\nFrames the module refused to port B (multistack-ctl rejects {demo.rejects_port})",
              file=out)
        for line in demo.rejects:
            print("  " + line, file=out)

    print("\nCounters", file=out)
    udp = UdpLayer.of(demo.host)
    sections = [("user-level host", dict(demo.host.counters)), ("user-level UDP", dict(udp.counters)),
                ("UDP echo service", vars(demo.echo_stats))]
    tcp = demo.host.handler(6)
    if isinstance(tcp, TcpLayer):
        # The connections served, then the endpoint's and the layer's events and drops.
        sections.append(("UTCP", {"connections_accepted": demo.utcp_accepted,
                                  **tcp.endpoint.stats, **tcp.counters}))
    sections += backend.counter_sections(demo.host)
    for title, counters in sections:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(counters.items()) if v) or "(all zero)"
        print(f"  {title}: {shown}", file=out)


async def run_demo(backend_name: str = "tap", count: int = 3, out=sys.stdout,
                   pcap: str | None = None) -> bool:
    backend = backend_class(backend_name)(pcap=pcap)
    stale = remove_stale_namespaces()
    print(f"MultiStack demo, backend: {backend.description}", file=out)
    if stale:
        print(f"  (removed namespaces left by killed runs: {', '.join(stale)})", file=out)
    host = None
    try:
        host = backend.setup()
        host.control_socket = True      # for `multistack-ctl ss` (act_ss)
        for line in backend.describe():
            print("  " + line, file=out)
        demo = Demo(backend.client_ns, backend.client_addresses, backend.stack_addresses, host, count,
                    backend)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(host.run)
            for service in SERVICES:
                print(f"  serving: {await service(demo, nursery)}", file=out)
            for name, act in ACTS + backend.extra_acts + [("ss", act_ss)]:
                try:
                    await act(demo)
                except (DemoError, OSError, trio.TooSlowError, AssertionError, ValueError) as exc:
                    # One broken act is a FAILED row, not the end of the demo.
                    demo.rows.append(Row(name, "", "", f"error: {type(exc).__name__}: {exc}", False))
            nursery.cancel_scope.cancel()
        report(demo, backend, out)
    finally:
        backend.teardown(host)
    if pcap:
        print(f"capture of the stack's frames: {pcap}", file=out)
    passed = sum(r.ok for r in demo.rows)
    verdict = "all passed" if passed == len(demo.rows) else "SOME FAILED"
    print(f"\nRESULT: {passed}/{len(demo.rows)} checks passed ({verdict}); "
          f"namespaces removed: {', '.join(backend.namespaces)}", file=out)
    return passed == len(demo.rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="MultiStack demo")
    parser.add_argument("--backend", choices=BACKENDS, default="tap",
                        help="tap: this machine, no module; kmod: multistack.ko (in the VM: "
                             "scripts/vm run -- scripts/demo --backend kmod)")
    parser.add_argument("--count", type=int, default=3, help="messages / pings per check")
    parser.add_argument("--pcap", metavar="FILE", help="write the stack's frames to a pcap file")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("demo: needs root (it creates network namespaces and a TAP device)", file=sys.stderr)
        return 2
    if args.count < 1:
        print("demo: --count must be at least 1", file=sys.stderr)
        return 2
    try:
        return 0 if trio.run(run_demo, args.backend, args.count, sys.stdout, args.pcap) else 1
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    # Run the imported module, not this __main__ copy, so that backends
    # (stacks.apps.demo_kmod) share its classes (DemoError, Demo...).
    from stacks.apps.demo import main as _main

    sys.exit(_main())
