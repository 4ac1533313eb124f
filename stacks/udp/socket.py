"""A trio API for UDP on a user-level Host.

    sock = open_udp_socket(host, "10.0.0.2", 7)
    data, (addr, port) = await sock.recvfrom()
    await sock.sendto(data, (addr, port))

The host's runtime (``await host.run()``) must be running in some task.
ICMP errors about datagrams this socket sent are kept in ``sock.errors``;
with ``report_errors=True`` the next ``recvfrom`` raises them as
:class:`UdpIcmpError` instead (like a connected Linux socket's ECONNREFUSED).
"""

from __future__ import annotations

from ipaddress import ip_address

import trio

from stacks.host.host import Host, IcmpError, IPAddress

from .endpoint import Datagram, UdpEndpoint, UdpLayer


class UdpIcmpError(OSError):
    """An ICMP error arrived for a datagram this socket sent."""

    def __init__(self, error: IcmpError):
        super().__init__(f"ICMP {error.kind.value} from {error.reporter} about "
                         f"{error.dst}:{error.dst_port}")
        self.error = error


class UdpSocket:
    def __init__(self, endpoint: UdpEndpoint, *, report_errors: bool = False):
        self._endpoint = endpoint
        self.report_errors = report_errors
        self._lot = trio.lowlevel.ParkingLot()
        endpoint.notify = self._lot.unpark_all

    @property
    def errors(self):
        return self._endpoint.errors

    @property
    def dropped(self) -> int:
        """Datagrams dropped because the receive queue was full."""
        return self._endpoint.dropped

    def getsockname(self) -> tuple[IPAddress, int]:
        return self._endpoint.address, self._endpoint.port

    async def sendto(self, data: bytes, address: tuple[IPAddress | str, int], *,
                     source: IPAddress | None = None) -> None:
        """Send a datagram; ``source`` picks our address when bound to a wildcard."""
        await trio.lowlevel.checkpoint()
        if self._endpoint.closed:
            raise trio.ClosedResourceError("UDP socket is closed")
        host, port = address
        self._endpoint.send(data, ip_address(host), port, source=source)

    async def recvfrom(self) -> tuple[bytes, tuple[IPAddress, int]]:
        datagram = await self.receive()
        return datagram.data, datagram.src

    async def receive(self) -> Datagram:
        """The next datagram with both its source and destination (address, port)."""
        endpoint = self._endpoint
        while True:
            if endpoint.closed:
                raise trio.ClosedResourceError("UDP socket is closed")
            if self.report_errors and endpoint.errors:
                await trio.lowlevel.checkpoint_if_cancelled()
                error = endpoint.errors.popleft()
                await trio.lowlevel.cancel_shielded_checkpoint()
                raise UdpIcmpError(error)
            if endpoint.received:
                # Take the datagram only once cancellation can no longer lose it.
                await trio.lowlevel.checkpoint_if_cancelled()
                datagram = endpoint.received.popleft()
                await trio.lowlevel.cancel_shielded_checkpoint()
                return datagram
            await self._lot.park()

    def close(self) -> None:
        self._endpoint.close()
        self._lot.unpark_all()

    def __enter__(self) -> "UdpSocket":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_udp_socket(host: Host, address: IPAddress | str, port: int, *,
                    queue_limit: int = 256, report_errors: bool = False) -> UdpSocket:
    """Bind a UDP socket on ``host`` to (address, port); port 0 picks one."""
    endpoint = UdpLayer.of(host).bind(address, port, queue_limit=queue_limit)
    return UdpSocket(endpoint, report_errors=report_errors)
