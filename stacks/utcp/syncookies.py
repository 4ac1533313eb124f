"""SYN cookies (RFC 4987 section 3.6): a listener under a SYN flood answers
without keeping state, and rebuilds the connection from the final ACK.

The cookie is our ISN: 5 bits of a 64-second clock, 3 bits indexing the
peer's MSS in a small table, and 24 bits of a keyed hash over the 4-tuple,
the clock and the peer's ISN.  The ACK that completes the handshake must
acknowledge cookie + 1 within two clock ticks.

When the SYN carries timestamps, the options the cookie has no room for
ride in the low six bits of our SYN-ACK's TSval, as Linux does: the
peer's window scale (4 bits, 15 for none) and SACK-permitted (1 bit; the
sixth, ECN in Linux, is never set).  The peer echoes them in the ACK's
TSecr, so a connection rebuilt from a cookie keeps window scaling, SACK
and timestamps.  Without timestamps it has none of them, as in the
classic scheme.  The bits are not covered by the cookie's hash: whoever
can forge them can only choose options for its own connection.
"""

from __future__ import annotations

import hashlib
import os

from . import seq as sq

TICK = 64.0
#: A cookie is checked against this tick and the previous one.
COOKIE_LIFETIME = 2 * TICK
MSS_TABLE = (536, 1200, 1220, 1360, 1400, 1440, 1452, 1460)
_MASK24 = (1 << 24) - 1

OPTION_BITS = 0x3F
NO_WINDOW_SCALE = 0xF
_WINDOW_SCALE_BITS = 0xF
_SACK_BIT = 0x10


class SynCookies:
    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret if secret is not None else os.urandom(32)

    def _hash(self, local_addr, local_port, remote_addr, remote_port, peer_isn: int,
              tick: int) -> int:
        data = b"".join((local_addr.packed, local_port.to_bytes(2, "big"), remote_addr.packed,
                         remote_port.to_bytes(2, "big"), peer_isn.to_bytes(4, "big"),
                         (tick & 31).to_bytes(1, "big")))
        return int.from_bytes(hashlib.blake2b(data, key=self._secret, digest_size=3).digest(),
                              "big")

    @staticmethod
    def mss_index(mss: int | None) -> int:
        """The largest table entry not above the peer's MSS (536 when it sent none)."""
        index = 0
        for i, value in enumerate(MSS_TABLE):
            if mss is not None and value <= mss:
                index = i
        return index

    def make(self, local_addr, local_port, remote_addr, remote_port, peer_isn: int,
             mss: int | None, now: float) -> int:
        tick = int(now / TICK)
        m = self.mss_index(mss)
        h = self._hash(local_addr, local_port, remote_addr, remote_port, peer_isn, tick)
        return ((tick & 31) << 27) | (m << 24) | h

    def check(self, local_addr, local_port, remote_addr, remote_port, peer_isn: int,
              cookie: int, now: float) -> int | None:
        """The MSS encoded in a valid, fresh cookie; None for anything else."""
        tick = int(now / TICK)
        cookie_tick = cookie >> 27
        for age in (0, 1):                      # this tick or the previous one
            if (tick - age) & 31 != cookie_tick:
                continue
            h = self._hash(local_addr, local_port, remote_addr, remote_port, peer_isn, tick - age)
            if h == cookie & _MASK24:
                return MSS_TABLE[(cookie >> 24) & 7]
        return None


def peer_isn_of_ack(seq: int) -> int:
    """The peer's ISN, from the sequence number of its handshake-completing ACK."""
    return sq.add(seq, -1)


def encode_options(tsval: int, window_scale: int | None, sack_permitted: bool) -> int:
    """``tsval`` with the peer's SYN options in its low bits, never later than ``tsval``.

    ``window_scale`` is the peer's shift (0..14), None when it is not used.
    """
    if window_scale is not None and not 0 <= window_scale < NO_WINDOW_SCALE:
        raise ValueError(f"window scale {window_scale} does not fit a SYN cookie's 4 bits")
    bits = (NO_WINDOW_SCALE if window_scale is None else window_scale) \
        | (_SACK_BIT if sack_permitted else 0)
    encoded = (tsval & ~OPTION_BITS & sq.MASK) | bits
    if sq.gt(encoded, tsval):       # our clock must not seem to run backwards later
        encoded = sq.add(encoded, -(OPTION_BITS + 1))
    return encoded


def decode_options(tsecr: int) -> tuple[int | None, bool] | None:
    """(peer's window scale or None, SACK-permitted) from an echoed cookie TSval;
    None when it has a bit :func:`encode_options` never sets."""
    bits = tsecr & OPTION_BITS
    if bits & ~(_WINDOW_SCALE_BITS | _SACK_BIT):
        return None
    window_scale = bits & _WINDOW_SCALE_BITS
    return (None if window_scale == NO_WINDOW_SCALE else window_scale), bool(bits & _SACK_BIT)
