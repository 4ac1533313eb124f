"""A minimal trio HTTP/1.1 app for the benchmark: ``GET /<n>`` answers n bytes.

Used by bench/http_serve.py only while ``stacks/apps/http_server.py`` (the
project's HTTP server) is not there.  The same handler serves over kernel
sockets and over UTCP, so the two are compared on the same application
code.  One request per connection (the response says Connection: close).
"""

from __future__ import annotations

import trio

MAX_BODY = 1 << 30
_CHUNK = 64 * 1024
_FILLER = bytes(range(256)) * (_CHUNK // 256)


def parse_size(path: str) -> int | None:
    path = path.split("?", 1)[0].rstrip("/")
    last = path.rsplit("/", 1)[-1]
    if last.isdigit() and int(last) <= MAX_BODY:
        return int(last)
    return None


async def handle(stream: trio.abc.Stream) -> None:
    """Serve one request on ``stream`` and close it."""
    try:
        head = b""
        while b"\r\n\r\n" not in head:
            data = await stream.receive_some(4096)
            if not data:
                return
            head += data
            if len(head) > 16384:
                return
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split()
        size = parse_size(parts[1]) if len(parts) == 3 and parts[0] == "GET" else None
        if size is None:
            body = b"not found\n"
            await stream.send_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n"
                                  b"Connection: close\r\n\r\n%s" % (len(body), body))
            return
        header = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n" % size)
        first = min(size, _CHUNK - len(header))
        await stream.send_all(header + _FILLER[:first])
        left = size - first
        while left > 0:
            n = min(left, _CHUNK)
            await stream.send_all(_FILLER[:n])
            left -= n
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
    finally:
        await _close(stream)


async def _close(stream: trio.abc.Stream) -> None:
    try:
        await stream.aclose()
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
