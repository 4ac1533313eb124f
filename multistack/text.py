"""Text for one line of output: how the library and ``multistack-ctl`` show
names that a user typed or the kernel reported (interface names, commands).

A Linux interface name may hold any byte but NUL, ``/``, ``:`` and white
space, and a command name (``/proc/PID/comm``) any byte but NUL, so either
can carry a newline or a terminal escape.
"""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    o = ord(ch)
    if 0xDC80 <= o <= 0xDCFF:          # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{o - 0xDC00:02x}"
    if o < 0x100:
        return f"\\x{o:02x}"
    if o < 0x10000:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def one_line(text: str) -> str:
    """``text`` with every character that is not printable (controls, line
    and paragraph separators, undecodable bytes) backslash-escaped."""
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def printable(name: str) -> str:
    """A name as one unambiguous printable word: like :func:`one_line`, and
    a backslash is doubled so that an escape cannot be mistaken for one."""
    return one_line(name.replace("\\", "\\\\"))
