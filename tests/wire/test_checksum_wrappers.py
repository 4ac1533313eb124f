"""stacks.wire.checksum: the pseudo-header sum taken on integers agrees with the C helpers."""

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, strategies as st

from stacks.wire.checksum import (checksum, pseudo_header_sum, pseudo_header_sum_native,
                                  transport_checksum, transport_checksum_ok)

from .strategies import ipv4_addresses, ipv6_addresses

address_pairs = st.tuples(ipv4_addresses, ipv4_addresses) | \
    st.tuples(ipv6_addresses, ipv6_addresses)


@given(address_pairs, st.sampled_from([6, 17, 58]), st.binary(max_size=200))
def test_python_pseudo_sum_gives_the_native_checksum(ends, protocol, segment):
    n = len(segment)
    ours = checksum(segment, pseudo_header_sum(*ends, protocol, n))
    native = checksum(segment, pseudo_header_sum_native(*ends, protocol, n))
    assert ours == native


@given(address_pairs, st.binary(min_size=2, max_size=200))
def test_a_segment_carrying_its_checksum_verifies(ends, segment):
    raw = bytearray(segment)
    raw[0:2] = b"\0\0"
    value = transport_checksum(*ends, 17, raw)
    raw[0:2] = value.to_bytes(2, "big")
    assert transport_checksum_ok(*ends, 17, raw)


def test_extreme_addresses():
    # All-ones and all-zero words: where "negative zero" would show up if folding were wrong.
    for src, dst in [(IPv4Address("255.255.255.255"), IPv4Address("0.0.0.0")),
                     (IPv4Address("255.255.0.0"), IPv4Address("0.0.255.255")),
                     (IPv6Address("ffff::ffff"), IPv6Address("::"))]:
        for segment in (b"", bytes(8), b"\xff" * 8):
            n = len(segment)
            assert checksum(segment, pseudo_header_sum(src, dst, 17, n)) == \
                checksum(segment, pseudo_header_sum_native(src, dst, 17, n))


def test_mixed_families_are_refused():
    with pytest.raises(ValueError, match="families differ"):
        pseudo_header_sum(IPv4Address("192.0.2.1"), IPv6Address("::1"), 6, 20)


def test_strings_are_not_addresses():
    with pytest.raises(ValueError, match="not IP address objects"):
        pseudo_header_sum("192.0.2.1", "192.0.2.2", 6, 20)
