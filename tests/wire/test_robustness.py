"""Untrusted bytes: every parser returns a value or raises MalformedPacket, nothing else.

Random bytes exercise the first length checks; mutations of valid frames
(flipped, inserted and deleted bytes, truncation) get past them into the
deeper layers, with checksum verification off so that they do.
"""

from ipaddress import IPv4Address, IPv6Address

from hypothesis import given, strategies as st

from stacks.wire.arp import ArpRepr
from stacks.wire.errors import MalformedPacket
from stacks.wire.ethernet import EthernetRepr
from stacks.wire.frame import build_frame, parse_frame
from stacks.wire.icmpv4 import Icmpv4Repr
from stacks.wire.icmpv6 import Icmpv6Repr
from stacks.wire.ipv4 import Ipv4Repr, iter_options
from stacks.wire.ipv6 import Ipv6Repr
from stacks.wire.quoted import parse_quoted_v4, parse_quoted_v6
from stacks.wire.tcp import TcpRepr
from stacks.wire.udp import UdpRepr

from .strategies import frame_layers, ipv4_reprs, ipv6_reprs, tcp_reprs, udp_reprs

V4 = IPv4Address("198.51.100.1"), IPv4Address("198.51.100.2")
V6 = IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2")

PARSERS = [
    EthernetRepr.parse, ArpRepr.parse, Ipv4Repr.parse, Ipv6Repr.parse, parse_frame,
    lambda b: Ipv4Repr.parse(b, verify_checksum=False),
    lambda b: parse_frame(b, verify_checksums=False),
    lambda b: TcpRepr.parse(b, *V4, verify_checksum=False), lambda b: TcpRepr.parse(b, *V6),
    lambda b: UdpRepr.parse(b, *V4, verify_checksum=False), lambda b: UdpRepr.parse(b, *V6),
    lambda b: Icmpv4Repr.parse(b, verify_checksum=False),
    lambda b: Icmpv6Repr.parse(b, *V6, verify_checksum=False),
    parse_quoted_v4, parse_quoted_v6, iter_options,
]


def parse_or_malformed(parser, data):
    """The parser's result, or None if it raised MalformedPacket; anything else propagates."""
    try:
        return parser(data)
    except MalformedPacket as exc:
        assert str(exc), "every MalformedPacket says what is wrong"
        return None


@st.composite
def mutated(draw, wire: bytes) -> bytes:
    data = bytearray(wire)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        if not data and action != "insert":
            continue
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if action == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "set":
            data[at] = draw(st.sampled_from([0, 1, 2, 0x7F, 0x80, 0xFF]))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif action == "delete":
            del data[at:at + draw(st.integers(1, 4))]
        else:
            del data[at:]
    return bytes(data)


@given(st.binary(max_size=128))
def test_random_bytes(data):
    for parser in PARSERS:
        parse_or_malformed(parser, data)
        parse_or_malformed(parser, memoryview(data))


@given(st.data())
def test_mutated_frames(data):
    wire = build_frame(*data.draw(frame_layers()))
    bad = data.draw(mutated(wire))
    parse_or_malformed(parse_frame, bad)
    frame = parse_or_malformed(lambda b: parse_frame(b, verify_checksums=False), bad)
    if frame is None:
        return
    # Whatever parses re-emits to something that parses the same (or is refused
    # by emit with ValueError, like options that only fit in their original order).
    try:
        rebuilt = frame.emit()
    except ValueError:
        return
    assert parse_frame(rebuilt) == frame
    transport = frame.transport
    if isinstance(transport, (Icmpv4Repr, Icmpv6Repr)) and transport.is_error:
        parse_or_malformed(lambda _: transport.quoted, None)


@given(st.data())
def test_mutated_transport_segments(data):
    v6 = data.draw(st.booleans())
    ends = V6 if v6 else V4
    repr_ = data.draw(tcp_reprs() | udp_reprs)
    bad = data.draw(mutated(repr_.emit(*ends)))
    parse_or_malformed(lambda b: type(repr_).parse(b, *ends, verify_checksum=False), bad)


@st.composite
def quotes(draw):
    """The start of an IP packet, as an ICMP error quotes it, then mutated."""
    v6 = draw(st.booleans())
    ends = V6 if v6 else V4
    segment = draw(tcp_reprs() | udp_reprs).emit(*ends)
    ip = draw(ipv6_reprs(fragments=False) if v6 else ipv4_reprs(fragments=False))
    wire = ip.emit(segment)
    return v6, draw(mutated(wire[:draw(st.integers(0, len(wire)))]))


@given(quotes())
def test_mutated_quotes_in_icmp_errors(quote):
    v6, data = quote
    if v6:
        message = Icmpv6Repr.packet_too_big(1280, data)
        parsed = Icmpv6Repr.parse(message.emit(*V6), *V6)
    else:
        message = Icmpv4Repr.dest_unreachable(4, data, next_hop_mtu=1400)
        parsed = Icmpv4Repr.parse(message.emit())
    assert parsed == message
    quoted = parse_or_malformed(lambda _: parsed.quoted, None)
    if quoted is not None:
        assert quoted.src_port is None or 0 <= quoted.src_port < 65536
