"""The kernel module's frame classifier (multistack.classify, the same C code
multistack.ko runs) against the stack's own wire parser: on every frame the
parser reads, the two agree on what it is and on its 3-tuples; cut short,
both call it malformed."""

from hypothesis import given, strategies as st

from multistack.classify import classify
from stacks.wire import ipv6
from stacks.wire.errors import MalformedPacket
from stacks.wire.ethernet import EtherType
from stacks.wire.frame import build_frame, parse_frame
from stacks.wire.ipv4 import Ipv4Repr
from stacks.wire.tcp import TcpRepr
from stacks.wire.udp import UdpRepr

from .strategies import frame_layers

# The extension headers the module walks; any other one ends the walk ("not TCP/UDP").
WALKED = {ipv6.HOP_BY_HOP, ipv6.ROUTING, ipv6.DEST_OPTIONS}


def expected_verdict(ethernet, network, transport, vlan: bool) -> str:
    """What the module must say, from the layers the frame was built from."""
    if ethernet.vlan is not None and not vlan:
        return "vlan"
    if ethernet.ethertype not in (EtherType.IPV4, EtherType.IPV6):
        return "not-ip"
    if not isinstance(network, Ipv4Repr):
        for header in network.extension_headers:
            if header.kind == ipv6.FRAGMENT:
                return "fragment"           # even an atomic one: the OS reassembles
            if header.kind not in WALKED:
                return "not-tcp-udp"
            if header.kind == ipv6.ROUTING and header.body[0] == 0:
                return "ipv6-routing-type-0"    # RFC 5095: malformed, refused on TX
    if not isinstance(transport, (TcpRepr, UdpRepr)):
        return "not-tcp-udp"
    return "ok"


@given(frame_layers(), st.booleans())
def test_classifier_agrees_with_the_stacks_parser(layers, vlan):
    ethernet, network, transport = layers
    frame = build_frame(ethernet, network, transport)
    parsed = parse_frame(frame)
    result = classify(frame, vlan=vlan)
    assert result.verdict == expected_verdict(ethernet, network, transport, vlan)
    if result.verdict != "ok":
        return
    tag = 4 if ethernet.vlan is not None else 0
    ip = parsed.network
    assert (result.family, result.proto) == (ip.src.version,
                                             "tcp" if isinstance(transport, TcpRepr) else "udp")
    assert (result.src, result.src_port) == (ip.src, parsed.transport.src_port)
    assert (result.dst, result.dst_port) == (ip.dst, parsed.transport.dst_port)
    assert result.l3_offset == 14 + tag
    transport_bytes = transport.emit(ip.src, ip.dst)
    assert result.l4_length == len(transport_bytes)
    assert frame[result.l4_offset:result.l4_offset + result.l4_length] == transport_bytes
    assert result.l3_offset + result.l3_length == len(frame)
    if ethernet.vlan is not None:
        assert result.vlan_tci == ethernet.vlan.tci


@given(frame_layers(), st.data())
def test_a_frame_cut_short_is_malformed_to_both(layers, data):
    ethernet, network, transport = layers
    frame = build_frame(ethernet, network, transport)
    if classify(frame, vlan=True).verdict != "ok":
        return
    cut = data.draw(st.integers(0, len(frame) - 1), label="cut")
    assert classify(frame[:cut], vlan=True).malformed
    try:
        parse_frame(frame[:cut])
    except MalformedPacket:
        return
    raise AssertionError(f"the stack's parser took a frame cut at {cut} of {len(frame)}")


def _ipv6_udp_behind_routing(routing_type: int, segments_left: int) -> bytes:
    import struct
    udp = struct.pack("!HHHH", 5000, 80, 12, 0) + b"abcd"
    routing = bytes((17, 2, routing_type, segments_left)) + bytes(4) + bytes(15) + b"\x01"
    ip6 = struct.pack("!IHBB", 0x60000000, len(routing) + len(udp), ipv6.ROUTING, 64)
    ip6 += bytes(15) + b"\x02" + bytes(15) + b"\x01"
    return bytes(6) + b"\x02" + bytes(5) + b"\x86\xdd" + ip6 + routing + udp


def test_routing_header_type_0_is_malformed_whatever_its_segments_left():
    for left in (0, 1):
        result = classify(_ipv6_udp_behind_routing(0, left))
        assert result.verdict == "ipv6-routing-type-0" and result.malformed


def test_other_routing_types_are_walked_over():
    for routing_type in (2, 3, 4, 253):
        result = classify(_ipv6_udp_behind_routing(routing_type, 1))
        assert result.verdict == "ok" and (result.proto, result.dst_port) == ("udp", 80)
