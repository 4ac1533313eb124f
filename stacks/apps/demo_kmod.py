"""The demo's kernel-module backend: MultiStack attached on the server side of a veth.

Topology (two fresh namespaces joined by a veth pair)::

    client namespace (Linux)                 server namespace (Linux + MultiStack)
    vc 10.200.0.1 fd00:200::1  <== veth ==>  vs 10.200.0.2 fd00:200::2, multistack.ko attached
                                               port A (this process): UDP 7 and TCP 80 registered
                                               OS stack: everything else (ARP/ND, ping, :8080)

This process enters the server namespace, attaches the module to ``vs``,
opens port A, claims UDP 7 and TCP 80 on both addresses and runs the
user-level host there (neighbours from the OS table, ping left to the OS).
A legacy HTTP server on kernel sockets serves :8080 beside it.  Extra acts:
curl against the legacy server, and a second port of this process that
tries to send as port A's 3-tuple and as an unregistered one (the module
must reject both, and count them) next to a datagram from its own tuple.

Needs ``multistack.ko`` loaded: ``scripts/vm run -- scripts/demo --backend kmod``.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import time
from ipaddress import ip_interface

import trio

from multistack.tap import create_netns, delete_netns, ip, unique_netns_name
from stacks.apps.demo import (ECHO_PORT, NETNS_PREFIX, Demo, DemoError, Event, Row,
                              act_http, endpoint)
from stacks.host import Host, OsNeighbours
from stacks.wire.ethernet import EtherType, EthernetRepr
from stacks.wire.frame import build_frame
from stacks.wire.ipv4 import Ipv4Repr
from stacks.wire.udp import UdpRepr

CLONE_NEWNET = 0x40000000
LEGACY_HTTP_PORT = 8080
SPOOF_TARGET_PORT = 9999

# A kernel UDP socket in the client namespace that reports what reaches it.
_LISTENER = r"""
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(float(sys.argv[3]))
print("ready", flush=True)
got = []
try:
    while True:
        got.append(s.recv(2048).decode(errors="replace"))
except socket.timeout:
    pass
print(json.dumps(got), flush=True)
"""


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


async def act_legacy_http(demo: Demo) -> None:
    await act_http(demo, 4, LEGACY_HTTP_PORT,
                   "legacy HTTP server on the OS stack (kernel sockets)", retry=True)


async def act_spoof(demo: Demo) -> None:
    from multistack import kernel

    backend: KmodBackend = demo.backend
    client, ours = demo.client_address(4), demo.stack_address(4)
    listener = await trio.lowlevel.open_process(
        ["ip", "netns", "exec", demo.client_ns, sys.executable, "-c", _LISTENER, str(client),
         str(SPOOF_TARGET_PORT), "3"], stdout=subprocess.PIPE)
    try:
        with trio.fail_after(60):
            assert (await listener.stdout.receive_some(100)).startswith(b"ready")
        mac = demo.host.neighbours.read(client)
        if mac is None:
            raise DemoError(f"the OS has no neighbour entry for {client}")
        other = kernel.KernelPort(backend.ifname)
        try:
            other.claim("udp", str(ours), SPOOF_TARGET_PORT)

            def datagram(source_port: int, text: str) -> bytes:
                return build_frame(EthernetRepr(mac, other.mac, EtherType.IPV4),
                                   Ipv4Repr(ours, client, 17),
                                   UdpRepr(source_port, SPOOF_TARGET_PORT, text.encode()))

            attempts = [(SPOOF_TARGET_PORT, "port B from its own UDP 9999"),
                        (ECHO_PORT, "port B posing as port A's UDP 7"),
                        (5555, "port B from unregistered UDP 5555")]
            before = kernel.interface_stats(backend.ifname)
            for source_port, text in attempts:
                demo.events.append(Event(time.monotonic(), f"port B {endpoint(ours, source_port)}",
                                         endpoint(client, SPOOF_TARGET_PORT), f"sends {text!r}"))
            other.send_batch([datagram(p, t) for p, t in attempts])
            other.sync()
            after = kernel.interface_stats(backend.ifname)
            # Why they did not leave, as a user would ask (the port must still exist).
            demo.rejects_port = other.port_id
            shown = await trio.run_process(
                [sys.executable, "-m", "multistack.ctl", "rejects", str(other.port_id)],
                capture_stdout=True, capture_stderr=True, check=False)
            demo.rejects = (shown.stdout or shown.stderr).decode(errors="replace").splitlines()
        finally:
            other.close()
        output = b""
        with trio.fail_after(60):
            while chunk := await listener.stdout.receive_some(4096):
                output += chunk
    finally:
        listener.kill()
        await listener.wait()
    received = json.loads(output.decode().strip().splitlines()[-1])
    demo.events.append(Event(time.monotonic(), "linux  listener", "", f"received {received!r}"))
    grew = {k: after.get(k, 0) - before.get(k, 0) for k in ("tx_rej_other_port", "tx_rej_not_owned")}
    demo.rows.append(Row("own 3-tuple, UDP 9999", "port B (this process)", "multistack.ko TX check",
                         "sent, client got it" if attempts[0][1] in received else "lost",
                         attempts[0][1] in received))
    for (source_port, text), counter in zip(attempts[1:], ("tx_rej_other_port", "tx_rej_not_owned")):
        ok = grew[counter] == 1 and text not in received
        demo.rows.append(Row(f"spoof as UDP {source_port}", "port B (this process)",
                             "multistack.ko TX check",
                             f"rejected ({counter} +{grew[counter]}), client got nothing"
                             if ok else f"NOT rejected ({counter} +{grew[counter]})", ok))
    # One line per refused frame, its reason and its source port.
    listed = [(reason, source_port) for reason, source_port in
              (("tx_rej_other_port", ECHO_PORT), ("tx_rej_not_owned", 5555))
              if any(f" {reason} " in line and f":{source_port} > " in line
                     for line in demo.rejects)]
    demo.rows.append(Row("why frames did not leave", "multistack-ctl rejects", "port B's ring",
                         f"{len(listed)} of 2 refused frames listed with their reason",
                         shown.returncode == 0 and len(listed) == 2))


class KmodBackend:
    name = "kmod"
    description = ("multistack.ko attached to a veth: port A gets only its registered 3-tuples, "
                   "the OS stack keeps the rest")
    ping_server = "Linux stack (not registered: passed to the OS)"
    client_addresses = [ip_interface("10.200.0.1/24"), ip_interface("fd00:200::1/64")]
    stack_addresses = [ip_interface("10.200.0.2/24"), ip_interface("fd00:200::2/64")]
    ifname = "vs"
    extra_acts = [("legacy-http", act_legacy_http), ("spoof", act_spoof)]

    def __init__(self, pcap: str | None = None):
        if pcap:
            raise DemoError("--pcap is for the tap backend (capture the veth with tcpdump here)")
        self.client_ns = unique_netns_name(NETNS_PREFIX)
        self.server_ns = unique_netns_name(NETNS_PREFIX)
        self.namespaces = [self.client_ns, self.server_ns]
        self.port = None
        self.neighbours = None
        self.legacy_http: subprocess.Popen | None = None
        self._home = None
        self._attached = False

    def setup(self) -> Host:
        from multistack import kernel

        if not kernel.module_loaded():
            raise DemoError("multistack.ko is not loaded here; run it in the VM: "
                            "scripts/vm run -- scripts/demo --backend kmod")
        create_netns(self.client_ns)
        create_netns(self.server_ns)
        ip("link", "add", self.ifname, "type", "veth", "peer", "name", "vc", "netns", self.client_ns,
           netns=self.server_ns)
        for ns, dev, addresses in ((self.client_ns, "vc", self.client_addresses),
                                   (self.server_ns, self.ifname, self.stack_addresses)):
            for address in addresses:
                ip("addr", "add", str(address), "dev", dev, *(["nodad"] if address.version == 6 else []),
                   netns=ns)
            ip("link", "set", dev, "up", netns=ns)
        # Attaching, the port and the proving sockets all live in the server namespace.
        self._home = os.open("/proc/self/ns/net", os.O_RDONLY)
        server = os.open(f"/var/run/netns/{self.server_ns}", os.O_RDONLY)
        try:
            _setns(server)
        finally:
            os.close(server)
        kernel.attach(self.ifname)
        self._attached = True
        self.port = kernel.KernelPort(self.ifname)
        for proto, number in (("udp", ECHO_PORT), ("tcp", 80)):
            for address in self.stack_addresses:
                self.port.claim(proto, str(address.ip), number)
        self.legacy_http = subprocess.Popen(
            [sys.executable, "-m", "stacks.apps.http_server", "--port", str(LEGACY_HTTP_PORT)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.neighbours = OsNeighbours(self.ifname)
        return Host(self.port, self.stack_addresses, neighbours=self.neighbours)

    def describe(self) -> list[str]:
        regs = ", ".join(f"{p} {endpoint(a, n)}" for p, a, n in self.port.registrations)
        return [
            f"client namespace {self.client_ns} (Linux stack): vc "
            f"{' '.join(map(str, self.client_addresses))}",
            f"server namespace {self.server_ns}: {self.ifname} "
            f"{' '.join(map(str, self.stack_addresses))}, multistack.ko attached",
            f"port A (this process, pid {os.getpid()}) registered: {regs}",
            f"OS stack keeps everything else, including a legacy HTTP server on :{LEGACY_HTTP_PORT}",
        ]

    def counter_sections(self, host: Host) -> list[tuple[str, dict[str, int]]]:
        from multistack import kernel

        return [("multistack.ko port A", self.port.stats().as_dict()),
                (f"multistack.ko interface {self.ifname}", kernel.interface_stats(self.ifname))]

    def teardown(self, host: Host | None = None) -> None:
        from multistack import kernel

        if self.legacy_http is not None:
            self.legacy_http.kill()
            self.legacy_http.wait()
        if self.neighbours is not None:
            self.neighbours.close()
        if self.port is not None:
            self.port.close()
        if self._attached:
            kernel.detach(self.ifname)
        if self._home is not None:
            _setns(self._home)
            os.close(self._home)
        delete_netns(self.client_ns)
        delete_netns(self.server_ns)
