"""Emit then parse gives back the original representation, for every protocol."""

from hypothesis import given, strategies as st

from stacks.wire.arp import ArpRepr
from stacks.wire.ethernet import EthernetRepr
from stacks.wire.frame import Frame, build_frame, parse_frame
from stacks.wire.icmpv4 import Icmpv4Repr
from stacks.wire.icmpv6 import Icmpv6Repr
from stacks.wire.ipv4 import Ipv4Repr
from stacks.wire.ipv6 import Ipv6Repr
from stacks.wire.tcp import TcpRepr
from stacks.wire.udp import UdpRepr

from .strategies import (arp_reprs, ethernet_reprs, frame_layers, icmpv4_reprs, icmpv6_reprs,
                         ipv4_addresses, ipv4_reprs, ipv6_addresses, ipv6_reprs, payloads,
                         tcp_reprs, udp_reprs)

addresses = st.tuples(ipv4_addresses, ipv4_addresses) | st.tuples(ipv6_addresses, ipv6_addresses)


@given(ethernet_reprs(), payloads)
def test_ethernet(repr_, payload):
    wire = repr_.emit(payload)
    parsed, rest = EthernetRepr.parse_with_payload(wire)
    assert (parsed, bytes(rest)) == (repr_, payload)
    assert len(wire) == repr_.header_len + len(payload)


@given(arp_reprs)
def test_arp(repr_):
    assert ArpRepr.parse(repr_.emit()) == repr_


@given(ipv4_reprs(), payloads)
def test_ipv4(repr_, payload):
    wire = repr_.emit(payload)
    parsed, rest = Ipv4Repr.parse_with_payload(wire)
    assert (parsed, bytes(rest)) == (repr_, payload)


@given(ipv6_reprs(), payloads)
def test_ipv6(repr_, payload):
    wire = repr_.emit(payload)
    parsed, rest = Ipv6Repr.parse_with_payload(wire)
    assert (parsed, bytes(rest)) == (repr_, payload)
    assert len(wire) == repr_.header_len + len(payload)


@given(tcp_reprs(), addresses)
def test_tcp(repr_, ends):
    assert TcpRepr.parse(repr_.emit(*ends), *ends) == repr_


@given(udp_reprs, addresses)
def test_udp(repr_, ends):
    assert UdpRepr.parse(repr_.emit(*ends), *ends) == repr_


@given(icmpv4_reprs())
def test_icmpv4(repr_):
    wire = repr_.emit()
    assert len(wire) == repr_.wire_len
    assert Icmpv4Repr.parse(wire) == repr_


@given(icmpv6_reprs(), ipv6_addresses, ipv6_addresses)
def test_icmpv6(repr_, src, dst):
    wire = repr_.emit(src, dst)
    assert len(wire) == repr_.wire_len
    assert Icmpv6Repr.parse(wire, src, dst) == repr_


@given(frame_layers())
def test_whole_frame(layers):
    wire = build_frame(*layers)
    assert parse_frame(wire) == Frame(*layers)
    # one buffer for the whole frame is the same as emitting layer by layer
    ethernet, network, transport = layers
    if transport is None:
        inner = network.emit()
    else:
        if isinstance(transport, Icmpv4Repr):
            segment = transport.emit()
        else:
            segment = transport.emit(network.src, network.dst)
        inner = network.emit(segment)
    assert wire == ethernet.emit(inner)
