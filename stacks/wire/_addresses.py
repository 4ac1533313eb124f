"""IP address objects for raw header bytes, cached.

A stack sees the same few peer addresses over and over, and building an
``ipaddress`` object costs more than parsing the rest of a header.  The
cache is a plain dict, emptied when it grows past a bound, so a flood of
spoofed sources costs memory only up to that bound.
"""

from ipaddress import IPv4Address, IPv6Address

_CACHE_LIMIT = 4096
_v4: dict[bytes, IPv4Address] = {}
_v6: dict[bytes, IPv6Address] = {}


def ipv4_from_bytes(raw: bytes) -> IPv4Address:
    address = _v4.get(raw)
    if address is None:
        if len(_v4) >= _CACHE_LIMIT:
            _v4.clear()
        address = _v4[raw] = IPv4Address(raw)
    return address


def ipv6_from_bytes(raw: bytes) -> IPv6Address:
    address = _v6.get(raw)
    if address is None:
        if len(_v6) >= _CACHE_LIMIT:
            _v6.clear()
        address = _v6[raw] = IPv6Address(raw)
    return address
