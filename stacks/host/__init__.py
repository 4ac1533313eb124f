"""The IP host layer: a Host per port, neighbour resolution, ICMP errors to transports."""

from .host import (Host, IcmpError, IcmpErrorKind, NoRoute, PacketTooBig, ProtocolHandler)
from .neighbours import NeighbourResolver, OsNeighbours, OwnNeighbours

__all__ = ["Host", "IcmpError", "IcmpErrorKind", "NoRoute", "PacketTooBig", "ProtocolHandler",
           "NeighbourResolver", "OsNeighbours", "OwnNeighbours"]
