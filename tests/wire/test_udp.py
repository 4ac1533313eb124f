"""UDP: known answers, the zero checksum, bad lengths."""

import struct
from ipaddress import IPv4Address, IPv6Address

import pytest

from stacks.wire.checksum import transport_checksum
from stacks.wire.errors import MalformedPacket
from stacks.wire.udp import UdpRepr

SRC4, DST4 = IPv4Address("192.0.2.1"), IPv4Address("192.0.2.2")
SRC6, DST6 = IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2")


def datagram(payload: bytes, *, length=None, checksum=None, src=SRC4, dst=DST4) -> bytes:
    raw = bytearray(struct.pack("!HHHH", 5353, 53, 8 + len(payload) if length is None else length,
                                0) + payload)
    value = transport_checksum(src, dst, 17, raw) if checksum is None else checksum
    struct.pack_into("!H", raw, 6, value)
    return bytes(raw)


def test_known_answer_odd_length():
    wire = datagram(b"abc")
    assert UdpRepr.parse(wire, SRC4, DST4) == UdpRepr(5353, 53, b"abc")
    assert UdpRepr(5353, 53, b"abc").emit(SRC4, DST4) == wire


def test_bytes_past_the_length_field_are_not_payload():
    wire = datagram(b"abc")
    assert UdpRepr.parse(wire + b"pad", SRC4, DST4).payload == b"abc"


def test_zero_checksum_is_allowed_over_ipv4_only():
    assert UdpRepr.parse(datagram(b"x", checksum=0), SRC4, DST4).payload == b"x"
    wire6 = datagram(b"x", checksum=0, src=SRC6, dst=DST6)
    with pytest.raises(MalformedPacket, match="zero checksum over IPv6"):
        UdpRepr.parse(wire6, SRC6, DST6)
    assert UdpRepr.parse(wire6, SRC6, DST6, verify_checksum=False).payload == b"x"


def test_computed_zero_checksum_is_sent_as_all_ones():
    # Find a payload whose checksum computes to zero, then check emit writes 0xFFFF.
    for n in range(0x10000):
        payload = struct.pack("!H", n)
        if transport_checksum(SRC4, DST4, 17, datagram(payload, checksum=0)) == 0:
            break
    else:
        pytest.fail("no two-byte payload has a zero checksum")
    wire = UdpRepr(5353, 53, payload).emit(SRC4, DST4)
    assert wire[6:8] == b"\xff\xff"
    assert UdpRepr.parse(wire, SRC4, DST4).payload == payload


@pytest.mark.parametrize("wire, message", [
    (bytes(7), "shorter than the 8-byte header"),
    (datagram(b"abc", length=7), "length field 7 is below 8"),
    (datagram(b"abc", length=12), "length field 12 is beyond the 11-byte buffer"),
    (datagram(b"abc", checksum=0x1234), "bad checksum"),
])
def test_bad_datagrams_are_malformed(wire, message):
    with pytest.raises(MalformedPacket, match=message):
        UdpRepr.parse(wire, SRC4, DST4)


def test_emit_refuses_what_it_cannot_encode():
    with pytest.raises(ValueError, match="out of range"):
        UdpRepr(1, 65536).emit(SRC4, DST4)
    with pytest.raises(ValueError, match="out of range"):
        UdpRepr(1, 2, bytes(65528)).emit(SRC6, DST6)
