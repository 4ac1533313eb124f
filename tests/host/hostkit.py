"""Shared helpers for host tests: a hand-driven Host on a memory port, frame builders."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address

from multistack.memport import memory_pair
from stacks.host import Host, OwnNeighbours
from stacks.wire.arp import ArpOperation, ArpRepr
from stacks.wire.ethernet import BROADCAST, EtherType, EthernetRepr, MacAddress
from stacks.wire.frame import build_frame, parse_frame
from stacks.wire.icmpv4 import Icmpv4Repr
from stacks.wire.icmpv6 import Icmpv6Repr
from stacks.wire.ipv4 import Ipv4Repr
from stacks.wire.ipv6 import Ipv6Repr
from stacks.wire.udp import UdpRepr

HOST_MAC = MacAddress("02:00:00:00:00:01")
PEER_MAC = MacAddress("02:00:00:00:00:02")
HOST_V4, PEER_V4 = IPv4Address("10.1.0.1"), IPv4Address("10.1.0.2")
HOST_V6, PEER_V6 = IPv6Address("fd00:1::1"), IPv6Address("fd00:1::2")


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class RecordingHandler:
    """A transport that records what the host hands it (the test's own client)."""

    packets: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    deadline: float | None = None
    timer_calls: list = field(default_factory=list)
    batch_ends: list = field(default_factory=list)

    def on_packet(self, src, dst, payload, now):
        self.packets.append((src, dst, bytes(payload), now))

    def on_batch_end(self, now):
        self.batch_ends.append((len(self.packets), now))

    def on_icmp_error(self, error, now):
        self.errors.append(error)

    def poll_at(self):
        return self.deadline

    def on_timer(self, now):
        self.timer_calls.append(now)
        self.deadline = None


def make_host(**kwargs):
    """A Host on one end of a memory pair, driven by hand with a fake clock."""
    clock = FakeClock()
    port, other = memory_pair(macs=(bytes(HOST_MAC), bytes(PEER_MAC)), clock=clock)
    kwargs.setdefault("neighbours", OwnNeighbours())
    host = Host(port, kwargs.pop("addresses", ["10.1.0.1/24", "fd00:1::1/64"]), clock=clock, **kwargs)
    return host, clock


def arp(op, sender_mac, sender_ip, target_mac, target_ip, eth_dst=BROADCAST) -> bytes:
    return build_frame(EthernetRepr(eth_dst, sender_mac, EtherType.ARP),
                       ArpRepr(op, sender_mac, ip_address(sender_ip), target_mac, ip_address(target_ip)))


def ipv4(src, dst, transport, *, eth_dst=HOST_MAC, **ip_fields) -> bytes:
    proto = {UdpRepr: 17, Icmpv4Repr: 1}[type(transport)]
    return build_frame(EthernetRepr(eth_dst, PEER_MAC, EtherType.IPV4),
                       Ipv4Repr(ip_address(src), ip_address(dst), proto, **ip_fields), transport)


def ipv6(src, dst, transport, *, eth_dst=HOST_MAC, **ip_fields) -> bytes:
    proto = {UdpRepr: 17, Icmpv6Repr: 58}[type(transport)]
    return build_frame(EthernetRepr(eth_dst, PEER_MAC, EtherType.IPV6),
                       Ipv6Repr(ip_address(src), ip_address(dst), proto, **ip_fields), transport)


def raw_ipv4(src, dst, proto, payload: bytes, **ip_fields) -> bytes:
    return build_frame(EthernetRepr(HOST_MAC, PEER_MAC, EtherType.IPV4),
                       Ipv4Repr(ip_address(src), ip_address(dst), proto, **ip_fields), payload=payload)


def output(host) -> list:
    """The frames the host queued, parsed."""
    return [parse_frame(f) for f in host.take_output()]


ArpOp = ArpOperation


def trio_test(fn):
    """Run an async test function under trio (no pytest plugin needed)."""
    import functools

    import trio

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return trio.run(functools.partial(fn, *args, **kwargs))

    return wrapper


def tap_host(kernel_addresses, stack_addresses, prefix="mshost"):
    """An async context manager: a fresh namespace with a TAP's kernel side
    in it, and a running user-level Host on the TAP.  Yields (ns, port, host)."""
    from contextlib import asynccontextmanager

    import trio

    from multistack.tap import create_netns, delete_netns, open_tap_in_netns, unique_netns_name

    @asynccontextmanager
    async def context():
        ns = unique_netns_name(prefix)
        create_netns(ns)
        port = None
        try:
            port = open_tap_in_netns(ns, kernel_addresses)
            host = Host(port, stack_addresses, neighbours=OwnNeighbours())
            async with trio.open_nursery() as nursery:
                nursery.start_soon(host.run)
                yield ns, port, host
                nursery.cancel_scope.cancel()
        finally:
            if port is not None:
                port.close()
            delete_netns(ns)

    return context()
