"""UDP (RFC 768) for a Host: bound endpoints and the demultiplexer, sans-IO.

:class:`UdpLayer` is the host's protocol handler for UDP.  It checks each
datagram (length, checksum), finds the endpoint bound to its destination
(exact address first, then the wildcard of that family) and queues it
there; a datagram nobody is bound to is a counted drop, answered with
"port unreachable" where the host owns the link.  ICMP errors about
datagrams we sent go to the endpoint that sent them.  Sending builds the
datagram (checksum over the pseudo-header) and hands it to ``host.send_ip``.
No I/O, no clock: the trio API in :mod:`stacks.udp.socket` waits on top.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from stacks.host.host import Host, IcmpError, IPAddress
from stacks.wire.checksum import transport_checksum_ok
from stacks.wire.udp import PROTOCOL, UdpRepr

WILDCARDS = {4: IPv4Address("0.0.0.0"), 6: IPv6Address("::")}
EPHEMERAL_PORTS = range(49152, 65536)  # RFC 6335
MAX_PAYLOAD = 65535 - 8


def _key(address: IPAddress, port: int) -> tuple[int, int, int]:
    return address.version, int(address), port


@dataclass(frozen=True)
class Datagram:
    data: bytes
    src: tuple[IPAddress, int]
    dst: tuple[IPAddress, int]


class UdpEndpoint:
    """A bound (address, port): queues of received datagrams and ICMP errors.

    ``address`` may be the wildcard of its family (0.0.0.0 or ::).  Queues
    are bounded; overflow is counted in ``dropped``.  ``notify`` (set by an
    API layer) is called after anything is queued.
    """

    def __init__(self, layer: "UdpLayer", address: IPAddress, port: int, queue_limit: int):
        self.layer = layer
        self.address = address
        self.port = port
        self.queue_limit = queue_limit
        self.received: deque[Datagram] = deque()
        self.errors: deque[IcmpError] = deque(maxlen=queue_limit)
        self.dropped = 0
        #: Datagrams and payload bytes taken in (queued) and sent, for ``ss``.
        self.rx_datagrams = self.rx_bytes = self.tx_datagrams = self.tx_bytes = 0
        self.notify: Callable[[], None] | None = None
        self.closed = False

    @property
    def is_wildcard(self) -> bool:
        return self.address == WILDCARDS[self.address.version]

    def datagram_received(self, datagram: Datagram) -> None:
        if len(self.received) >= self.queue_limit:
            self.dropped += 1
            self.layer.counters["drop_queue_full"] += 1
            return
        self.received.append(datagram)
        self.rx_datagrams += 1
        self.rx_bytes += len(datagram.data)
        if self.notify:
            self.notify()

    def error_received(self, error: IcmpError) -> None:
        self.errors.append(error)
        if self.notify:
            self.notify()

    def send(self, data: bytes, dst: IPAddress, dst_port: int, *,
             source: IPAddress | None = None) -> None:
        """Send one datagram (raises PacketTooBig, NoRoute, ValueError).

        ``source`` chooses our address when the endpoint is a wildcard.
        """
        if self.closed:
            raise ValueError("endpoint is closed")
        data = bytes(data)
        self.layer.send(self, data, dst, dst_port, source=source)
        self.tx_datagrams += 1
        self.tx_bytes += len(data)

    def snapshot(self) -> dict[str, object]:
        """What ``ss -u`` shows of this endpoint, read-only: queues in bytes (and
        datagrams), drops, and what it took in and sent."""
        return {"state": "UNCONN", "local_address": str(self.address), "local_port": self.port,
                "remote_address": None, "remote_port": None,
                "receive_queue": sum(len(d.data) for d in self.received), "send_queue": 0,
                "queued_datagrams": len(self.received), "queued_errors": len(self.errors),
                "dropped": self.dropped, "rx_datagrams": self.rx_datagrams,
                "rx_bytes": self.rx_bytes, "tx_datagrams": self.tx_datagrams,
                "tx_bytes": self.tx_bytes}

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.layer.unbind(self)


class UdpLayer:
    """The UDP protocol handler of one Host.  Get it with :meth:`of`."""

    def __init__(self, host: Host, *, verify_checksums: bool = True, seed: int | None = None):
        self.host = host
        self.verify_checksums = verify_checksums
        self.counters: Counter[str] = Counter()
        # Keyed by (version, address as an integer, port): cheaper to hash than
        # ipaddress objects, and the two families cannot collide.
        self._endpoints: dict[tuple[int, int, int], UdpEndpoint] = {}
        self._random = random.Random(seed)
        host.attach(PROTOCOL, self)

    @classmethod
    def of(cls, host: Host) -> "UdpLayer":
        """The host's UDP layer, attached on first use."""
        existing = host.handler(PROTOCOL)
        if existing is None:
            return cls(host)
        if not isinstance(existing, cls):
            raise ValueError(f"protocol 17 of this host is handled by {type(existing).__name__}")
        return existing

    def bind(self, address: IPAddress | str, port: int, *, queue_limit: int = 256) -> UdpEndpoint:
        """Bind (address, port); port 0 picks a free ephemeral port."""
        address = ip_address(address)
        if not address == WILDCARDS[address.version]:
            ours = self.host.ipv4_addresses if address.version == 4 else self.host.ipv6_addresses
            if address not in ours:
                raise ValueError(f"{address} is not an address of this host")
        if not 0 <= port <= 65535:
            raise ValueError(f"port {port} out of range")
        if port == 0:
            port = self._free_port(address)
        key = _key(address, port)
        version = address.version
        clash = key in self._endpoints or (version, 0, port) in self._endpoints or (
            int(address) == 0 and any(v == version and p == port for v, _, p in self._endpoints))
        if clash:
            raise OSError(98, f"UDP {address} port {port} is already bound")  # EADDRINUSE
        endpoint = UdpEndpoint(self, address, port, queue_limit)
        self._endpoints[key] = endpoint
        return endpoint

    def snapshot(self) -> list[dict[str, object]]:
        """Every bound endpoint's :meth:`UdpEndpoint.snapshot`."""
        return [endpoint.snapshot() for endpoint in self._endpoints.values()]

    def unbind(self, endpoint: UdpEndpoint) -> None:
        key = _key(endpoint.address, endpoint.port)
        if self._endpoints.get(key) is endpoint:
            del self._endpoints[key]

    def _free_port(self, address: IPAddress) -> int:
        for _ in range(1000):
            port = self._random.choice(EPHEMERAL_PORTS)
            if _key(address, port) not in self._endpoints and \
                    (address.version, 0, port) not in self._endpoints:
                return port
        raise OSError(98, "no free ephemeral UDP port")

    def lookup(self, address: IPAddress, port: int) -> UdpEndpoint | None:
        """The endpoint bound to exactly (address, port), else to its family's wildcard."""
        version = address.version
        return self._endpoints.get((version, int(address), port)) or \
            self._endpoints.get((version, 0, port))

    # -- ProtocolHandler ------------------------------------------------

    def on_packet(self, src: IPAddress, dst: IPAddress, payload: memoryview, now: float) -> None:
        # The checks of stacks.wire.udp.UdpRepr.parse, inline: this runs per datagram.
        n = len(payload)
        length = payload[4] << 8 | payload[5] if n >= 8 else 0
        if not 8 <= length <= n:
            self.counters["drop_malformed"] += 1
            return
        if self.verify_checksums:
            if payload[6] == 0 and payload[7] == 0:
                if src.version == 6:  # RFC 8200, 8.1: mandatory over IPv6
                    self.counters["drop_malformed"] += 1
                    return
            elif not transport_checksum_ok(src, dst, PROTOCOL, payload[:length]):
                self.counters["drop_malformed"] += 1
                return
        src_port, dst_port = payload[0] << 8 | payload[1], payload[2] << 8 | payload[3]
        endpoint = self.lookup(dst, dst_port)
        if endpoint is None:
            self.counters["drop_no_endpoint"] += 1
            self.host.reject(src, dst, PROTOCOL, payload, now)
            return
        self.counters["rx_datagrams"] += 1
        endpoint.datagram_received(Datagram(bytes(payload[8:length]), (src, src_port), (dst, dst_port)))

    def on_batch_end(self, now: float) -> None:
        pass  # each datagram was handed over as it came

    def on_icmp_error(self, error: IcmpError, now: float) -> None:
        endpoint = self.lookup(error.src, error.src_port) if error.src_port is not None else None
        if endpoint is None:
            self.counters["drop_icmp_error_no_endpoint"] += 1
            return
        self.counters["icmp_errors"] += 1
        if error.mtu is not None:
            # UDP has nothing to check an error against (as in Linux, an error for a
            # bound endpoint is believed): the path MTU applies to the host's flows.
            self.host.learn_path_mtu(error.dst, error.mtu, now)
        endpoint.error_received(error)

    def poll_at(self) -> float | None:
        return None  # UDP keeps no timers

    def on_timer(self, now: float) -> None:
        pass

    # -- sending --------------------------------------------------------

    def send(self, endpoint: UdpEndpoint, data: bytes, dst: IPAddress | str, dst_port: int, *,
             source: IPAddress | None = None) -> None:
        dst = ip_address(dst)
        if dst.version != endpoint.address.version:
            raise ValueError(f"endpoint {endpoint.address} cannot send to {dst}")
        if not 0 < dst_port <= 65535:
            raise ValueError(f"destination port {dst_port} out of range")
        if len(data) > MAX_PAYLOAD:
            raise ValueError(f"UDP payload of {len(data)} bytes exceeds {MAX_PAYLOAD}")
        src = endpoint.address
        if endpoint.is_wildcard:
            src = source if source is not None else self.host.source_address_for(dst)
            if src is None:
                raise ValueError(f"this host has no IPv{dst.version} address")
        elif source is not None and source != src:
            raise ValueError(f"endpoint bound to {src} cannot send from {source}")
        segment = UdpRepr(endpoint.port, dst_port, data).emit(src, dst)
        # Like a Linux UDP socket: larger than the path MTU goes out in fragments.
        self.host.send_ip(src, dst, PROTOCOL, segment, fragment=True)
        self.counters["tx_datagrams"] += 1
