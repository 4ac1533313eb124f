"""Hypothesis strategies for every wire representation, canonical by construction
(emit then parse must give back exactly what was drawn)."""

from ipaddress import IPv4Address, IPv6Address

from hypothesis import strategies as st

from stacks.wire import ipv6
from stacks.wire.arp import ArpRepr
from stacks.wire.ethernet import EtherType, EthernetRepr, MacAddress, VlanTag
from stacks.wire.icmpv4 import Icmpv4Repr, Icmpv4Type
from stacks.wire.icmpv6 import NA_OVERRIDE, NA_ROUTER, NA_SOLICITED, Icmpv6Repr, Icmpv6Type
from stacks.wire.ipv4 import Ipv4Repr
from stacks.wire.ipv6 import Ipv6ExtensionHeader, Ipv6Repr
from stacks.wire.tcp import TcpFlags, TcpRepr
from stacks.wire.udp import UdpRepr

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
payloads = st.binary(max_size=64)

macs = st.binary(min_size=6, max_size=6).map(MacAddress)
ipv4_addresses = st.integers(0, 2**32 - 1).map(IPv4Address)
ipv6_addresses = st.integers(0, 2**128 - 1).map(IPv6Address)
vlan_tags = st.builds(VlanTag, vid=st.integers(0, 0xFFF), pcp=st.integers(0, 7), dei=st.booleans())


@st.composite
def ethernet_reprs(draw, ethertype=None):
    vlan = draw(st.none() | vlan_tags)
    if ethertype is None:
        ethertype = draw(u16.filter(lambda t: vlan is not None or t != EtherType.VLAN))
    return EthernetRepr(draw(macs), draw(macs), ethertype, vlan)


arp_reprs = st.builds(ArpRepr, operation=u16, sender_mac=macs, sender_ip=ipv4_addresses,
                      target_mac=macs, target_ip=ipv4_addresses)


@st.composite
def ipv4_options(draw):
    """A well-formed options area: NOPs and TLVs, padded with EOL to 4 bytes."""
    area = b""
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            area += b"\x01"
        else:
            data = draw(st.binary(max_size=6))
            area += bytes((draw(st.integers(2, 255)), 2 + len(data))) + data
    area += b"\0" * (-len(area) % 4)
    return area[:40] if len(area) <= 40 else b""


@st.composite
def ipv4_reprs(draw, protocol=None, fragments=True):
    fragment_offset = draw(st.integers(0, 0x1FFF)) * 8 if fragments else 0
    return Ipv4Repr(
        src=draw(ipv4_addresses), dst=draw(ipv4_addresses),
        protocol=draw(u8) if protocol is None else protocol,
        ttl=draw(u8), dscp=draw(st.integers(0, 63)), ecn=draw(st.integers(0, 3)),
        ident=draw(u16), dont_fragment=draw(st.booleans()),
        more_fragments=draw(st.booleans()) if fragments else False,
        fragment_offset=fragment_offset, options=draw(ipv4_options()))


@st.composite
def ipv6_extension_headers(draw, fragments=True):
    kinds = draw(st.lists(st.sampled_from([ipv6.HOP_BY_HOP, ipv6.ROUTING, ipv6.FRAGMENT,
                                           ipv6.DEST_OPTIONS, ipv6.AUTH]), max_size=4))
    headers = []
    for i, kind in enumerate(kinds):
        if kind == ipv6.HOP_BY_HOP and i:
            continue
        if kind == ipv6.FRAGMENT:
            last = i == len(kinds) - 1
            offset = draw(st.integers(0, 0x1FFF)) * 8 if (last and fragments) else 0
            more = draw(st.booleans()) if fragments else False
            headers.append(Ipv6ExtensionHeader.fragment(offset, more, draw(u32)))
        elif kind == ipv6.AUTH:
            # reserved, SPI, sequence number, ICV: 12 + 4k bytes, a multiple of 8 for IPv6
            icv = bytes(4 + 8 * draw(st.integers(0, 2)))
            headers.append(Ipv6ExtensionHeader(kind, bytes(2) + draw(st.binary(min_size=8,
                                                                            max_size=8)) + icv))
        elif kind == ipv6.ROUTING:
            # routing type (0: deprecated, 2: Mobile IPv6, 3: RPL, 253:
            # experimental; not 4, which scapy parses as segment routing),
            # segments left, reserved, then addresses
            routing_type = draw(st.sampled_from([0, 2, 3, 253]))
            addresses = draw(st.lists(ipv6_addresses, max_size=2))
            segments_left = draw(st.integers(0, len(addresses)))
            headers.append(Ipv6ExtensionHeader(kind, bytes((routing_type, segments_left))
                                               + bytes(4)
                                               + b"".join(a.packed for a in addresses)))
        else:
            # one option (PadN or an experimental type) filling the body
            size = 6 + 8 * draw(st.integers(0, 2))
            option = draw(st.sampled_from([1, 0x1E, 0x3E]))
            headers.append(Ipv6ExtensionHeader(kind, bytes((option, size - 2)) + draw(
                st.binary(min_size=size - 2, max_size=size - 2))))
    return tuple(headers)


upper_protocols = u8.filter(lambda p: p not in ipv6.EXTENSION_HEADERS)


@st.composite
def ipv6_reprs(draw, protocol=None, fragments=True):
    return Ipv6Repr(
        src=draw(ipv6_addresses), dst=draw(ipv6_addresses),
        protocol=draw(upper_protocols) if protocol is None else protocol,
        hop_limit=draw(u8), traffic_class=draw(u8), flow_label=draw(st.integers(0, 2**20 - 1)),
        extension_headers=draw(ipv6_extension_headers(fragments)))


@st.composite
def tcp_reprs(draw):
    timestamp = draw(st.none() | st.tuples(u32, u32))
    mss = draw(st.none() | u16)
    window_scale = draw(st.none() | u8)
    sack_permitted = draw(st.booleans())
    used = (4 if mss is not None else 0) + (12 if timestamp else 4 if sack_permitted else 0) \
        + (4 if window_scale is not None else 0)
    room = min(4, (40 - used - 4) // 8)
    blocks = draw(st.lists(st.tuples(u32, u32), max_size=max(0, room)))
    return TcpRepr(
        src_port=draw(u16), dst_port=draw(u16), seq=draw(u32), ack=draw(u32),
        flags=TcpFlags(draw(u8)), window=draw(u16), urgent=draw(u16),
        mss=mss, window_scale=window_scale, sack_permitted=sack_permitted,
        sack_blocks=tuple(blocks), timestamp=timestamp, payload=draw(payloads))


udp_reprs = st.builds(UdpRepr, src_port=u16, dst_port=u16, payload=payloads)

_ICMPV4_KNOWN = {int(t) for t in Icmpv4Type}


@st.composite
def icmpv4_reprs(draw):
    kind = draw(st.sampled_from(["echo", "unreachable", "time", "param", "other"]))
    code, data = draw(u8), draw(payloads)
    if kind == "echo":
        return Icmpv4Repr(draw(st.sampled_from([0, 8])), code, ident=draw(u16), seq=draw(u16),
                          data=data)
    if kind == "unreachable":
        return Icmpv4Repr.dest_unreachable(code, data, next_hop_mtu=draw(u16))
    if kind == "time":
        return Icmpv4Repr.time_exceeded(code, data)
    if kind == "param":
        return Icmpv4Repr(Icmpv4Type.PARAMETER_PROBLEM, code, pointer=draw(u8), data=data)
    # real messages of every type have at least 8 bytes
    rest = draw(st.binary(min_size=4, max_size=4))
    return Icmpv4Repr(draw(u8.filter(lambda t: t not in _ICMPV4_KNOWN)), code, data=rest + data)


_ICMPV6_KNOWN = {int(t) for t in Icmpv6Type}


@st.composite
def icmpv6_reprs(draw):
    kind = draw(st.sampled_from(["echo", "too big", "error", "param", "ns", "na", "other"]))
    code, data = draw(u8), draw(payloads)
    if kind == "echo":
        return Icmpv6Repr(draw(st.sampled_from([128, 129])), code, ident=draw(u16),
                          seq=draw(u16), data=data)
    if kind == "too big":
        return Icmpv6Repr(Icmpv6Type.PACKET_TOO_BIG, code, mtu=draw(u32), data=data)
    if kind == "error":
        return Icmpv6Repr(draw(st.sampled_from([1, 3])), code, data=data)
    if kind == "param":
        return Icmpv6Repr(Icmpv6Type.PARAMETER_PROBLEM, code, pointer=draw(u32), data=data)
    lladdrs = dict(source_lladdr=draw(st.none() | macs), target_lladdr=draw(st.none() | macs))
    if kind == "ns":
        return Icmpv6Repr(Icmpv6Type.NEIGHBOR_SOLICIT, code, target=draw(ipv6_addresses),
                          **lladdrs)
    if kind == "na":
        flags = draw(st.sampled_from([0, NA_ROUTER, NA_SOLICITED, NA_OVERRIDE,
                                      NA_SOLICITED | NA_OVERRIDE, NA_ROUTER | NA_SOLICITED
                                      | NA_OVERRIDE]))
        return Icmpv6Repr(Icmpv6Type.NEIGHBOR_ADVERT, code, target=draw(ipv6_addresses),
                          nd_flags=flags, **lladdrs)
    rest = draw(st.binary(min_size=4, max_size=4))
    return Icmpv6Repr(draw(u8.filter(lambda t: t not in _ICMPV6_KNOWN)), code, data=rest + data)


_TRANSPORTS = {
    # name: (IP version, protocol number, strategy)
    "tcp4": (4, 6, tcp_reprs()), "udp4": (4, 17, udp_reprs), "icmp4": (4, 1, icmpv4_reprs()),
    "tcp6": (6, 6, tcp_reprs()), "udp6": (6, 17, udp_reprs), "icmp6": (6, 58, icmpv6_reprs()),
}


@st.composite
def frame_layers(draw):
    """(ethernet, network, transport) of a frame that parse_frame decodes fully."""
    choice = draw(st.sampled_from(sorted(_TRANSPORTS) + ["arp"]))
    if choice == "arp":
        return draw(ethernet_reprs(EtherType.ARP)), draw(arp_reprs), None
    version, protocol, transports = _TRANSPORTS[choice]
    if version == 4:
        ethernet, ip = ethernet_reprs(EtherType.IPV4), ipv4_reprs(protocol, fragments=False)
    else:
        ethernet, ip = ethernet_reprs(EtherType.IPV6), ipv6_reprs(protocol, fragments=False)
    return draw(ethernet), draw(ip), draw(transports)
