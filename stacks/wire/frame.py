"""Whole Ethernet frames: parse one into its layers, or build one from them.

    frame = parse_frame(buf)                # buf: bytes or a ring slot's memoryview
    if isinstance(frame.transport, TcpRepr): ...

    wire = build_frame(EthernetRepr(dst_mac, src_mac, EtherType.IPV4),
                       Ipv4Repr(src, dst, tcp.PROTOCOL), segment)

Everything parse_frame returns is copied out of the buffer, so the buffer
(a ring slot) can be handed back at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import icmpv4, icmpv6, tcp, udp
from ._fast_init import fast_constructor, faster_init
from .arp import ArpRepr
from .errors import MalformedPacket
from .ethernet import EtherType, EthernetRepr
from .icmpv4 import Icmpv4Repr
from .icmpv6 import Icmpv6Repr
from .ipv4 import Ipv4Repr
from .ipv6 import Ipv6Repr
from .tcp import TcpRepr
from .udp import UdpRepr

NetworkRepr = Ipv4Repr | Ipv6Repr | ArpRepr
TransportRepr = TcpRepr | UdpRepr | Icmpv4Repr | Icmpv6Repr

_PROTOCOL_OF = {TcpRepr: tcp.PROTOCOL, UdpRepr: udp.PROTOCOL,
                Icmpv4Repr: icmpv4.PROTOCOL, Icmpv6Repr: icmpv6.PROTOCOL}


@faster_init
@dataclass(frozen=True, slots=True)
class Frame:
    """A frame's layers, outermost first.

    ``network`` is None for an EtherType other than IPv4, IPv6 and ARP;
    ``transport`` is None for ARP, for an IP protocol other than TCP, UDP,
    ICMP/ICMPv6, and for an IP fragment (which needs reassembly first).
    ``payload`` holds the bytes of the first layer left unparsed (the
    fragment's data, say), and is empty otherwise.
    """

    ethernet: EthernetRepr
    network: NetworkRepr | None = None
    transport: TransportRepr | None = None
    payload: bytes = b""

    def emit(self) -> bytes:
        """The frame's bytes: :func:`build_frame` of its layers."""
        return build_frame(self.ethernet, self.network, self.transport, self.payload)


# Parsers build one of these per packet: the fast path of Frame(...).
_build_frame = fast_constructor(Frame)


def parse_frame(data, *, verify_checksums: bool = True) -> Frame:
    """Parse an Ethernet frame (without FCS) down to its transport layer.

    Raises MalformedPacket if any layer present is malformed, checksums
    included unless ``verify_checksums`` is false (for NIC-verified frames).
    """
    ethernet, rest = EthernetRepr.parse_with_payload(data)
    ethertype = ethernet.ethertype
    if ethertype == EtherType.IPV4:
        ip, rest = Ipv4Repr.parse_with_payload(rest, verify_checksum=verify_checksums)
        if ip.more_fragments or ip.fragment_offset:
            return _build_frame(ethernet, ip, None, bytes(rest))
    elif ethertype == EtherType.IPV6:
        ip, rest = Ipv6Repr.parse_with_payload(rest)
        fragment = ip.fragment
        if fragment is not None and (fragment.more_fragments or fragment.offset):
            return _build_frame(ethernet, ip, None, bytes(rest))
    elif ethertype == EtherType.ARP:
        return _build_frame(ethernet, ArpRepr.parse(rest))
    else:
        return _build_frame(ethernet, None, None, bytes(rest))

    protocol = ip.protocol
    if protocol == tcp.PROTOCOL:
        transport = TcpRepr.parse(rest, ip.src, ip.dst, verify_checksum=verify_checksums)
    elif protocol == udp.PROTOCOL:
        transport = UdpRepr.parse(rest, ip.src, ip.dst, verify_checksum=verify_checksums)
    elif protocol == icmpv4.PROTOCOL and ethertype == EtherType.IPV4:
        transport = Icmpv4Repr.parse(rest, verify_checksum=verify_checksums)
    elif protocol == icmpv6.PROTOCOL and ethertype == EtherType.IPV6:
        transport = Icmpv6Repr.parse(rest, ip.src, ip.dst, verify_checksum=verify_checksums)
    else:
        return _build_frame(ethernet, ip, None, bytes(rest))
    return _build_frame(ethernet, ip, transport)


def build_frame(ethernet: EthernetRepr, network: NetworkRepr | None,
                transport: TransportRepr | None = None, payload: bytes = b"") -> bytes:
    """Build a frame: Ethernet, then IP or ARP, then the transport.

    Lengths and checksums are computed.  The layers must agree: the
    EtherType with the network layer, the IP protocol with the transport.
    Without a transport, ``payload`` is the raw IP payload (a fragment, say);
    without a network layer either, the raw Ethernet payload.  Frames
    shorter than 60 bytes are not padded; the NIC does that.
    """
    if network is None:
        if transport is not None:
            raise ValueError("build_frame: a transport needs a network layer")
        return ethernet.emit(payload)
    if isinstance(network, ArpRepr):
        if ethernet.ethertype != EtherType.ARP or transport is not None or payload:
            raise ValueError("build_frame: ARP goes in an ARP EtherType frame, alone")
        return ethernet.emit(network.emit())
    if isinstance(network, Ipv4Repr):
        expected = EtherType.IPV4
    elif isinstance(network, Ipv6Repr):
        expected = EtherType.IPV6
    else:
        raise ValueError(f"build_frame: unknown network layer {type(network).__name__}")
    if ethernet.ethertype != expected:
        raise ValueError(f"build_frame: EtherType 0x{ethernet.ethertype:04x} does not match "
                         f"{type(network).__name__}")
    if transport is not None:
        if payload:
            raise ValueError("build_frame: give a transport or a raw payload, not both")
        protocol = _PROTOCOL_OF.get(type(transport))
        if protocol is None:
            raise ValueError(f"build_frame: unknown transport {type(transport).__name__}")
        if protocol != network.protocol:
            raise ValueError(f"build_frame: {type(transport).__name__} in an IP packet of "
                             f"protocol {network.protocol}")
        if (protocol == icmpv4.PROTOCOL and expected != EtherType.IPV4) or \
                (protocol == icmpv6.PROTOCOL and expected != EtherType.IPV6):
            raise ValueError("build_frame: ICMP goes over IPv4, ICMPv6 over IPv6")
        if protocol == icmpv4.PROTOCOL:
            payload = transport.emit()
        else:
            payload = transport.emit(network.src, network.dst)
    # Each layer prepends its header to the bytes of the layers inside it:
    # fewer Python steps than filling one buffer, for a few short copies.
    return ethernet.emit(network.emit(payload))


__all__ = ["Frame", "parse_frame", "build_frame", "MalformedPacket"]
