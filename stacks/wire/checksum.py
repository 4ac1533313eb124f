"""The Internet checksum (RFC 1071), computed by ``multistack._native``.

The wrappers take any buffer (bytes, bytearray, memoryview) without copying.
"""

from ipaddress import IPv4Address, IPv6Address

from multistack._native import ffi, lib

_from_buffer = ffi.from_buffer
_partial = lib.ms_csum_partial
_fold = lib.ms_csum_fold
_pseudo_v4 = lib.ms_csum_pseudo_v4
_pseudo_v6 = lib.ms_csum_pseudo_v6


def partial_sum(data, initial: int = 0) -> int:
    """One's-complement sum of ``data`` chained onto ``initial`` (not inverted)."""
    return _partial(_from_buffer(data), len(data), initial)


def checksum(data, initial: int = 0) -> int:
    """The final 16-bit checksum of ``data``, chained onto a partial sum."""
    return _fold(_partial(_from_buffer(data), len(data), initial))


def pseudo_header_sum(src: IPv4Address | IPv6Address, dst: IPv4Address | IPv6Address,
                      protocol: int, length: int) -> int:
    """Partial sum of the TCP/UDP/ICMPv6 pseudo-header for ``src`` → ``dst``.

    Computed on the addresses' integer values: a number's one's-complement
    sum of 16-bit words is congruent to it modulo 0xFFFF, which is all the
    checksum needs, and it saves packing the addresses into bytes.  The
    result is at most a few times 0xFFFF; ms_csum_partial folds it.
    """
    if type(src) is not type(dst):
        raise ValueError(f"address families differ: {src} and {dst}")
    try:
        # ``_ip`` is the integer int(address) returns, without a Python-level call.
        return src._ip % 0xFFFF + dst._ip % 0xFFFF + protocol + (length >> 16) + (length & 0xFFFF)
    except AttributeError:
        raise ValueError(f"not IP address objects: {src!r}, {dst!r}") from None


def pseudo_header_sum_native(src: IPv4Address | IPv6Address, dst: IPv4Address | IPv6Address,
                             protocol: int, length: int) -> int:
    """The same sum by the C helpers (folded to 16 bits), kept for cross-checking."""
    if src.version != dst.version:
        raise ValueError(f"address families differ: {src} and {dst}")
    if src.version == 4:
        return _pseudo_v4(src.packed, dst.packed, protocol, length)
    return _pseudo_v6(src.packed, dst.packed, protocol, length)


def transport_checksum(src, dst, protocol: int, segment) -> int:
    """Checksum of ``segment`` (its checksum field zeroed) with its pseudo-header."""
    n = len(segment)
    return _fold(_partial(_from_buffer(segment), n, pseudo_header_sum(src, dst, protocol, n)))


def transport_checksum_ok(src, dst, protocol: int, segment) -> bool:
    """Whether a received segment's checksum field is right (the sum folds to zero)."""
    n = len(segment)
    return _fold(_partial(_from_buffer(segment), n, pseudo_header_sum(src, dst, protocol, n))) == 0
