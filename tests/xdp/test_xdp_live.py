"""The XDP programs attached to real veths, with live traffic between two
namespaces: a claimed UDP flow from the outside is redirected into the
port's veth, unclaimed traffic (ARP included) reaches the OS's sockets
untouched, and what the port sends reaches the outside only when it owns
the source tuple.

    outside ns            test ns (the host)
    wire0 10.0.0.2 <----> nic0 10.0.0.1   ms_xdp_rx
                          port1 (ms_xdp_tx) <----> port1p (the port's end)

A veth delivers redirected frames (ndo_xdp_xmit) only to a peer running an
XDP program: wire0 and port1p get one that passes everything."""

import os
import select
import socket
import subprocess
import time
from ipaddress import IPv4Address

import pytest

import xdputil as xu
from multistack.tap import create_netns, delete_netns, ip
from multistack.xdp import XdpPrograms

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="attaching XDP programs needs root"),
]

A4, B4 = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")
PASS_PROGRAM = """
#include <linux/bpf.h>
__attribute__((section("xdp"), used)) int ms_test_pass(struct xdp_md *ctx) { return XDP_PASS; }
char _license[] __attribute__((section("license"), used)) = "GPL";
"""


def mac_of(name: str, netns: str | None = None) -> bytes:
    out = ip("-o", "link", "show", "dev", name, netns=netns)
    return bytes.fromhex(out.split("link/ether ")[1].split()[0].replace(":", ""))


def socket_in(netns_fd: int, home_fd: int, *args) -> socket.socket:
    """A socket of the namespace netns_fd (a socket stays in the namespace
    it was created in)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.setns(netns_fd, xu.CLONE_NEWNET) == 0
    try:
        return socket.socket(*args)
    finally:
        assert libc.setns(home_fd, xu.CLONE_NEWNET) == 0


def recv_within(sock: socket.socket, timeout: float) -> bytes | None:
    if select.select([sock], [], [], timeout)[0]:
        return sock.recv(65535)
    return None


def frames_within(sock: socket.socket, timeout: float, want) -> list[bytes]:
    """Frames read from a packet socket until one satisfies want() or timeout."""
    got, end = [], time.monotonic() + timeout
    while time.monotonic() < end:
        frame = recv_within(sock, end - time.monotonic())
        if frame is None:
            break
        got.append(frame)
        if want(frame):
            break
    return got


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    src = tmp_path_factory.mktemp("pass") / "pass.bpf.c"
    src.write_text(PASS_PROGRAM)
    pass_obj = src.with_suffix(".o")
    subprocess.run(["clang", "-target", "bpf", "-O2", "-g", "-I/usr/include/x86_64-linux-gnu",
                    "-c", str(src), "-o", str(pass_obj)], check=True)
    outside = xu.unique_netns_name("msxdpout")
    create_netns(outside)
    try:
        with xu.inside_new_netns() as netns:
            nic, _ = xu.add_veth("nic0", "wire0")
            port1, _ = xu.add_veth("port1", "port1p")
            # the port's end sends nothing of its own (router solicitations, MLD)
            subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-qw",
                            "net.ipv6.conf.port1p.disable_ipv6=1"], check=True)
            ip("link", "set", "wire0", "netns", outside)
            ip("addr", "add", "10.0.0.2/24", "dev", "wire0", netns=outside)
            ip("link", "set", "wire0", "up", netns=outside)
            ip("link", "set", "dev", "wire0", "xdp", "obj", str(pass_obj), "sec", "xdp",
               netns=outside)
            ip("link", "set", "dev", "port1p", "xdp", "obj", str(pass_obj), "sec", "xdp")
            ip("addr", "add", "10.0.0.1/24", "dev", "nic0")
            nic_mac, wire_mac = mac_of("nic0"), mac_of("wire0", outside)
            progs = XdpPrograms.load()
            progs.set_iface(nic, nic_mac)
            progs.add_local_addr(A4)
            progs.add_port(port1, 2048, 1514)
            progs.claim("udp", A4, 5000, port1)
            progs.attach("ms_xdp_rx", nic)
            progs.attach("ms_xdp_tx", port1)
            home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
            out_fd = os.open(f"/var/run/netns/{outside}", os.O_RDONLY)
            try:
                yield dict(progs=progs, nic=nic, port1=port1, home=home, out=out_fd,
                           nic_mac=nic_mac, wire_mac=wire_mac, outside=outside)
            finally:
                progs.close()
                os.close(home)
                os.close(out_fd)
    finally:
        delete_netns(outside)


def test_claimed_flow_goes_to_the_port_and_the_rest_to_the_os(live):
    port_sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    port_sniff.bind(("port1p", 0))
    os_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    os_sock.bind(("10.0.0.1", 5001))
    claimed_os_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    claimed_os_sock.bind(("10.0.0.1", 5000))
    sender = socket_in(live["out"], live["home"], socket.AF_INET, socket.SOCK_DGRAM)
    with port_sniff, os_sock, claimed_os_sock, sender:
        before = live["progs"].iface_stats()
        # unclaimed first: ARP resolves through the OS (XDP_PASS)
        sender.sendto(b"to the os", ("10.0.0.1", 5001))
        assert recv_within(os_sock, 5) == b"to the os"
        sender.sendto(b"to the port", ("10.0.0.1", 5000))
        frames = frames_within(port_sniff, 5, lambda f: f.endswith(b"to the port"))
        assert frames and frames[-1].endswith(b"to the port")
        assert frames[-1][:6] == live["nic_mac"] and frames[-1][6:12] == live["wire_mac"]
        assert recv_within(claimed_os_sock, 0.3) is None       # consumed by the port
        after = live["progs"].iface_stats()
        assert after["rx_delivered"] - before["rx_delivered"] == 1
        assert after["rx_passed"] - before["rx_passed"] >= 2   # ARP and the OS's datagram
        assert after["rx_not_ip"] - before["rx_not_ip"] >= 1   # ARP


def test_port_reaches_the_wire_only_from_its_own_tuple(live):
    receiver = socket_in(live["out"], live["home"], socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("10.0.0.2", 53))
    port_send = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    port_send.bind(("port1p", 0))
    with receiver, port_send:
        def udp(sport, payload, src_mac=live["nic_mac"]):
            return xu.frame4(17, A4, sport, "10.0.0.2", 53, payload,
                             dst_mac=live["wire_mac"], src_mac=src_mac)
        progs, port1 = live["progs"], live["port1"]
        before = progs.port_stats(port1)
        port_send.send(udp(5001, b"not mine"))
        port_send.send(udp(5000, b"bad mac", src_mac=bytes.fromhex("020000000bad")))
        port_send.send(udp(5000, b"mine"))
        assert recv_within(receiver, 5) == b"mine"
        assert recv_within(receiver, 0.3) is None
        got = xu.deltas(before, progs.port_stats(port1))
        assert got == {"tx_rej_not_owned": 1, "tx_rej_bad_mac": 1, "tx_sent": 1,
                       "tx_bytes": len(udp(5000, b"mine"))}
