"""Initial sequence numbers, RFC 6528: ISN = M + F(4-tuple, secret).

M is a clock ticking every 4 microseconds; F a keyed hash of the
connection's addresses and ports, so sequence numbers of one 4-tuple keep
advancing while those of different 4-tuples are unrelated and unguessable.
The clock is passed in, never read.

The timestamp clock's offset (RFC 7323 7.1) comes from the same secret,
keyed by the address pair only, as Linux does: the host's clock is not
exposed, and TSvals to one peer keep advancing from connection to
connection, which RFC 6191 needs to reopen a port the peer holds in
TIME-WAIT.
"""

from __future__ import annotations

import hashlib
import os

from .seq import MASK


class IsnGenerator:
    TICK = 4e-6

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret if secret is not None else os.urandom(32)
        if not 16 <= len(self._secret) <= 64:
            raise ValueError("the ISN secret must be 16 to 64 bytes")

    def isn(self, local_addr, local_port: int, remote_addr, remote_port: int, now: float) -> int:
        tuple_bytes = b"".join((local_addr.packed, local_port.to_bytes(2, "big"),
                                remote_addr.packed, remote_port.to_bytes(2, "big")))
        digest = hashlib.blake2b(tuple_bytes, key=self._secret, digest_size=4).digest()
        clock = int(now / self.TICK)
        return (clock + int.from_bytes(digest, "big")) & MASK

    def ts_offset(self, local_addr, remote_addr) -> int:
        """The TSval offset for connections between these two addresses."""
        digest = hashlib.blake2b(b"".join((b"tsval", local_addr.packed, remote_addr.packed)),
                                 key=self._secret, digest_size=4).digest()
        return int.from_bytes(digest, "big")
