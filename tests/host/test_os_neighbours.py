"""OsNeighbours: the OS's neighbour table, read and triggered over netlink.

Two namespaces joined by a veth pair stand in for the kernel-module setup:
the resolver reads namespace A's table for its veth and makes A's kernel
resolve B's addresses.  A Host on a memory port receives the callbacks, so
the frames it releases show the MAC the OS found.
"""

import json
import subprocess
import time

import pytest

from multistack.memport import memory_pair
from multistack.tap import create_netns, delete_netns, ip, unique_netns_name
from stacks.host import Host, OsNeighbours
from stacks.wire.ethernet import MacAddress
from stacks.wire.udp import UdpRepr

from hostkit import FakeClock, RecordingHandler

pytestmark = pytest.mark.netns


@pytest.fixture
def veth_pair():
    a, b = unique_netns_name("msnbA"), unique_netns_name("msnbB")
    try:
        create_netns(a)
        create_netns(b)
        ip("link", "add", "vA", "type", "veth", "peer", "name", "vB", "netns", b, netns=a)
        ip("addr", "add", "10.41.0.1/24", "dev", "vA", netns=a)
        ip("addr", "add", "fd00:41::1/64", "dev", "vA", "nodad", netns=a)
        ip("addr", "add", "10.41.0.2/24", "dev", "vB", netns=b)
        ip("addr", "add", "fd00:41::2/64", "dev", "vB", "nodad", netns=b)
        ip("link", "set", "vA", "up", netns=a)
        ip("link", "set", "vB", "up", netns=b)
        mac_b = json.loads(ip("-j", "link", "show", "vB", netns=b))[0]["address"]
        yield a, MacAddress(mac_b)
    finally:
        delete_netns(a)
        delete_netns(b)


def make_host(netns, timeout=3.0):
    clock = FakeClock()
    port, _ = memory_pair(clock=clock)
    resolver = OsNeighbours("vA", netns=netns, timeout=timeout, poll_interval=0.01)
    host = Host(port, ["10.41.0.1/24", "fd00:41::1/64"], neighbours=resolver, clock=clock)
    return host, clock, resolver


def wait_for_resolution(host, clock, rounds=300):
    for _ in range(rounds):
        deadline = host.poll_at()
        if deadline is None:
            return
        time.sleep(0.01)  # the OS resolves in real time
        clock.now = max(clock.now, deadline)
        host.run_timers(clock.now)


@pytest.mark.parametrize("src, dst", [("10.41.0.1", "10.41.0.2"), ("fd00:41::1", "fd00:41::2")])
def test_missing_entry_is_resolved_by_the_os(veth_pair, src, dst):
    netns, mac_b = veth_pair
    host, clock, resolver = make_host(netns)
    try:
        from ipaddress import ip_address

        src, dst = ip_address(src), ip_address(dst)
        assert resolver.read(dst) is None
        host.send_ip(src, dst, 17, UdpRepr(1, 2, b"via the OS table").emit(src, dst))
        assert host.take_output() == []  # waiting; the OS was asked to resolve
        wait_for_resolution(host, clock)
        (frame,) = host.take_output()
        assert frame[:6] == mac_b
        assert resolver.read(dst) == mac_b
        # Known now: answered at once from the cache.
        assert resolver.lookup(dst, clock.now) == mac_b
        # The resolver never answers ARP/ND itself: the OS does.
        assert not host.answer_echo
    finally:
        resolver.close()


def test_unreachable_neighbour_fails_after_the_timeout(veth_pair):
    netns, _ = veth_pair
    host, clock, resolver = make_host(netns, timeout=0.5)
    handler = RecordingHandler()
    host.attach(17, handler)
    try:
        from ipaddress import ip_address

        src, dst = ip_address("10.41.0.1"), ip_address("10.41.0.99")
        host.send_ip(src, dst, 17, UdpRepr(1, 2, b"nobody").emit(src, dst))
        wait_for_resolution(host, clock)
        assert host.take_output() == []
        assert host.drops()["neighbour_unresolved"] == 1
        assert handler.errors[0].dst == dst
    finally:
        resolver.close()


def test_unknown_interface_is_a_clear_error(veth_pair):
    netns, _ = veth_pair
    with pytest.raises(LookupError, match="no interface 'nope'"):
        OsNeighbours("nope", netns=netns)


def test_a_stale_os_entry_is_used_and_sent_for_confirmation(veth_pair):
    from ipaddress import ip_address

    netns, mac_b = veth_pair
    dst = ip_address("10.41.0.2")
    # The OS waits delay_first_probe_time (5 s by default) in DELAY before it
    # probes: shorten it, and wait well past it, so the test is not a race.
    subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w",
                    "net.ipv4.neigh.vA.delay_first_probe_time=1"], check=True)
    ip("neigh", "replace", str(dst), "lladdr", str(mac_b), "dev", "vA", "nud", "stale", netns=netns)
    host, clock, resolver = make_host(netns)
    try:
        assert resolver.lookup(dst, clock.now) == mac_b  # usable at once
        # The OS was asked to confirm it: it probes and the entry becomes reachable.
        states = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            entry = json.loads(ip("-j", "neigh", "show", str(dst), "dev", "vA", netns=netns))[0]
            states.append(entry["state"])
            if "REACHABLE" in entry["state"]:
                break
            time.sleep(0.05)
        assert "REACHABLE" in states[-1], states[-5:]
    finally:
        resolver.close()
