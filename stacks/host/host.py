"""The IP host layer: one Host per port, transports attached by protocol number.

A Host turns Ethernet frames from a :class:`~multistack.port.Port` into IP
packets for its transports (UDP, UTCP) and back.  It checks every frame
(malformed, not for our MAC, not for our address, fragment, no handler...:
each a counted drop), resolves next hops through a
:class:`~stacks.host.neighbours.NeighbourResolver`, hands ICMP errors to
the transport whose packet caused them, and keeps a path-MTU table fed by
the "fragmentation needed" / "packet too big" errors that transport
believes (TCP checks the quoted sequence number first, as Linux does).
When it owns the link (TAP, memory pair) it answers echo requests; over
the kernel module the OS does.

The core (``handle_frame``, ``run_timers``, ``poll_at``, ``flush``) takes
the time as an argument and can be driven by hand in tests; :meth:`run` is
the trio runtime on top: one task per port that waits on the port's
descriptor or the next deadline, drains RX in batches, dispatches, runs
timers, and flushes TX with one ``sync`` per batch.  What application tasks
send (a transport's output after a send or close) is sent late in their
scheduling round by the runtime's helper task (:meth:`defer`), in one
batch for all the tasks that ran in that round, without waking the runtime.

Received IP fragments are reassembled (bounded, see
:mod:`stacks.host.reassembly`); UDP datagrams over the path MTU are sent
in fragments where the host owns the link.  Not done (counted drops or
errors instead): VLAN-tagged
frames, broadcast/multicast IP for transports; IPv4 options are accepted
but ignored.
"""

from __future__ import annotations

import enum
import math
import struct
import time
import typing
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface, ip_address, ip_interface

from multistack.errors import MultiStackError
from multistack.port import Port
from stacks.wire.arp import ArpRepr
from stacks.wire.checksum import checksum
from stacks.wire.errors import MalformedPacket
from stacks.wire.ethernet import EtherType, EthernetRepr, MacAddress
from stacks.wire.icmpv4 import DestUnreachable, Icmpv4Repr, Icmpv4Type
from stacks.wire.icmpv6 import Icmpv6Repr, Icmpv6Type
from stacks.wire.ipv4 import Ipv4Repr
from stacks.wire.ipv6 import Ipv6ExtensionHeader, Ipv6Repr

from .addressing import multicast_mac, solicited_node
from .neighbours import NeighbourResolver
from .reassembly import Reassembler

IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface

ICMPV4 = 1
ICMPV6 = 58
ETHERNET_HEADER = 14
IPV4_HEADER = 20
IPV6_HEADER = 40
MIN_PMTU_V4 = 552  # Linux's min_pmtu: smaller "fragmentation needed" MTUs are not believed
MIN_PMTU_V6 = 1280  # RFC 8200: every IPv6 link carries 1280
PMTU_LIFETIME = 600.0  # RFC 1191 / RFC 8201: forget a learned PMTU after 10 minutes
ALL_NODES = IPv6Address("ff02::1")
_IPV4_HEADER = struct.Struct("!BBHHHBBHII")   # addresses as integers
_IPV6_HEADER = struct.Struct("!IHBB16s16s")
_ETHERTYPE_IPV4 = b"\x08\x00"
_ETHERTYPE_IPV6 = b"\x86\xdd"
_DF = 0x4000


class PacketTooBig(ValueError):
    """A packet does not fit the path MTU (the host does not fragment)."""

    def __init__(self, size: int, mtu: int):
        super().__init__(f"IP packet of {size} bytes exceeds the path MTU of {mtu}")
        self.size = size
        self.mtu = mtu


class NoRoute(ValueError):
    """No on-link network and no gateway for a destination."""


class IcmpErrorKind(enum.Enum):
    UNREACHABLE = "unreachable"  # destination / host / protocol / port unreachable
    FRAG_NEEDED = "frag-needed"  # ICMPv4 3/4: the path MTU shrank
    PACKET_TOO_BIG = "packet-too-big"  # ICMPv6 2: the path MTU shrank
    TIME_EXCEEDED = "time-exceeded"
    PARAMETER_PROBLEM = "parameter-problem"


@dataclass(frozen=True)
class IcmpError:
    """An ICMP/ICMPv6 error about a packet this host sent.

    ``src``/``dst``/``proto``/``src_port``/``dst_port`` come from the quoted
    (original) packet, so ``src``/``src_port`` are ours.  ``mtu`` is the path
    MTU the error reports for ``dst``, bounded by the protocol's minimum and
    the path MTU now in force (frag-needed and packet-too-big only).  The
    host does not apply it: a transport that trusts the error (TCP checks
    the quoted sequence number, RFC 5927) calls :meth:`Host.learn_path_mtu`.
    ``reporter`` sent the error (ourselves for a neighbour that never
    answered).  ``quoted_payload`` is the start of the original transport
    header (at least 8 bytes for a well-behaved reporter: TCP's sequence
    number for RFC 5927 checks).
    """

    kind: IcmpErrorKind
    icmp_type: int
    icmp_code: int
    reporter: IPAddress
    src: IPAddress
    dst: IPAddress
    proto: int
    src_port: int | None
    dst_port: int | None
    mtu: int | None = None
    quoted_payload: bytes = b""

    @property
    def is_hard(self) -> bool:
        """Port/protocol unreachable (RFC 1122 4.2.3.9): the peer says no."""
        if self.kind is not IcmpErrorKind.UNREACHABLE:
            return False
        if self.src.version == 4:
            return self.icmp_code in (DestUnreachable.PROTOCOL, DestUnreachable.PORT)
        return self.icmp_code == 4  # ICMPv6 port unreachable


class ProtocolHandler(typing.Protocol):
    """A transport (UDP, UTCP) attached to a Host; sans-IO apart from host.send_ip.

    ``payload`` views point into the port's receive buffers and are only
    valid during the call: copy what is kept.
    """

    def on_packet(self, src: IPAddress, dst: IPAddress, payload: memoryview, now: float) -> None: ...
    def on_batch_end(self, now: float) -> None:
        """The packets of one receive batch are all in: answer them now (one ACK
        for several segments of a connection, one wakeup for several arrivals)."""
    def on_icmp_error(self, error: IcmpError, now: float) -> None: ...
    def poll_at(self) -> float | None: ...
    def on_timer(self, now: float) -> None: ...


def _default_clock() -> float:
    import trio

    return trio.current_time()


class Host:
    """An IP host on one port.  See the module docstring."""

    # Fixed attributes: more than CPython keeps inline in an instance, and slots
    # make the per-frame field accesses cheaper.
    __slots__ = (
        "answer_echo", "control_socket", "counters", "gateways", "icmp_rate", "interfaces",
        "ipv4_addresses", "ipv6_addresses", "mac", "neighbour_queue", "neighbours",
        "owns_link", "port", "reassembler", "runtime_cpu", "rx_batch", "tx_backlog",
        "_addresses", "_batch", "_clock", "_deferred", "_deferred_error", "_deferred_parked",
        "_deferred_task", "_handlers", "_holding", "_icmp_refill_at", "_icmp_tokens",
        "_ident", "_ident6", "_in_runtime", "_ipv6_groups", "_on_link",
        "_ours_by_packed", "_pmtu", "_remote_by_packed", "_reschedule", "_running",
        "_tx", "_wait_scope", "_waiting", "_woken"
    )

    def __init__(self, port: Port, addresses: Sequence[IPInterface | str], *,
                 neighbours: NeighbourResolver,
                 gateway: IPAddress | str | Iterable[IPAddress | str] | None = None,
                 answer_echo: bool | None = None, clock: typing.Callable[[], float] | None = None,
                 rx_batch: int = 256, neighbour_queue: int = 64, tx_backlog: int = 4096,
                 icmp_rate: int = 100, control_socket: bool = False):
        self.port = port
        #: Whether :meth:`run` reports this host's connections and counters on the
        #: process's control socket, for ``multistack-ctl ss`` (stacks.host.control).
        self.control_socket = control_socket
        self.mac = MacAddress(bytes(port.mac))
        self.interfaces: list[IPInterface] = [ip_interface(a) for a in addresses]
        if not self.interfaces:
            raise ValueError("a Host needs at least one address")
        self.ipv4_addresses = frozenset(i.ip for i in self.interfaces if i.version == 4)
        self.ipv6_addresses = frozenset(i.ip for i in self.interfaces if i.version == 6)
        # Hot-path tables: our addresses by their wire bytes, on-link networks as integers.
        self._addresses = self.ipv4_addresses | self.ipv6_addresses
        self._ours_by_packed = {a.packed: a for a in self._addresses}
        self._on_link = [(i.version, int(i.network.network_address), int(i.network.netmask))
                         for i in self.interfaces]
        self._remote_by_packed: dict[bytes, IPAddress] = {}
        self._ipv6_groups = {ALL_NODES} | {solicited_node(a) for a in self.ipv6_addresses}
        self.gateways: dict[int, IPAddress] = {}
        if gateway is not None:
            for g in [gateway] if isinstance(gateway, (str, IPv4Address, IPv6Address)) else gateway:
                g = ip_address(g)
                if not any(g in i.network for i in self.interfaces if i.version == g.version):
                    raise ValueError(f"gateway {g} is not on any of the host's networks")
                self.gateways[g.version] = g
        self.neighbours = neighbours
        self.answer_echo = neighbours.owns_link if answer_echo is None else answer_echo
        #: Whether this host answers for its addresses on the link (unreachables too).
        self.owns_link = neighbours.owns_link
        self.icmp_rate = icmp_rate
        self._icmp_tokens = float(icmp_rate)
        self._icmp_refill_at: float | None = None
        self.rx_batch = rx_batch
        self.neighbour_queue = neighbour_queue
        self.tx_backlog = tx_backlog
        self._clock = clock or _default_clock
        #: Counters: frames/packets in and out, and every drop as ``drop_<reason>``.
        self.counters: Counter[str] = Counter()
        #: CPU seconds (this thread's) the host's own work took: each :meth:`step`
        #: (receiving, dispatching, timers, sending), the next deadline before the
        #: runtime sleeps, and the deferred output of application tasks.  None,
        #: the default, measures nothing; set 0.0 to start (two clock reads, under
        #: 1 µs each, per step and per deferred run).  What remains of the
        #: process's CPU is the applications' and the scheduler's.
        self.runtime_cpu: float | None = None
        self.reassembler = Reassembler(counters=self.counters)
        self._handlers: dict[int, ProtocolHandler] = {}
        self._batch: dict[int, None] = {}   # protocols that got packets in this batch
        self._tx: list[bytes] = []
        # Packets (ethertype, ip packet, src, dst, proto, transport offset) waiting
        # for their next hop's MAC.
        self._waiting: dict[IPAddress, deque[tuple]] = {}
        self._pmtu: dict[IPAddress, tuple[int, float]] = {}
        self._ident = 0
        self._ident6 = 0
        self._in_runtime = False
        self._running = False
        self._holding = False
        self._woken = False
        self._wait_scope = None
        # Work deferred to the end of the scheduling round, and the runtime's
        # helper task that does it (parked while there is none).
        self._deferred: dict[typing.Callable[[float], None], None] = {}
        self._deferred_task = None
        self._deferred_parked = False
        self._deferred_error: Exception | None = None
        self._reschedule = None
        neighbours.attach(self)
        if hasattr(port, "on_in_flight"):
            # A memory port with delay: frames in flight do not make its
            # descriptor readable, so the runtime must re-read its deadline.
            port.on_in_flight = self.wakeup

    # -- API for transports ---------------------------------------------

    def attach(self, proto: int, handler: ProtocolHandler) -> None:
        if proto in (ICMPV4, ICMPV6):
            raise ValueError("ICMP is handled by the host itself")
        if not 0 <= proto < 256:
            raise ValueError(f"IP protocol {proto} out of range")
        if proto in self._handlers:
            raise ValueError(f"protocol {proto} already has a handler")
        self._handlers[proto] = handler

    def handler(self, proto: int) -> ProtocolHandler | None:
        return self._handlers.get(proto)

    def send_ip(self, src: IPAddress, dst: IPAddress, proto: int, payload: bytes, *,
                fragment: bool = False, now: float | None = None) -> None:
        """Queue one IP packet from ``src`` (one of ours) to ``dst``.

        A packet over the path MTU raises PacketTooBig, unless ``fragment``
        (UDP asks for it) and the host owns the link: then it goes out in
        fragments.  Over the kernel module the OS owns fragmentation and the
        module refuses fragments.  Also raises NoRoute or ValueError (not our
        address, mixed families); otherwise the packet is sent or counted as
        dropped.  ``now`` spares a clock read to a caller that has the time.
        """
        # ``_version`` is what ipaddress's ``version`` property returns, without the call.
        if src not in self._addresses:
            raise ValueError(f"{src} is not an address of this host")
        version = src._version
        if version != dst._version:
            raise ValueError(f"cannot send from {src} to {dst}: different IP versions")
        if dst in self._addresses:
            raise NoRoute(f"{dst} is this host's own address (no loopback here)")
        size = (IPV4_HEADER if version == 4 else IPV6_HEADER) + len(payload)
        mtu = self.path_mtu(dst)
        if now is None:
            now = self._clock()
        if size > mtu:
            # IPv4 counts its header in the 16-bit total; IPv6 its fragment header.
            limit = 65535 - (IPV4_HEADER if version == 4 else 8)
            if not (fragment and self.owns_link) or len(payload) > limit:
                raise PacketTooBig(size, mtu)
            self._send_fragments(src, dst, proto, payload, mtu, now)
            return
        self._send_packet(src, dst, proto, payload, now)

    def path_mtu(self, dst: IPAddress) -> int:
        """The largest IP packet (header included) that reaches ``dst`` unfragmented."""
        learned = self._pmtu.get(dst) if self._pmtu else None
        if learned is not None:
            if learned[1] > self._clock():
                return min(learned[0], self.port.mtu)
            del self._pmtu[dst]  # RFC 8201 5.3: try the link MTU again after a while
        return self.port.mtu

    def hold_output(self) -> None:
        """Keep output queued until :meth:`release_output` (work done outside the
        runtime: :meth:`defer` runs its callbacks between the two).

        The runtime then need not be woken for each frame: the release hands
        them to the port in one batch.
        """
        self._holding = True

    def release_output(self) -> None:
        """End :meth:`hold_output`: the frames queued meanwhile go to the port now
        if the runtime is running (else they stay queued for it or ``take_output``)."""
        self._holding = False
        if self._tx and self._running and not self._in_runtime:
            try:
                self.flush()
            except (MultiStackError, OSError):
                pass  # a port error is the runtime's to meet (below), not the caller's
        if self._tx:
            self._kick()

    def defer(self, callback: typing.Callable[[float], None]) -> None:
        """Call ``callback(now)`` once, late in this scheduling round, with output held.

        For work that application tasks trigger (a transport's output after a
        send or close): calls from every task that runs in this round share
        one callback, and the frames it queues go to the port in one batch.
        With the runtime running the callback runs in its helper task; without
        one it runs at once.
        """
        self._deferred[callback] = None
        if self._deferred_parked:
            self._deferred_parked = False
            self._reschedule(self._deferred_task)
        elif self._deferred_task is None:
            self._run_deferred(self._clock())

    def _run_deferred(self, now: float) -> None:
        started = None if self.runtime_cpu is None else time.thread_time()
        callbacks = list(self._deferred)
        self._deferred.clear()
        self.hold_output()
        try:
            for callback in callbacks:
                callback(now)
        finally:
            self.release_output()
            if started is not None:
                self._add_runtime_cpu(started)

    def _add_runtime_cpu(self, started: float) -> None:
        if self.runtime_cpu is not None:     # unless measuring was switched off meanwhile
            self.runtime_cpu += time.thread_time() - started

    async def _serve_deferred(self, scope) -> None:
        import trio

        with scope:
            if scope.cancel_called:
                return                  # the runtime ended before this task started
            self._deferred_task = trio.lowlevel.current_task()
            self._reschedule = trio.lowlevel.reschedule

            def abort(_raise_cancel):
                self._deferred_parked = False
                self._deferred_task = None
                return trio.lowlevel.Abort.SUCCEEDED

            while True:
                if self._deferred:
                    try:
                        self._run_deferred(self._clock())
                    except Exception as exc:
                        # The runtime's error to raise, as if it had made the call.
                        self._deferred_error = exc
                        self._deferred_task = None
                        self.wakeup()
                        return
                self._deferred_parked = True
                await trio.lowlevel.wait_task_rescheduled(abort)

    def wakeup(self, at: float | None = None) -> None:
        """Make the runtime flush output and re-read deadlines: soon, or by ``at``
        (a new deadline earlier than the one it sleeps until)."""
        scope = self._wait_scope
        if at is not None and scope is not None:
            if at < scope.deadline:
                scope.deadline = at     # no wakeup now: the runtime's wait ends sooner
            return
        self._woken = True
        if scope is not None:
            scope.cancel()

    def reject(self, src: IPAddress, dst: IPAddress, proto: int, payload: memoryview | bytes,
               now: float) -> None:
        """A transport found no taker for a packet (``src`` is the remote end):
        answer "port unreachable" as a host on the link would.  Over a shared
        NIC the OS stack owns that answer, so nothing is sent.  Rate-limited
        (RFC 1812 4.3.2.8) to ``icmp_rate`` a second."""
        self._send_unreachable(src, dst, proto, payload, 3 if src.version == 4 else 4, now)

    def source_address_for(self, dst: IPAddress) -> IPAddress | None:
        """Our address on ``dst``'s network, else our first of its family."""
        same_family = [i for i in self.interfaces if i.version == dst.version]
        for interface in same_family:
            if dst in interface.network:
                return interface.ip
        return same_family[0].ip if same_family else None

    def next_hop(self, dst: IPAddress) -> IPAddress:
        version, value = dst._version, dst._ip     # version and int(dst), without calls
        for net_version, network, mask in self._on_link:
            if net_version == version and value & mask == network:
                return dst
        if dst.version == 6 and dst.is_link_local:
            return dst
        gateway = self.gateways.get(dst.version)
        if gateway is None:
            raise NoRoute(f"no route to {dst}: not on-link and no IPv{dst.version} gateway")
        return gateway

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] += n

    def drops(self) -> dict[str, int]:
        return {k[5:]: v for k, v in self.counters.items() if k.startswith("drop_")}

    # -- API for neighbour resolvers ------------------------------------

    def transmit_frame(self, frame: bytes) -> None:
        self._queue_tx(frame)

    def transmit_icmpv6(self, src: IPv6Address, dst: IPv6Address, dst_mac: MacAddress,
                        icmp: Icmpv6Repr, *, hop_limit: int = 64) -> None:
        packet = Ipv6Repr(src, dst, ICMPV6, hop_limit=hop_limit).emit(icmp.emit(src, dst))
        self._queue_tx(EthernetRepr(dst_mac, self.mac, EtherType.IPV6).emit(packet))

    def neighbour_resolved(self, address: IPAddress, mac: MacAddress, now: float) -> None:
        for ethertype, packet, *_ in self._waiting.pop(address, ()):
            self._queue_tx(EthernetRepr(mac, self.mac, ethertype).emit(packet))

    def neighbour_failed(self, address: IPAddress, now: float) -> None:
        waiting = self._waiting.pop(address, ())
        self.count("drop_neighbour_unresolved", len(waiting))
        # Tell the transports, as a host-unreachable from ourselves (as Linux does).
        for _, packet, src, dst, proto, header in waiting:
            if header is None:
                continue  # a later fragment: the first one speaks for the datagram
            self._dispatch_error(IcmpError(
                IcmpErrorKind.UNREACHABLE, 3 if src.version == 4 else 1,
                DestUnreachable.HOST if src.version == 4 else 3, src, src, dst, proto,
                *_ports(proto, packet[header:]), quoted_payload=packet[header:header + 8]), now)

    # -- core: receive --------------------------------------------------

    def handle_frame(self, frame: memoryview | bytes, now: float) -> None:
        """Process one received Ethernet frame (a batch of one)."""
        self._receive(frame, now)
        self._end_batch(now)

    def handle_frames(self, frames: Iterable[memoryview | bytes], now: float) -> None:
        """Process a batch of received frames; the transports answer once, at its end."""
        receive = self._receive
        for frame in frames:
            receive(frame, now)
        self._end_batch(now)

    def _end_batch(self, now: float) -> None:
        if self._batch:
            protocols = list(self._batch)
            self._batch.clear()
            for proto in protocols:
                handler = self._handlers.get(proto)
                if handler is not None:
                    handler.on_batch_end(now)

    def _receive(self, frame: memoryview | bytes, now: float) -> None:
        self.counters["rx_frames"] += 1
        if len(frame) >= 34 and frame[14] == 0x45 and frame[12] == 0x08 and frame[13] == 0:
            if self._fast_ipv4(frame, now):
                return
        elif len(frame) >= 54 and frame[12] == 0x86 and frame[13] == 0xDD and frame[20] in (6, 17):
            if self._fast_ipv6(frame, now):
                return
        self._handle_frame_slowly(frame, now)

    # The fast paths take the common case (unicast to us, no IPv4 options, no
    # IPv6 extension headers, not a fragment, TCP/UDP) with a few byte reads
    # and no objects but the addresses; they return False for anything else,
    # which the full parse below then accepts or drops with its reason.

    def _fast_ipv4(self, frame, now: float) -> bool:
        if frame[0:6] != self.mac:
            return False
        total = frame[16] << 8 | frame[17]
        if total < 20 or total > len(frame) - 14 or frame[20] & 0x3F or frame[21] \
                or frame[23] == ICMPV4 or checksum(frame[14:34]) != 0:
            return False
        dst = self._ours_by_packed.get(bytes(frame[30:34]))
        if dst is None:
            return False
        self._deliver(self._remote(bytes(frame[26:30])), dst, frame[23], frame[34:14 + total], now)
        return True

    def _fast_ipv6(self, frame, now: float) -> bool:
        if frame[0:6] != self.mac or frame[14] >> 4 != 6:
            return False
        end = 54 + (frame[18] << 8 | frame[19])
        if end > len(frame):
            return False
        dst = self._ours_by_packed.get(bytes(frame[38:54]))
        if dst is None:
            return False
        self._deliver(self._remote(bytes(frame[22:38])), dst, frame[20], frame[54:end], now)
        return True

    def _remote(self, packed: bytes) -> IPAddress:
        # Peers repeat: reuse their address objects rather than build one per packet.
        address = self._remote_by_packed.get(packed)
        if address is None:
            if len(self._remote_by_packed) >= 4096:
                self._remote_by_packed.clear()
            address = IPv4Address(packed) if len(packed) == 4 else IPv6Address(packed)
            self._remote_by_packed[packed] = address
        return address

    def _handle_frame_slowly(self, frame: memoryview | bytes, now: float) -> None:
        try:
            eth, rest = EthernetRepr.parse_with_payload(frame)
        except MalformedPacket:
            self.counters["drop_bad_ethernet"] += 1
            return
        if eth.vlan is not None:
            self.counters["drop_vlan_tagged"] += 1
            return
        if eth.dst != self.mac and not eth.dst.is_multicast:
            self.counters["drop_not_our_mac"] += 1
            return
        ethertype = eth.ethertype
        if ethertype == EtherType.IPV4:
            self._handle_ipv4(rest, now)
        elif ethertype == EtherType.IPV6:
            self._handle_ipv6(eth, rest, now)
        elif ethertype == EtherType.ARP:
            try:
                arp = ArpRepr.parse(rest)
            except MalformedPacket:
                self.counters["drop_bad_arp"] += 1
                return
            self.neighbours.on_arp(arp, now)
        else:
            self.counters["drop_unknown_ethertype"] += 1

    def _handle_ipv4(self, data: memoryview, now: float) -> None:
        try:
            ip, payload = Ipv4Repr.parse_with_payload(data)
        except MalformedPacket:
            self.counters["drop_bad_ipv4"] += 1
            return
        if ip.dst not in self.ipv4_addresses:
            self.counters["drop_not_our_address"] += 1
            return
        if ip.is_fragment:
            whole = self.reassembler.add((4, ip.src, ip.dst, ip.protocol, ip.ident),
                                         ip.fragment_offset, ip.more_fragments, payload, now)
            if whole is None:
                self.counters["rx_fragments_held"] += 1
                return
            payload = memoryview(whole)
        if ip.protocol == ICMPV4:
            self._handle_icmpv4(ip, payload, now)
        else:
            self._deliver(ip.src, ip.dst, ip.protocol, payload, now)

    def _handle_ipv6(self, eth: EthernetRepr, data: memoryview, now: float) -> None:
        try:
            ip, payload = Ipv6Repr.parse_with_payload(data)
        except MalformedPacket:
            self.counters["drop_bad_ipv6"] += 1
            return
        if ip.dst not in self.ipv6_addresses and ip.dst not in self._ipv6_groups:
            self.counters["drop_not_our_address"] += 1
            return
        fragment = ip.fragment
        if fragment is not None:
            if ip.extension_headers[-1].kind != 44:
                # Headers after the fragment header sit in the first fragment only:
                # the offsets of the pieces would not line up.
                self.counters["drop_fragment_with_extensions"] += 1
                return
            whole = self.reassembler.add((6, ip.src, ip.dst, ip.protocol, fragment.ident),
                                         fragment.offset, fragment.more_fragments, payload, now)
            if whole is None:
                self.counters["rx_fragments_held"] += 1
                return
            payload = memoryview(whole)
        if ip.protocol == ICMPV6:
            self._handle_icmpv6(eth, ip, payload, now)
        elif ip.dst.is_multicast:
            self.counters["drop_multicast"] += 1
        else:
            self._deliver(ip.src, ip.dst, ip.protocol, payload, now)

    def _deliver(self, src: IPAddress, dst: IPAddress, proto: int, payload: memoryview,
                 now: float) -> None:
        handler = self._handlers.get(proto)
        if handler is None:
            self.counters["drop_no_handler"] += 1
            if src.version == 4:  # ICMPv6 has no "protocol unreachable" that fits: parameter problem
                self._send_unreachable(src, dst, proto, payload, DestUnreachable.PROTOCOL, now)
            return
        self.counters["rx_delivered"] += 1
        handler.on_packet(src, dst, payload, now)
        self._batch[proto] = None

    def _handle_icmpv4(self, ip: Ipv4Repr, payload: memoryview, now: float) -> None:
        try:
            icmp = Icmpv4Repr.parse(payload)
        except MalformedPacket:
            self.counters["drop_bad_icmp"] += 1
            return
        if icmp.type == Icmpv4Type.ECHO_REQUEST:
            if not self.answer_echo:
                self.counters["drop_echo_os_answers"] += 1
                return
            self.counters["echo_replies_sent"] += 1
            reply = Icmpv4Repr.echo_reply(icmp.ident, icmp.seq, icmp.data)
            self._send_reply(ip.dst, ip.src, ICMPV4, reply.emit(), now)
        elif icmp.type == Icmpv4Type.DEST_UNREACHABLE:
            if icmp.code == DestUnreachable.FRAGMENTATION_NEEDED:
                self._icmp_error(IcmpErrorKind.FRAG_NEEDED, icmp, ip.src, icmp.next_hop_mtu, now)
            else:
                self._icmp_error(IcmpErrorKind.UNREACHABLE, icmp, ip.src, None, now)
        elif icmp.type == Icmpv4Type.TIME_EXCEEDED:
            self._icmp_error(IcmpErrorKind.TIME_EXCEEDED, icmp, ip.src, None, now)
        elif icmp.type == Icmpv4Type.PARAMETER_PROBLEM:
            self._icmp_error(IcmpErrorKind.PARAMETER_PROBLEM, icmp, ip.src, None, now)
        else:
            self.counters["drop_icmp_other"] += 1

    def _handle_icmpv6(self, eth: EthernetRepr, ip: Ipv6Repr, payload: memoryview,
                       now: float) -> None:
        try:
            icmp = Icmpv6Repr.parse(payload, ip.src, ip.dst)
        except MalformedPacket:
            self.counters["drop_bad_icmp"] += 1
            return
        kind = icmp.type
        if kind in (Icmpv6Type.NEIGHBOR_SOLICIT, Icmpv6Type.NEIGHBOR_ADVERT):
            self.neighbours.on_ndp(ip, icmp, eth.src, now)
        elif kind == Icmpv6Type.ECHO_REQUEST:
            if not self.answer_echo:
                self.counters["drop_echo_os_answers"] += 1
            elif ip.dst.is_multicast:
                self.counters["drop_echo_multicast"] += 1
            else:
                self.counters["echo_replies_sent"] += 1
                reply = Icmpv6Repr.echo_reply(icmp.ident, icmp.seq, icmp.data)
                self._send_reply(ip.dst, ip.src, ICMPV6, reply.emit(ip.dst, ip.src), now)
        elif kind == Icmpv6Type.PACKET_TOO_BIG:
            self._icmp_error(IcmpErrorKind.PACKET_TOO_BIG, icmp, ip.src, icmp.mtu, now)
        elif kind == Icmpv6Type.DEST_UNREACHABLE:
            self._icmp_error(IcmpErrorKind.UNREACHABLE, icmp, ip.src, None, now)
        elif kind == Icmpv6Type.TIME_EXCEEDED:
            self._icmp_error(IcmpErrorKind.TIME_EXCEEDED, icmp, ip.src, None, now)
        elif kind == Icmpv6Type.PARAMETER_PROBLEM:
            self._icmp_error(IcmpErrorKind.PARAMETER_PROBLEM, icmp, ip.src, None, now)
        else:  # router solicitations/advertisements, MLD, ...: the host needs none
            self.counters["drop_icmp_other"] += 1

    def _icmp_error(self, kind: IcmpErrorKind, icmp: Icmpv4Repr | Icmpv6Repr,
                    reporter: IPAddress, mtu: int | None, now: float) -> None:
        try:
            quoted = icmp.quoted
        except MalformedPacket:
            self.counters["drop_bad_icmp_quote"] += 1
            return
        src, dst = quoted.ip.src, quoted.ip.dst
        if src not in self.ipv4_addresses and src not in self.ipv6_addresses:
            self.counters["drop_icmp_error_not_ours"] += 1
            return
        if mtu is not None:
            mtu = self._reported_pmtu(dst, mtu)
        self.counters["icmp_errors_received"] += 1
        self._dispatch_error(IcmpError(kind, icmp.type, icmp.code, reporter, src, dst,
                                       quoted.protocol, quoted.src_port, quoted.dst_port, mtu,
                                       quoted.payload[:64]), now)

    def _dispatch_error(self, error: IcmpError, now: float) -> None:
        handler = self._handlers.get(error.proto)
        if handler is None:
            self.counters["drop_icmp_error_no_handler"] += 1
            return
        handler.on_icmp_error(error, now)

    def _reported_pmtu(self, dst: IPAddress, reported: int) -> int:
        """The path MTU an ICMP error reports, within [protocol minimum, current]."""
        current = self.path_mtu(dst)
        floor = MIN_PMTU_V4 if dst.version == 4 else MIN_PMTU_V6
        if reported == 0 and dst.version == 4:
            # RFC 1191, 7: a router that does not say; step down from what we sent.
            reported = current - IPV4_HEADER if current > floor else floor
        return max(floor, min(reported, current))

    def learn_path_mtu(self, dst: IPAddress, mtu: int, now: float) -> int:
        """Apply the ``mtu`` of an ICMP error a transport trusts to every flow to
        ``dst`` (until PMTU_LIFETIME passes); returns the path MTU now in force."""
        mtu = max(mtu, MIN_PMTU_V4 if dst.version == 4 else MIN_PMTU_V6)
        if mtu < self.path_mtu(dst):
            self.counters["pmtu_reductions"] += 1
            self._pmtu[dst] = (mtu, now + PMTU_LIFETIME)
        return self.path_mtu(dst)

    # -- core: send -----------------------------------------------------

    def _send_packet(self, src: IPAddress, dst: IPAddress, proto: int, payload: bytes,
                     now: float) -> None:
        if src._version == 4:
            self._ident = ident = (self._ident + 1) & 0xFFFF
            total = IPV4_HEADER + len(payload)
            # TCP sets DF for path-MTU discovery; UDP leaves routers free to fragment.
            flags = _DF if proto == 6 else 0
            source, destination = src._ip, dst._ip
            # The header checksum straight from the fields: the one's-complement sum
            # of the header's 16-bit words (RFC 1071), without building it twice.
            total_sum = (0x4500 + total + ident + flags + (64 << 8 | proto)
                         + (source >> 16) + (source & 0xFFFF)
                         + (destination >> 16) + (destination & 0xFFFF))
            total_sum = (total_sum & 0xFFFF) + (total_sum >> 16)
            total_sum = (total_sum & 0xFFFF) + (total_sum >> 16)
            header = _IPV4_HEADER.pack(0x45, 0, total, ident, flags, 64, proto,
                                       ~total_sum & 0xFFFF, source, destination)
            offset = IPV4_HEADER
        else:
            header = _IPV6_HEADER.pack(0x60000000, len(payload), proto, 64, src.packed, dst.packed)
            offset = IPV6_HEADER
        self._output(src, dst, proto, b"".join((header, payload)), offset, now)

    def _send_reply(self, src: IPAddress, dst: IPAddress, proto: int, payload: bytes,
                    now: float) -> None:
        """An answer of the host's own (echo reply): as big as the request was,
        so it is fragmented when it has to be."""
        mtu = self.path_mtu(dst)
        header = IPV4_HEADER if src.version == 4 else IPV6_HEADER
        try:
            if header + len(payload) > mtu:
                self._send_fragments(src, dst, proto, payload, mtu, now)
            else:
                self._send_packet(src, dst, proto, payload, now)
        except NoRoute:
            pass  # counted in _output

    def _send_fragments(self, src: IPAddress, dst: IPAddress, proto: int, payload: bytes,
                        mtu: int, now: float) -> None:
        """Send ``payload`` in fragments that each fit ``mtu`` (RFC 791 / RFC 8200 4.5)."""
        if src.version == 4:
            self._ident = ident = (self._ident + 1) & 0xFFFF
            step = (mtu - IPV4_HEADER) & ~7
            for start in range(0, len(payload), step):
                piece = payload[start:start + step]
                more = start + step < len(payload)
                packet = Ipv4Repr(src, dst, proto, ident=ident, more_fragments=more,
                                  fragment_offset=start).emit(piece)
                self._output(src, dst, proto, packet, IPV4_HEADER if start == 0 else None, now)
        else:
            self._ident6 = ident = (self._ident6 + 1) & 0xFFFFFFFF
            step = (mtu - IPV6_HEADER - 8) & ~7
            for start in range(0, len(payload), step):
                piece = payload[start:start + step]
                more = start + step < len(payload)
                fragment = Ipv6ExtensionHeader.fragment(start, more, ident)
                packet = Ipv6Repr(src, dst, proto, extension_headers=(fragment,)).emit(piece)
                self._output(src, dst, proto, packet, IPV6_HEADER + 8 if start == 0 else None, now)
        self.counters["tx_datagrams_fragmented"] += 1

    def _output(self, src: IPAddress, dst: IPAddress, proto: int, packet: bytes,
                transport_offset: int | None, now: float) -> None:
        """Frame one IP packet for its next hop, or queue it until the hop is resolved.

        ``transport_offset`` is where the transport header starts (None in a
        later fragment), so a failed resolution can name the flow.
        """
        ipv4 = dst._version == 4
        ethertype = EtherType.IPV4 if ipv4 else EtherType.IPV6
        self.counters["tx_packets"] += 1
        # Multicast (or broadcast): the address's first byte, read off its integer.
        if (dst._ip >> 24 >= 224) if ipv4 else (dst._ip >> 120 == 0xFF):
            self._queue_tx(EthernetRepr(multicast_mac(dst), self.mac, ethertype).emit(packet))
            return
        try:
            hop = self.next_hop(dst)
        except NoRoute:
            self.counters["drop_no_route"] += 1
            raise
        mac = self.neighbours.lookup(hop, now)
        if mac is not None:
            self._queue_tx(b"".join((mac, self.mac, _ETHERTYPE_IPV4 if ipv4 else _ETHERTYPE_IPV6,
                                     packet)))
            return
        queue = self._waiting.setdefault(hop, deque())
        if len(queue) >= self.neighbour_queue:
            self.counters["drop_neighbour_queue_full"] += 1
            return
        queue.append((ethertype, packet, src, dst, proto, transport_offset))
        self._kick()  # the resolver has a new deadline

    def _queue_tx(self, frame: bytes) -> None:
        if len(self._tx) >= self.tx_backlog:
            self.counters["drop_tx_backlog_full"] += 1
            return
        self._tx.append(frame)
        if not self._holding:
            if self._deferred_task is not None and not self._in_runtime:
                self.defer(_release_sends)      # with the rest of this round's output
            else:
                self._kick()

    def _kick(self) -> None:
        # Output queued from outside the runtime loop (an app task) needs the
        # runtime to wake up and flush.
        if not self._in_runtime:
            self.wakeup()

    def _send_unreachable(self, remote: IPAddress, local: IPAddress, proto: int,
                          payload: memoryview | bytes, code: int, now: float) -> None:
        if not self.owns_link or remote.is_multicast or local.is_multicast \
                or remote.is_unspecified:
            return
        if not self._icmp_allowed(now):
            self.counters["icmp_rate_limited"] += 1
            return
        # Quote the offending packet: its header as the sender built it (the
        # fields a receiver matches on: addresses, protocol) and its start.
        if remote.version == 4:
            quoted = Ipv4Repr(remote, local, proto).emit(bytes(payload[:548]))
            quoted = quoted[:IPV4_HEADER + min(len(payload), 548)]
            message = Icmpv4Repr.dest_unreachable(code, quoted).emit()
            icmp_proto = ICMPV4
        else:
            quoted = Ipv6Repr(remote, local, proto).emit(bytes(payload[:1184]))
            message = Icmpv6Repr.dest_unreachable(code, quoted).emit(local, remote)
            icmp_proto = ICMPV6
        self.counters["icmp_unreachables_sent"] += 1
        try:
            self._send_packet(local, remote, icmp_proto, message, now)
        except NoRoute:
            pass  # counted in _send_packet

    def _icmp_allowed(self, now: float) -> bool:
        if self._icmp_refill_at is not None:
            self._icmp_tokens = min(float(self.icmp_rate),
                                    self._icmp_tokens + (now - self._icmp_refill_at) * self.icmp_rate)
        self._icmp_refill_at = now
        if self._icmp_tokens < 1:
            return False
        self._icmp_tokens -= 1
        return True

    # -- core: timers and output ----------------------------------------

    def poll_at(self) -> float | None:
        """The earliest deadline of the resolver, the transports and the port."""
        deadlines = [self.neighbours.poll_at(), self.reassembler.poll_at()]
        deadlines += [h.poll_at() for h in self._handlers.values()]
        port_poll = getattr(self.port, "poll_at", None)
        if port_poll is not None:
            deadlines.append(port_poll())
        return min((d for d in deadlines if d is not None), default=None)

    def _metered_poll_at(self) -> float | None:
        # The runtime's own work before it sleeps: counted in runtime_cpu too.
        if self.runtime_cpu is None:
            return self.poll_at()
        started = time.thread_time()
        try:
            return self.poll_at()
        finally:
            self._add_runtime_cpu(started)

    def run_timers(self, now: float) -> None:
        due = self.reassembler.poll_at()
        if due is not None and due <= now:
            self.reassembler.on_timer(now)
        due = self.neighbours.poll_at()
        if due is not None and due <= now:
            self.neighbours.on_timer(now)
        for handler in list(self._handlers.values()):
            due = handler.poll_at()
            if due is not None and due <= now:
                handler.on_timer(now)

    def flush(self) -> None:
        """Hand queued frames to the port and sync once."""
        if not self._tx:
            return
        queued = self.port.send_batch(self._tx)
        self.port.sync()
        if queued < len(self._tx):  # the ring was full: the sync made room
            queued += self.port.send_batch(self._tx[queued:])
            self.port.sync()
        self.counters["tx_frames"] += queued
        del self._tx[:queued]

    def take_output(self) -> list[bytes]:
        """Remove and return the queued frames (for driving the core by hand)."""
        frames, self._tx = self._tx, []
        return frames

    def pending_output(self) -> int:
        return len(self._tx)

    # -- runtime --------------------------------------------------------

    def step(self, now: float) -> int:
        """One runtime iteration without waiting: receive, dispatch, timers, flush."""
        started = None if self.runtime_cpu is None else time.thread_time()
        try:
            self._in_runtime = True
            try:
                frames = self.port.recv_batch(self.rx_batch)
                self.handle_frames(frames, now)
                self.run_timers(now)
            finally:
                self._in_runtime = False
            self.flush()
            return len(frames)
        finally:
            if started is not None:
                self._add_runtime_cpu(started)

    async def run(self) -> None:
        """Serve the port until cancelled (or the port closes: PortClosedError).

        With ``control_socket``, the process's control socket reports on this
        host meanwhile (opened by the first such host, removed after the last).
        """
        if not self.control_socket:
            await self._run()
            return
        from .control import serving

        async with serving(self):
            await self._run()

    async def _run(self) -> None:
        import trio

        fd = self.port.fileno()
        self._running = True
        deferred_scope = trio.CancelScope()
        trio.lowlevel.spawn_system_task(self._serve_deferred, deferred_scope,
                                        name="host deferred work")
        try:
            while True:
                # One scope serves the waits until a deadline or a wakeup cancels it:
                # most iterations end with frames to read, and a new scope each time
                # costs more than moving this one's deadline.
                with trio.CancelScope() as scope:
                    self._wait_scope = scope
                    try:
                        while True:
                            self._woken = False
                            if self._deferred_error is not None:
                                error, self._deferred_error = self._deferred_error, None
                                raise error
                            received = self.step(self._clock())
                            # After frames, look again once the woken tasks have run
                            # before arming the fd: under load more have come by then,
                            # and an empty look costs less than an epoll wakeup.
                            if received or self._woken:
                                await trio.lowlevel.checkpoint()
                                continue
                            deadline = self._metered_poll_at()
                            scope.deadline = math.inf if deadline is None else deadline
                            await trio.lowlevel.wait_readable(fd)
                    finally:
                        self._wait_scope = None
        finally:
            self._running = False
            deferred_scope.cancel()
            self._deferred_task = None
            self._deferred_parked = False
            if self._deferred:      # what the helper had not run yet
                self._run_deferred(self._clock())


def _release_sends(now: float) -> None:
    """Deferred work that is only the release of held output: it sends what is queued."""


def _ports(proto: int, transport: bytes) -> tuple[int | None, int | None]:
    if proto in (6, 17) and len(transport) >= 4:
        return int.from_bytes(transport[0:2], "big"), int.from_bytes(transport[2:4], "big")
    return None, None
