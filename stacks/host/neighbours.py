"""Neighbour resolution: which Ethernet address an on-link IP address has.

Two resolvers, one per kind of backend:

* :class:`OwnNeighbours` speaks ARP and IPv6 neighbour discovery itself and
  answers requests for the host's own addresses.  For backends where the
  stack is a host of its own on the link (TAP, the in-memory pair).
* :class:`OsNeighbours` reads the operating system's neighbour table over
  netlink and asks the OS to resolve a missing entry.  For the kernel-module
  backend, where ARP and ND stay with the OS stack (docs/architecture.md).

A resolver is attached to one :class:`~stacks.host.host.Host`.  ``lookup``
answers at once from what is known; when it returns None the host queues
the packet and the resolver later calls ``host.neighbour_resolved`` or
``host.neighbour_failed``.  Resolvers are sans-IO towards the link (frames
go out through the host); ``OsNeighbours`` does talk netlink.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from stacks.wire.arp import ArpOperation, ArpRepr
from stacks.wire.ethernet import BROADCAST, EtherType, EthernetRepr, MacAddress
from stacks.wire.icmpv6 import NA_OVERRIDE, NA_SOLICITED, Icmpv6Repr, Icmpv6Type
from stacks.wire.ipv6 import Ipv6Repr

from .addressing import multicast_mac, solicited_node

if typing.TYPE_CHECKING:
    from .host import Host

IPAddress = IPv4Address | IPv6Address
ZERO_MAC = MacAddress(bytes(6))
ALL_NODES = IPv6Address("ff02::1")
ND_HOP_LIMIT = 255  # RFC 4861: ND messages must not have crossed a router


class NeighbourResolver(typing.Protocol):
    #: True when the stack owns the link: it answers ARP/ND and echo itself.
    owns_link: bool

    def attach(self, host: "Host") -> None: ...
    def lookup(self, address: IPAddress, now: float) -> MacAddress | None: ...
    def on_arp(self, arp: ArpRepr, now: float) -> None: ...
    def on_ndp(self, ip: Ipv6Repr, icmp: Icmpv6Repr, src_mac: MacAddress, now: float) -> None: ...
    def poll_at(self) -> float | None: ...
    def on_timer(self, now: float) -> None: ...


@dataclass
class _Entry:
    mac: MacAddress
    expires: float


@dataclass
class _Pending:
    tries: int
    retry_at: float


class OwnNeighbours:
    """ARP (RFC 826) and neighbour discovery (RFC 4861, the address
    resolution part) spoken by the stack itself.

    Requests are retransmitted every ``retry_interval`` seconds, ``max_tries``
    times, then resolution fails.  Entries live ``lifetime`` seconds; an
    expired entry is still used while it is being confirmed again (like
    RFC 4861's STALE state), so traffic does not stall every minute, and is
    forgotten only if the neighbour stops answering.
    """

    owns_link = True

    def __init__(self, *, lifetime: float = 60.0, retry_interval: float = 1.0, max_tries: int = 3,
                 capacity: int = 1024):
        self.lifetime = lifetime
        self.retry_interval = retry_interval
        self.max_tries = max_tries
        self.capacity = capacity
        self._host: Host | None = None
        self._cache: dict[IPAddress, _Entry] = {}
        self._pending: dict[IPAddress, _Pending] = {}

    def attach(self, host: "Host") -> None:
        self._host = host

    def entries(self) -> dict[IPAddress, MacAddress]:
        return {ip: entry.mac for ip, entry in self._cache.items()}

    def lookup(self, address: IPAddress, now: float) -> MacAddress | None:
        entry = self._cache.get(address)
        if entry is not None and entry.expires > now:
            return entry.mac
        if address not in self._pending:
            self._pending[address] = _Pending(1, now + self.retry_interval)
            self._solicit(address)
        return entry.mac if entry is not None else None

    # -- incoming -------------------------------------------------------

    def on_arp(self, arp: ArpRepr, now: float) -> None:
        host = self._host
        for_us = arp.target_ip in host.ipv4_addresses
        # RFC 826: refresh a known sender always; add it when the packet is for us.
        if arp.sender_ip.is_unspecified:  # an RFC 5227 probe: nothing to learn
            host.count("arp_probes_seen")
        elif arp.sender_ip in self._cache or arp.sender_ip in self._pending or for_us:
            self._learn(arp.sender_ip, arp.sender_mac, now)
        elif not for_us:
            host.count("arp_not_for_us")
        if for_us and arp.operation == ArpOperation.REQUEST:
            host.count("arp_replies_sent")
            reply = ArpRepr(ArpOperation.REPLY, host.mac, arp.target_ip, arp.sender_mac, arp.sender_ip)
            host.transmit_frame(EthernetRepr(arp.sender_mac, host.mac, EtherType.ARP).emit(reply.emit()))

    def on_ndp(self, ip: Ipv6Repr, icmp: Icmpv6Repr, src_mac: MacAddress, now: float) -> None:
        host = self._host
        if ip.hop_limit != ND_HOP_LIMIT:
            host.count("drop_nd_hop_limit")
            return
        if icmp.type == Icmpv6Type.NEIGHBOR_SOLICIT:
            if not ip.src.is_unspecified and icmp.source_lladdr is not None:
                self._learn(ip.src, icmp.source_lladdr, now)
            if icmp.target not in host.ipv6_addresses:
                host.count("drop_nd_not_our_target")
                return
            if ip.src.is_unspecified:  # duplicate address detection: answer all nodes
                dst, dst_mac, flags = ALL_NODES, multicast_mac(ALL_NODES), NA_OVERRIDE
            else:
                dst, dst_mac, flags = ip.src, icmp.source_lladdr or src_mac, NA_SOLICITED | NA_OVERRIDE
            advert = Icmpv6Repr.neighbor_advert(icmp.target, flags, host.mac)
            host.count("nd_adverts_sent")
            host.transmit_icmpv6(icmp.target, dst, dst_mac, advert, hop_limit=ND_HOP_LIMIT)
        elif icmp.type == Icmpv6Type.NEIGHBOR_ADVERT:
            if icmp.target_lladdr is not None and (icmp.target in self._cache
                                                  or icmp.target in self._pending):
                self._learn(icmp.target, icmp.target_lladdr, now)
            else:
                host.count("nd_adverts_ignored")  # unsolicited, or without the address

    # -- timers ---------------------------------------------------------

    def poll_at(self) -> float | None:
        return min((p.retry_at for p in self._pending.values()), default=None)

    def on_timer(self, now: float) -> None:
        for address, pending in list(self._pending.items()):
            if pending.retry_at > now:
                continue
            if pending.tries >= self.max_tries:
                del self._pending[address]
                self._cache.pop(address, None)  # a stale entry nobody confirms goes
                self._host.neighbour_failed(address, now)
            else:
                pending.tries += 1
                pending.retry_at = now + self.retry_interval
                self._solicit(address)

    # -- internals ------------------------------------------------------

    def _learn(self, address: IPAddress, mac: MacAddress, now: float) -> None:
        if mac.is_multicast or mac == ZERO_MAC:
            self._host.count("drop_neighbour_bad_mac")
            return
        if address not in self._cache and len(self._cache) >= self.capacity:
            # Bounded table: forget the entry closest to expiry.
            oldest = min(self._cache, key=lambda a: self._cache[a].expires)
            del self._cache[oldest]
        self._cache[address] = _Entry(mac, now + self.lifetime)
        self._host.count("neighbours_learned")
        if self._pending.pop(address, None) is not None:
            self._host.neighbour_resolved(address, mac, now)

    def _solicit(self, address: IPAddress) -> None:
        host = self._host
        source = host.source_address_for(address)
        if source is None:
            return  # no address of that family: the timer fails the lookup
        if address.version == 4:
            request = ArpRepr(ArpOperation.REQUEST, host.mac, source, ZERO_MAC, address)
            host.count("arp_requests_sent")
            host.transmit_frame(EthernetRepr(BROADCAST, host.mac, EtherType.ARP).emit(request.emit()))
        else:
            group = solicited_node(address)
            solicit = Icmpv6Repr.neighbor_solicit(address, host.mac)
            host.count("nd_solicits_sent")
            host.transmit_icmpv6(source, group, multicast_mac(group), solicit,
                                 hop_limit=ND_HOP_LIMIT)


# Neighbour states (linux/neighbour.h) in which the entry's address can be used.
_NUD_INCOMPLETE = 0x01
_NUD_STALE = 0x04
_NUD_FAILED = 0x20
_NUD_USABLE = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80  # reachable stale delay probe noarp permanent


class OsNeighbours:
    """The operating system's neighbour table, read over netlink (pyroute2).

    A miss asks the kernel to resolve the address (an ``NTF_USE`` update,
    which makes it send ARP/NS as if it had a packet to send), then the
    table is polled every ``poll_interval`` seconds until the entry is
    usable or ``timeout`` seconds pass.  Answers are cached ``refresh``
    seconds.  ``netns`` reads another namespace's table (for tests).
    """

    owns_link = False

    def __init__(self, ifname: str, *, netns: str | None = None, refresh: float = 5.0,
                 poll_interval: float = 0.01, timeout: float = 3.0):
        from pyroute2 import IPRoute, NetNS

        self.ifname = ifname
        self.refresh = refresh
        self.poll_interval = poll_interval
        self.timeout = timeout
        self._ipr = NetNS(netns) if netns else IPRoute()
        indexes = self._ipr.link_lookup(ifname=ifname)
        if not indexes:
            self._ipr.close()
            raise LookupError(f"no interface {ifname!r}" + (f" in namespace {netns}" if netns else ""))
        self.ifindex = indexes[0]
        self._host: Host | None = None
        self._cache: dict[IPAddress, _Entry] = {}
        self._pending: dict[IPAddress, tuple[float, float]] = {}  # address -> (give up at, poll at)

    def attach(self, host: "Host") -> None:
        self._host = host

    def close(self) -> None:
        self._ipr.close()

    def lookup(self, address: IPAddress, now: float) -> MacAddress | None:
        entry = self._cache.get(address)
        if entry is not None and entry.expires > now:
            return entry.mac
        if address in self._pending:
            return None
        mac, state = self._read(address)
        if mac is not None:
            if state & _NUD_STALE:
                # Our packets bypass the OS's own use of the entry, so it would
                # stay stale and be collected: ask the OS to confirm it.
                self.trigger(address)
            self._cache[address] = _Entry(mac, now + self.refresh)
            return mac
        self.trigger(address)
        self._pending[address] = (now + self.timeout, now + self.poll_interval)
        return None

    def read(self, address: IPAddress) -> MacAddress | None:
        """The OS's usable entry for ``address`` on this interface, or None."""
        return self._read(address)[0]

    def _read(self, address: IPAddress) -> tuple[MacAddress | None, int]:
        family = 2 if address.version == 4 else 10
        for message in self._ipr.get_neighbours(family=family, ifindex=self.ifindex, dst=str(address)):
            lladdr = message.get_attr("NDA_LLADDR")
            if lladdr and message["state"] & _NUD_USABLE:
                return MacAddress(lladdr), message["state"]
        return None, 0

    def trigger(self, address: IPAddress) -> None:
        """Ask the OS to resolve ``address`` (it sends ARP or NS itself)."""
        from pyroute2.netlink.rtnl.ndmsg import NTF_USE

        family = 2 if address.version == 4 else 10
        try:
            self._ipr.neigh("replace", dst=str(address), ifindex=self.ifindex, flags=NTF_USE,
                            family=family)
        except Exception:  # the kernel refuses (a non-ARP device, say): time out later
            if self._host is not None:
                self._host.count("neighbour_trigger_failed")

    def on_arp(self, arp: ArpRepr, now: float) -> None:
        self._host.count("drop_arp_os_owned")

    def on_ndp(self, ip: Ipv6Repr, icmp: Icmpv6Repr, src_mac: MacAddress, now: float) -> None:
        self._host.count("drop_nd_os_owned")

    def poll_at(self) -> float | None:
        return min((poll for _, poll in self._pending.values()), default=None)

    def on_timer(self, now: float) -> None:
        for address, (give_up, poll) in list(self._pending.items()):
            if poll > now:
                continue
            mac = self.read(address)
            if mac is not None:
                del self._pending[address]
                self._cache[address] = _Entry(mac, now + self.refresh)
                self._host.neighbour_resolved(address, mac, now)
            elif now >= give_up:
                del self._pending[address]
                self._host.neighbour_failed(address, now)
            else:
                self._pending[address] = (give_up, now + self.poll_interval)
