"""32-bit TCP sequence arithmetic (RFC 9293 section 3.4, RFC 1982).

Inside UTCP every sequence number is an unbounded integer ("absolute"),
so comparisons are plain ``<``; only the wire carries 32-bit values.
:func:`unwrap` turns a wire value into the absolute number nearest a
reference, which is correct as long as the two are less than 2**31 apart —
the same assumption modular comparison makes.
"""

MOD = 1 << 32
MASK = MOD - 1
HALF = 1 << 31


def wrap(value: int) -> int:
    """The 32-bit wire value of an absolute sequence number."""
    return value & MASK


def diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` of two 32-bit sequence numbers, in [-2**31, 2**31)."""
    return ((a - b + HALF) & MASK) - HALF


def unwrap(wire: int, reference: int) -> int:
    """The absolute sequence number whose wire value is ``wire``, nearest ``reference``."""
    return reference + diff(wire, reference & MASK)


def lt(a: int, b: int) -> bool:
    return diff(a, b) < 0


def le(a: int, b: int) -> bool:
    return diff(a, b) <= 0


def gt(a: int, b: int) -> bool:
    return diff(a, b) > 0


def ge(a: int, b: int) -> bool:
    return diff(a, b) >= 0


def add(a: int, n: int) -> int:
    return (a + n) & MASK
