"""UDP over the host layer: a sans-IO endpoint table and a trio socket API."""

from .endpoint import Datagram, UdpEndpoint, UdpLayer
from .socket import UdpIcmpError, UdpSocket, open_udp_socket

__all__ = ["Datagram", "UdpEndpoint", "UdpLayer", "UdpIcmpError", "UdpSocket", "open_udp_socket"]
