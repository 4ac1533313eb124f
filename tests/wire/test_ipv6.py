"""IPv6: fixed header, the extension-header walk, fragment fields, bad lengths."""

import struct
from ipaddress import IPv4Address, IPv6Address

import pytest

from stacks.wire import ipv6
from stacks.wire.errors import MalformedPacket
from stacks.wire.ipv6 import Ipv6ExtensionHeader, Ipv6Fragment, Ipv6Packet, Ipv6Repr

SRC, DST = IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2")


def packet(next_header: int, rest: bytes, *, payload_len=None) -> bytes:
    length = len(rest) if payload_len is None else payload_len
    return struct.pack("!IHBB16s16s", 0x60000000, length, next_header, 64, SRC.packed,
                       DST.packed) + rest


def test_fixed_header_known_answer():
    wire = bytes.fromhex("6abcdef0" "0004" "11" "40") + SRC.packed + DST.packed + b"udp!"
    repr_, payload = Ipv6Repr.parse_with_payload(wire + bytes(10))  # link padding ignored
    assert repr_ == Ipv6Repr(SRC, DST, 17, hop_limit=64, traffic_class=0xAB,
                             flow_label=0xCDEF0)
    assert bytes(payload) == b"udp!"
    assert repr_.emit(b"udp!") == wire


def test_walks_the_standard_chain_to_the_upper_layer():
    hop_by_hop = bytes((ipv6.DEST_OPTIONS, 0)) + b"\x01\x04\0\0\0\0"     # PadN
    dest_options = bytes((ipv6.ROUTING, 1)) + bytes(14)
    routing = bytes((ipv6.FRAGMENT, 0)) + bytes(6)
    fragment = bytes((ipv6.AUTH, 0)) + struct.pack("!HI", 0, 0x1234)      # offset 0, M=0
    auth = bytes((6, 2)) + bytes(14)                                      # (2 + 2) * 4 bytes
    chain = hop_by_hop + dest_options + routing + fragment + auth
    packet_ = Ipv6Packet(packet(ipv6.HOP_BY_HOP, chain + b"tcp"))
    assert (packet_.protocol, packet_.payload_offset) == (6, 40 + len(chain))
    assert bytes(packet_.payload) == b"tcp"
    repr_ = Ipv6Repr.parse(packet(ipv6.HOP_BY_HOP, chain + b"tcp"))
    assert [e.kind for e in repr_.extension_headers] == [0, 60, 43, 44, 51]
    assert repr_.fragment == Ipv6Fragment(offset=0, more_fragments=False, ident=0x1234)
    assert repr_.header_len == 40 + len(chain) and repr_.next_header == ipv6.HOP_BY_HOP
    assert repr_.emit(b"tcp") == packet(ipv6.HOP_BY_HOP, chain + b"tcp")


def test_stops_after_a_later_fragment():
    # Offset 8, M=1: what follows is the middle of the datagram, even if it looks
    # like another extension header.
    fragment = bytes((ipv6.DEST_OPTIONS, 0)) + struct.pack("!HI", 8 | 1, 99)
    repr_, payload = Ipv6Repr.parse_with_payload(packet(ipv6.FRAGMENT, fragment + b"\x3c\xff"))
    assert repr_.protocol == ipv6.DEST_OPTIONS and bytes(payload) == b"\x3c\xff"
    assert repr_.fragment == Ipv6Fragment(8, True, 99)


@pytest.mark.parametrize("next_header, rest, message", [
    (ipv6.HOP_BY_HOP, bytes(7), "truncated"),
    (ipv6.DEST_OPTIONS, bytes((6, 1)) + bytes(6), "runs past the payload"),
    (ipv6.AUTH, bytes((6, 1)) + bytes(6), "runs past the payload"),     # AH of 12 bytes
    (ipv6.ROUTING, bytes((ipv6.HOP_BY_HOP, 0)) + bytes(6) + bytes(8), "not the first"),
    (ipv6.FRAGMENT, bytes((6, 0)) + bytes(4), "truncated"),
])
def test_bad_extension_headers_are_malformed(next_header, rest, message):
    with pytest.raises(MalformedPacket, match=message):
        Ipv6Repr.parse(packet(next_header, rest))


@pytest.mark.parametrize("wire, message", [
    (packet(6, b"")[:39], "shorter than the 40-byte header"),
    (b"\x40" + packet(6, b"")[1:], "version field is 4"),
    (packet(6, b"abc", payload_len=4), "payload length 4 is beyond the 3 bytes"),
])
def test_bad_fixed_headers_are_malformed(wire, message):
    with pytest.raises(MalformedPacket, match=message):
        Ipv6Repr.parse(wire)


def test_extension_headers_only_read_inside_the_payload_length():
    # Payload length 0 with a next header of hop-by-hop: the header is not there.
    with pytest.raises(MalformedPacket, match="truncated"):
        Ipv6Repr.parse(packet(ipv6.HOP_BY_HOP, bytes(8), payload_len=0))


def test_no_next_header_and_esp_end_the_walk():
    assert Ipv6Repr.parse(packet(ipv6.NO_NEXT_HEADER, b"")).protocol == 59
    repr_, payload = Ipv6Repr.parse_with_payload(packet(50, b"esp-bytes"))
    assert repr_.protocol == 50 and bytes(payload) == b"esp-bytes"


def test_truncated_parse_for_icmpv6_quotes():
    wire = Ipv6Repr(SRC, DST, 17).emit(bytes(100))[:48]
    with pytest.raises(MalformedPacket):
        Ipv6Repr.parse(wire)
    repr_, payload = Ipv6Repr.parse_truncated(wire)
    assert repr_.protocol == 17 and len(payload) == 8


def test_fragment_header_factory():
    ext = Ipv6ExtensionHeader.fragment(1232, True, 0xDEADBEEF)
    assert ext.as_fragment() == Ipv6Fragment(1232, True, 0xDEADBEEF)
    with pytest.raises(ValueError, match="multiple of 8"):
        Ipv6ExtensionHeader.fragment(7, False, 1)
    with pytest.raises(ValueError, match="out of range"):
        Ipv6ExtensionHeader.fragment(8, False, 2**32)
    with pytest.raises(ValueError, match="not a fragment"):
        Ipv6ExtensionHeader(ipv6.ROUTING, bytes(6)).as_fragment()


@pytest.mark.parametrize("changes, message", [
    (dict(extension_headers=(Ipv6ExtensionHeader(ipv6.ROUTING, bytes(5)),)), "multiple of 8"),
    (dict(extension_headers=(Ipv6ExtensionHeader(ipv6.FRAGMENT, bytes(14)),)), "not 6"),
    (dict(extension_headers=(Ipv6ExtensionHeader(ipv6.AUTH, bytes(4)),)), "multiple of 4"),
    (dict(extension_headers=(Ipv6ExtensionHeader(17, bytes(6)),)), "not an extension header"),
    (dict(extension_headers=(Ipv6ExtensionHeader(ipv6.ROUTING, bytes(6)),
                             Ipv6ExtensionHeader(ipv6.HOP_BY_HOP, bytes(6)))), "first"),
    (dict(protocol=ipv6.FRAGMENT), "put it in extension_headers"),
    (dict(flow_label=1 << 20), "out of range"),
    (dict(hop_limit=256), "out of range"),
    (dict(src=IPv4Address("192.0.2.1")), "must be IPv6Address"),
])
def test_emit_refuses_what_it_cannot_encode(changes, message):
    with pytest.raises(ValueError, match=message):
        Ipv6Repr(**{**dict(src=SRC, dst=DST, protocol=6), **changes}).emit()


def test_emit_refuses_jumbograms():
    with pytest.raises(ValueError, match="jumbogram"):
        Ipv6Repr(SRC, DST, 17).emit(bytes(65536))
