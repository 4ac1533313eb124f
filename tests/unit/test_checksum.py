"""The cffi Internet checksum against a straightforward Python reference."""

import struct

from hypothesis import given, strategies as st

from multistack._native import ffi, lib


def reference_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def native_checksum(data: bytes, initial: int = 0) -> int:
    return lib.ms_csum_fold(lib.ms_csum_partial(ffi.from_buffer(data), len(data), initial))


@given(st.binary(max_size=3000))
def test_matches_reference(data):
    assert native_checksum(data) == reference_checksum(data)


@given(st.binary(max_size=600), st.binary(max_size=600))
def test_partial_sums_chain_on_even_boundaries(a, b):
    if len(a) % 2:
        a += b"\0"
    partial = lib.ms_csum_partial(ffi.from_buffer(a), len(a), 0)
    assert native_checksum(b, partial) == reference_checksum(a + b)


@given(st.binary(min_size=4, max_size=4), st.binary(min_size=4, max_size=4),
       st.integers(0, 255), st.integers(0, 0xFFFF))
def test_ipv4_pseudo_header(src, dst, proto, length):
    pseudo = src + dst + struct.pack("!BBH", 0, proto, length)
    assert lib.ms_csum_fold(lib.ms_csum_pseudo_v4(src, dst, proto, length)) == reference_checksum(pseudo)


@given(st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16),
       st.integers(0, 255), st.integers(0, 0xFFFFFFFF))
def test_ipv6_pseudo_header(src, dst, nh, length):
    pseudo = src + dst + struct.pack("!I3xB", length, nh)
    assert lib.ms_csum_fold(lib.ms_csum_pseudo_v6(src, dst, nh, length)) == reference_checksum(pseudo)


def test_rfc1071_example():
    # RFC 1071 section 3: the sum of these words is 0xddf2 → checksum 0x220d.
    assert native_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
