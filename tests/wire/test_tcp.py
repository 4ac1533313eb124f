"""TCP: round trips, known answers, and malformed option encodings."""

import struct
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, strategies as st

from stacks.wire.checksum import transport_checksum
from stacks.wire.errors import MalformedPacket
from stacks.wire.tcp import TcpFlags, TcpRepr

SRC4, DST4 = IPv4Address("192.0.2.1"), IPv4Address("192.0.2.2")
SRC6, DST6 = IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2")

def segment(options: bytes, payload: bytes = b"", src=SRC4, dst=DST4) -> bytes:
    """A segment with hand-written options, padded to a 4-byte boundary, checksum fixed."""
    options += b"\0" * (-len(options) % 4)
    header = struct.pack("!HHIIBBHHH", 1000, 80, 1, 0, (5 + len(options) // 4) << 4, 0x02,
                         512, 0, 0)
    raw = bytearray(header + options + payload)
    struct.pack_into("!H", raw, 16, transport_checksum(src, dst, 6, raw))
    return bytes(raw)


@given(st.binary(max_size=80))
def test_random_bytes_never_crash(data):
    try:
        TcpRepr.parse(data, SRC4, DST4, verify_checksum=False)
    except MalformedPacket:
        pass


def test_segment_len_counts_syn_and_fin():
    base = dict(src_port=1, dst_port=2, seq=0, ack=0, window=0, payload=b"abc")
    assert TcpRepr(flags=TcpFlags.SYN | TcpFlags.FIN, **base).segment_len == 5
    assert TcpRepr(flags=TcpFlags.ACK, **base).segment_len == 3


def test_known_answer_syn_with_linux_options():
    # MSS 1460, SACK-permitted + timestamps, NOP + WS 7: Linux's 20-byte SYN options.
    wire = segment(bytes.fromhex("020405b4" "0402080a0000000100000000" "01030307"))
    parsed = TcpRepr.parse(wire, SRC4, DST4)
    assert (parsed.mss, parsed.sack_permitted, parsed.timestamp, parsed.window_scale) == \
        (1460, True, (1, 0), 7)
    assert parsed.flags == TcpFlags.SYN and parsed.header_len == 40
    assert parsed.emit(SRC4, DST4) == wire


def test_bad_checksum_is_malformed_unless_not_verified():
    wire = bytearray(segment(b"", b"data"))
    wire[-1] ^= 1
    with pytest.raises(MalformedPacket, match="checksum"):
        TcpRepr.parse(bytes(wire), SRC4, DST4)
    assert TcpRepr.parse(bytes(wire), SRC4, DST4, verify_checksum=False).payload == b"dat`"


def test_checksum_uses_the_pseudo_header():
    wire = segment(b"")
    with pytest.raises(MalformedPacket):
        TcpRepr.parse(wire, SRC4, IPv4Address("192.0.2.3"))


@pytest.mark.parametrize("options, message", [
    (b"\x01\x01\x01\x02", "no length byte"),
    (b"\x02\x00", "length 0"),
    (b"\x02\x01", "length 1"),
    (b"\x09\x00", "length 0"),           # unknown kinds need a sane length too
    (b"\x02\x05\x05\xb4\x00", "MSS option has length 5"),
    (b"\x03\x04\x07\x00", "window scale option has length 4"),
    (b"\x04\x03\x00\x00", "SACK-permitted option has length 3"),
    (b"\x08\x08" + bytes(6), "timestamp option has length 8"),
    (b"\x05\x06" + bytes(4), "SACK option has length 6"),          # truncated block
    (b"\x05\x0e" + bytes(12), "SACK option has length 14"),        # 1.5 blocks
    (b"\x01\x01\x05\x0a" + bytes(4), "runs past"),                 # truncated SACK
])
def test_bad_options_are_malformed(options, message):
    with pytest.raises(MalformedPacket, match=message):
        TcpRepr.parse(segment(options), SRC4, DST4)


def test_unknown_options_are_skipped_and_eol_stops():
    # kind 30 (MPTCP) of length 6, then MSS, then EOL followed by garbage.
    wire = segment(b"\x1e\x06abcd" + b"\x02\x04\x02\x18" + b"\x00\xff\xff")
    parsed = TcpRepr.parse(wire, SRC4, DST4)
    assert parsed.mss == 536 and parsed.timestamp is None


@pytest.mark.parametrize("offset_byte, length, message", [
    (0x40, 20, "data offset 4 is below"),
    (0x00, 20, "data offset 0 is below"),
    (0x60, 20, "beyond"),
    (0x50, 19, "shorter than"),
])
def test_bad_header_lengths_are_malformed(offset_byte, length, message):
    raw = bytearray(20)
    raw[12] = offset_byte
    with pytest.raises(MalformedPacket, match=message):
        TcpRepr.parse(bytes(raw[:length]), SRC4, DST4, verify_checksum=False)


def test_emit_rejects_what_cannot_be_encoded():
    base = dict(src_port=1, dst_port=2, seq=0, ack=0, flags=TcpFlags.ACK, window=0)
    for field, value in [("src_port", 70000), ("seq", 2**32), ("mss", 65536),
                         ("window_scale", 256), ("timestamp", (2**32, 0)), ("timestamp", (1,)),
                         ("sack_blocks", ((1, 2**32),))]:
        with pytest.raises(ValueError, match="out of range"):
            TcpRepr(**{**base, field: value}).emit(SRC4, DST4)
        with pytest.raises(ValueError, match="out of range"):
            TcpRepr(**{**base, field: value}).emit_into(bytearray(100), 0, SRC4, DST4)
    with pytest.raises(ValueError, match="at most 40"):
        TcpRepr(**base, timestamp=(1, 2), sack_blocks=((1, 2),) * 4).emit(SRC4, DST4)
    with pytest.raises(ValueError, match="at most 4"):
        TcpRepr(**base, sack_blocks=((1, 2),) * 5).emit(SRC4, DST4)
    with pytest.raises(ValueError, match="families"):
        TcpRepr(**base).emit(SRC4, DST6)
