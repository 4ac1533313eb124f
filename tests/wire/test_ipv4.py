"""IPv4: known answers, header checksum, options, fragments, bad lengths."""

import struct
from ipaddress import IPv4Address, IPv6Address

import pytest

from stacks.wire.checksum import checksum
from stacks.wire.errors import MalformedPacket
from stacks.wire.ipv4 import Ipv4Repr, iter_options

SRC, DST = IPv4Address("192.0.2.1"), IPv4Address("198.51.100.7")

# Wikipedia's IPv4 header checksum example: the checksum field is 0xb861.
KNOWN = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
KNOWN_CHECKSUM = 0xB861


def header(*, version_ihl=0x45, total=20, options=b"", fix_checksum=True) -> bytearray:
    raw = bytearray(struct.pack("!BBHHHBBH4s4s", version_ihl, 0, total, 1, 0, 64, 6, 0,
                                SRC.packed, DST.packed) + options)
    if fix_checksum:
        struct.pack_into("!H", raw, 10, checksum(raw[:(version_ihl & 15) * 4]))
    return raw


def test_known_checksum():
    wire = bytearray(KNOWN)
    struct.pack_into("!H", wire, 10, KNOWN_CHECKSUM)
    repr_, payload = Ipv4Repr.parse_with_payload(bytes(wire) + bytes(0x73 - 20))
    assert repr_ == Ipv4Repr(IPv4Address("192.168.0.1"), IPv4Address("192.168.0.199"), 17,
                             ttl=64, dont_fragment=True)
    assert len(payload) == 0x73 - 20
    assert repr_.emit(bytes(0x73 - 20))[:20] == bytes(wire)


def test_bad_header_checksum():
    wire = header()
    wire[8] -= 1  # TTL changed without fixing the checksum
    with pytest.raises(MalformedPacket, match="bad header checksum"):
        Ipv4Repr.parse(bytes(wire))
    assert Ipv4Repr.parse(bytes(wire), verify_checksum=False).ttl == 63


def test_link_padding_after_total_length_is_not_payload():
    wire = header(total=24) + b"data" + bytes(22)
    repr_, payload = Ipv4Repr.parse_with_payload(bytes(wire))
    assert bytes(payload) == b"data"


@pytest.mark.parametrize("raw, message", [
    (header()[:19], "shorter than the 20-byte header"),
    (header(version_ihl=0x65), "version field is 6"),
    (header(version_ihl=0x44), "IHL 4 is below the minimum of 5"),
    (header(version_ihl=0x40), "IHL 0 is below"),
    (header(version_ihl=0x46), "IHL 6 \\(24 bytes\\) is beyond the 20-byte buffer"),
    (header(total=19), "total length 19 is shorter than the 20-byte header"),
    (header(total=21), "total length 21 is beyond the 20-byte buffer"),
    (header(version_ihl=0x46, total=24, options=b"\x07\x00\x00\x00"), "option 7 has length 0"),
    (header(version_ihl=0x46, total=24, options=b"\x07\x01\x00\x00"), "option 7 has length 1"),
    (header(version_ihl=0x46, total=24, options=b"\x01\x01\x01\x44"), "has no length byte"),
    (header(version_ihl=0x46, total=24, options=b"\x44\x08\x05\x00"), "length 8, outside 2..4"),
])
def test_bad_headers_are_malformed(raw, message):
    with pytest.raises(MalformedPacket, match=message):
        Ipv4Repr.parse(bytes(raw))


def test_options_are_kept_raw_and_listed():
    # Router alert (148, length 4), then NOP, then EOL padding.
    options = b"\x94\x04\x00\x00\x01\x00\x00\x00"
    repr_ = Ipv4Repr.parse(bytes(header(version_ihl=0x47, total=28, options=options)))
    assert repr_.options == options and repr_.header_len == 28
    assert iter_options(repr_.options) == [(148, b"\x00\x00")]
    assert Ipv4Repr.parse(repr_.emit()) == repr_


def test_fragment_fields():
    repr_ = Ipv4Repr(SRC, DST, 17, ident=0xBEEF, more_fragments=True, fragment_offset=1480)
    wire = repr_.emit(b"x" * 8)
    assert struct.unpack_from("!HH", wire, 4) == (0xBEEF, 0x2000 | 185)
    assert Ipv4Repr.parse(wire) == repr_ and repr_.is_fragment
    assert not Ipv4Repr(SRC, DST, 17, dont_fragment=True).is_fragment


def test_truncated_parse_for_icmp_quotes():
    wire = Ipv4Repr(SRC, DST, 6).emit(bytes(100))[:28]
    with pytest.raises(MalformedPacket, match="beyond"):
        Ipv4Repr.parse(wire)
    repr_, payload = Ipv4Repr.parse_truncated(wire)
    assert repr_.protocol == 6 and len(payload) == 8


@pytest.mark.parametrize("changes, message", [
    (dict(options=b"\x01"), "multiple of 4"),
    (dict(options=b"\x01" * 44), "at most 40"),
    (dict(fragment_offset=12), "not a multiple of 8"),
    (dict(fragment_offset=8 * 8192), "out of range"),
    (dict(dscp=64), "out of range"),
    (dict(ttl=256), "out of range"),
    (dict(src=IPv6Address("::1")), "must be IPv4Address"),
])
def test_emit_refuses_what_it_cannot_encode(changes, message):
    with pytest.raises(ValueError, match=message):
        Ipv4Repr(**{**dict(src=SRC, dst=DST, protocol=6), **changes}).emit()


def test_emit_refuses_oversized_payload():
    with pytest.raises(ValueError, match="out of range"):
        Ipv4Repr(SRC, DST, 6).emit(bytes(65516))
