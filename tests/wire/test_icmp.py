"""ICMP and ICMPv6: known answers, errors with their quotes, neighbour discovery."""

import struct
from ipaddress import IPv4Address, IPv6Address

import pytest

from stacks.wire.checksum import checksum, transport_checksum
from stacks.wire.errors import MalformedPacket
from stacks.wire.ethernet import MacAddress
from stacks.wire.icmpv4 import DestUnreachable, Icmpv4Repr, Icmpv4Type
from stacks.wire.icmpv6 import NA_OVERRIDE, NA_SOLICITED, Icmpv6Repr, Icmpv6Type
from stacks.wire.ipv4 import Ipv4Repr
from stacks.wire.ipv6 import Ipv6Repr
from stacks.wire.tcp import TcpFlags, TcpRepr
from stacks.wire.udp import UdpRepr

SRC4, DST4 = IPv4Address("192.0.2.1"), IPv4Address("198.51.100.2")
SRC6, DST6 = IPv6Address("fe80::1"), IPv6Address("fe80::2")
MAC = MacAddress("02:00:00:00:00:01")


def with_checksum(raw: bytes, at: int = 2) -> bytes:
    raw = bytearray(raw)
    struct.pack_into("!H", raw, at, checksum(raw))
    return bytes(raw)


def test_echo_request_known_answer():
    wire = with_checksum(bytes.fromhex("0800000012340007") + b"ping")
    repr_ = Icmpv4Repr.parse(wire)
    assert repr_ == Icmpv4Repr.echo_request(0x1234, 7, b"ping")
    assert repr_.emit() == wire and not repr_.is_error


def test_fragmentation_needed_exposes_mtu_and_quote():
    original = Ipv4Repr(DST4, SRC4, 6, ident=9, dont_fragment=True).emit(
        TcpRepr(443, 50000, 1000, 0, TcpFlags.ACK, 100, payload=bytes(1400)).emit(DST4, SRC4))
    quote = original[:28]  # the IP header and 8 bytes, as RFC 792 asks
    wire = with_checksum(bytes.fromhex("0304000000000578") + quote)
    repr_ = Icmpv4Repr.parse(wire)
    assert repr_ == Icmpv4Repr.dest_unreachable(DestUnreachable.FRAGMENTATION_NEEDED, quote, 1400)
    assert repr_.is_error and repr_.emit() == wire
    quoted = repr_.quoted
    assert (quoted.ip.src, quoted.ip.dst, quoted.protocol) == (DST4, SRC4, 6)
    assert (quoted.src_port, quoted.dst_port) == (443, 50000)
    assert quoted.payload == original[20:28]


def test_time_exceeded_quote_with_too_little_for_ports():
    quote = Ipv4Repr(SRC4, DST4, 17, ttl=1).emit(bytes(8))[:22]
    repr_ = Icmpv4Repr.parse(Icmpv4Repr.time_exceeded(0, quote).emit())
    assert repr_.type == Icmpv4Type.TIME_EXCEEDED
    assert repr_.quoted.src_port is None and repr_.quoted.dst_port is None


def test_bad_quote_is_malformed_when_read():
    repr_ = Icmpv4Repr.parse(Icmpv4Repr.dest_unreachable(3, b"\x45garbage").emit())
    with pytest.raises(MalformedPacket, match="IPv4"):
        repr_.quoted
    with pytest.raises(ValueError, match="not an error"):
        Icmpv4Repr.echo_reply(1, 1).quoted


def test_parameter_problem_pointer_and_other_types():
    repr_ = Icmpv4Repr(Icmpv4Type.PARAMETER_PROBLEM, 0, pointer=20, data=b"q")
    assert Icmpv4Repr.parse(repr_.emit()) == repr_
    timestamp = with_checksum(bytes.fromhex("0d00000000010002") + bytes(12))
    other = Icmpv4Repr.parse(timestamp)
    assert other.type == 13 and other.data == timestamp[4:] and other.emit() == timestamp


@pytest.mark.parametrize("wire, message", [
    (b"\x08\x00\xf7", "shorter than the 4-byte header"),
    (with_checksum(b"\x08\x00\x00\x00\x00\x01\x00"), "type 8 needs 8 bytes"),
    (with_checksum(b"\x03\x04\x00\x00\x00\x00\x05"), "type 3 needs 8 bytes"),
    (b"\x08\x00\x00\x00\x00\x01\x00\x01", "bad checksum"),
])
def test_bad_icmp_is_malformed(wire, message):
    with pytest.raises(MalformedPacket, match=message):
        Icmpv4Repr.parse(wire)


def icmpv6(raw: bytes, src=SRC6, dst=DST6) -> bytes:
    raw = bytearray(raw)
    struct.pack_into("!H", raw, 2, transport_checksum(src, dst, 58, raw))
    return bytes(raw)


def test_icmpv6_echo_known_answer():
    wire = icmpv6(bytes.fromhex("8000000000050006") + b"hello")
    repr_ = Icmpv6Repr.parse(wire, SRC6, DST6)
    assert repr_ == Icmpv6Repr.echo_request(5, 6, b"hello")
    assert repr_.emit(SRC6, DST6) == wire
    with pytest.raises(MalformedPacket, match="bad checksum"):
        Icmpv6Repr.parse(wire, SRC6, IPv6Address("fe80::3"))


def test_packet_too_big_exposes_mtu_and_quote():
    original = Ipv6Repr(DST6, SRC6, 17).emit(UdpRepr(53, 5353, bytes(1500)).emit(DST6, SRC6))
    quote = original[:1232]
    repr_ = Icmpv6Repr.parse(Icmpv6Repr.packet_too_big(1280, quote).emit(SRC6, DST6), SRC6, DST6)
    assert repr_.type == Icmpv6Type.PACKET_TOO_BIG and repr_.mtu == 1280
    quoted = repr_.quoted
    assert (quoted.ip.src, quoted.protocol, quoted.src_port, quoted.dst_port) == \
        (DST6, 17, 53, 5353)


def test_neighbor_solicitation_known_answer():
    target = IPv6Address("fe80::2")
    wire = icmpv6(bytes.fromhex("8700000000000000") + target.packed + b"\x01\x01" + MAC,
                  dst=IPv6Address("ff02::1:ff00:2"))
    repr_ = Icmpv6Repr.parse(wire, SRC6, IPv6Address("ff02::1:ff00:2"))
    assert repr_ == Icmpv6Repr.neighbor_solicit(target, MAC)
    assert repr_.emit(SRC6, IPv6Address("ff02::1:ff00:2")) == wire


def test_neighbor_advertisement_flags_and_unknown_options():
    target = IPv6Address("fe80::2")
    mtu_option = bytes.fromhex("0501000000000500")  # type 5 (MTU), skipped
    wire = icmpv6(bytes.fromhex("8800000060000000") + target.packed + mtu_option
                  + b"\x02\x01" + MAC)
    repr_ = Icmpv6Repr.parse(wire, SRC6, DST6)
    assert repr_ == Icmpv6Repr.neighbor_advert(target, NA_SOLICITED | NA_OVERRIDE, MAC)


@pytest.mark.parametrize("raw, message", [
    (b"\x80\x00", "shorter than the 4-byte header"),
    (bytes.fromhex("80000000000500"), "type 128 needs 8 bytes"),
    (bytes.fromhex("87000000") + bytes(19), "type 135 needs 24 bytes"),
    (bytes.fromhex("8700000000000000") + bytes(16) + b"\x01\x00" + bytes(6), "length 0"),
    (bytes.fromhex("8700000000000000") + bytes(16) + b"\x01\x02" + bytes(6), "runs past"),
    (bytes.fromhex("8700000000000000") + bytes(16) + b"\x01", "truncated"),
    (bytes.fromhex("8700000000000000") + bytes(16) + b"\x01\x02" + bytes(14), "only Ethernet"),
])
def test_bad_icmpv6_is_malformed(raw, message):
    with pytest.raises(MalformedPacket, match=message):
        Icmpv6Repr.parse(icmpv6(raw) if len(raw) >= 4 else raw, SRC6, DST6)


def test_icmpv6_emit_refuses_what_it_cannot_encode():
    with pytest.raises(ValueError, match="IPv6Address target"):
        Icmpv6Repr(Icmpv6Type.NEIGHBOR_SOLICIT).emit(SRC6, DST6)
    with pytest.raises(ValueError, match="unknown bits"):
        Icmpv6Repr.neighbor_advert(DST6, 1).emit(SRC6, DST6)
    with pytest.raises(ValueError, match="out of range"):
        Icmpv6Repr.echo_request(65536, 0).emit(SRC6, DST6)
    with pytest.raises(ValueError, match="6 bytes"):
        Icmpv6Repr.neighbor_solicit(DST6, b"\0" * 5).emit(SRC6, DST6)


@pytest.mark.parametrize("message, missing", [
    (Icmpv4Repr(Icmpv4Type.ECHO_REQUEST, 0, next_hop_mtu=1400), "no next_hop_mtu"),
    (Icmpv4Repr(Icmpv4Type.TIME_EXCEEDED, 0, ident=3), "no ident"),
    (Icmpv4Repr(13, 0, pointer=1), "no pointer"),
])
def test_icmp_emit_refuses_fields_its_type_does_not_carry(message, missing):
    with pytest.raises(ValueError, match=missing):
        message.emit()


@pytest.mark.parametrize("message, missing", [
    (Icmpv6Repr(Icmpv6Type.ECHO_REQUEST, 0, mtu=1280), "no mtu"),
    (Icmpv6Repr(Icmpv6Type.NEIGHBOR_SOLICIT, 0, target=SRC6, nd_flags=NA_SOLICITED),
     "no nd_flags"),
    (Icmpv6Repr(Icmpv6Type.NEIGHBOR_ADVERT, 0, target=SRC6, data=b"x"), "no data"),
    (Icmpv6Repr(Icmpv6Type.PACKET_TOO_BIG, 0, target=SRC6), "no target"),
])
def test_icmpv6_emit_refuses_fields_its_type_does_not_carry(message, missing):
    with pytest.raises(ValueError, match=missing):
        message.emit(SRC6, DST6)
