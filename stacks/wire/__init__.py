"""Wire formats: length-checked views and immutable representations.

One module per protocol — ``ethernet`` (with 802.1Q), ``arp``, ``ipv4``,
``ipv6`` (extension headers), ``icmpv4``, ``icmpv6`` (with neighbour
discovery), ``udp``, ``tcp`` — and ``frame`` to parse or build a whole
Ethernet frame.  Each protocol offers a view class (``...Packet`` or
``EthernetFrame``) that checks lengths before any field is read, and a
frozen ``...Repr`` dataclass with ``parse`` and ``emit``.

Parsing untrusted bytes raises only :class:`MalformedPacket`.  Emitting a
representation whose fields cannot be encoded raises ``ValueError``.
Parsed payloads are copied out, so a receive buffer can be reused at once.
"""

from .arp import ArpOperation, ArpRepr
from .errors import MalformedPacket
from .ethernet import EtherType, EthernetRepr, MacAddress, VlanTag
from .frame import Frame, build_frame, parse_frame
from .icmpv4 import Icmpv4Repr, Icmpv4Type
from .icmpv6 import Icmpv6Repr, Icmpv6Type
from .ipv4 import Ipv4Repr
from .ipv6 import Ipv6ExtensionHeader, Ipv6Fragment, Ipv6Repr
from .quoted import QuotedPacket
from .tcp import TcpFlags, TcpRepr
from .udp import UdpRepr

__all__ = [
    "ArpOperation", "ArpRepr", "EtherType", "EthernetRepr", "Frame", "Icmpv4Repr",
    "Icmpv4Type", "Icmpv6Repr", "Icmpv6Type", "Ipv4Repr", "Ipv6ExtensionHeader", "Ipv6Fragment",
    "Ipv6Repr", "MacAddress", "MalformedPacket", "QuotedPacket", "TcpFlags", "TcpRepr",
    "UdpRepr", "VlanTag", "build_frame", "parse_frame",
]
