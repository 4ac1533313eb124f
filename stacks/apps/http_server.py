"""An HTTP/1.1 server that serves bodies of a requested size.

    GET /bytes/<n>   (or GET /<n>)   200, n bytes of a fixed pattern
    GET /            200, a short text naming the routes
    HEAD             the same headers, no body

It is a trio application on any :class:`trio.abc.HalfCloseableStream`
listener, so the same code runs on UTCP (``stacks.utcp.trio_api``) and on
trio's kernel sockets.  HTTP/1.1 connections are kept alive unless the
client says ``Connection: close``; HTTP/1.0 ones close after one response.
Request bodies (``Content-Length``) are read and discarded; chunked request
bodies are refused (501).  Under :func:`serve` (and from the command line)
a connection on which nothing moves for ``idle_timeout`` seconds (no
request, a stalled head or body, a client that stops reading) is closed, as
nginx's header, keep-alive and send timeouts do: a client that vanished
without a trace holds no task forever.  :func:`handle` alone applies none
unless given one (the benchmarks run it bare on both stacks: the watch costs
a kernel-socket server about a tenth of its CPU per short request).

    python -m stacks.apps.http_server --port 8080        # kernel sockets
"""

from __future__ import annotations

import argparse
import functools

import trio

MAX_BODY = 1 << 30
MAX_HEAD = 16 * 1024
#: Seconds a connection may go without a byte moving either way.
IDLE_TIMEOUT = 60.0
_CHUNK = 64 * 1024
#: Body byte i is i mod 256, so a client can check what it got.
_PATTERN = bytes(range(256)) * (_CHUNK // 256 + 1)
_INDEX = b"MultiStack HTTP server: GET /bytes/<n> answers n bytes.\n"
_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
            413: b"Payload Too Large", 431: b"Request Header Fields Too Large",
            501: b"Not Implemented", 505: b"HTTP Version Not Supported"}


def expected_body(size: int) -> bytes:
    """The body ``GET /bytes/<size>`` answers, for clients that check what they got."""
    return (_PATTERN * (size // len(_PATTERN) + 1))[:size] if size > len(_PATTERN) \
        else _PATTERN[:size]


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Request:
    __slots__ = ("method", "target", "version", "headers")

    def __init__(self, method: str, target: str, version: str, headers: dict[str, str]) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


def parse_head(head: bytes) -> Request:
    """Parse the request line and headers (without the final blank line)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise BadRequest(400, "undecodable request head")
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(505 if version.startswith("HTTP/") else 400, f"version {version!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, f"malformed header line {line!r}")
        headers[name.lower()] = value.strip()
    return Request(method, target, version, headers)


def body_size(target: str) -> int | None:
    """The size a target asks for: /bytes/<n> or /<n>; None for anything else."""
    path = target.split("?", 1)[0].rstrip("/")
    prefix, _, last = path.rpartition("/")
    if prefix not in ("", "/bytes") or not last.isdigit():
        return None
    size = int(last)
    return size if size <= MAX_BODY else None


class _Reader:
    """Buffered reading of request heads and bodies from a stream."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buf = bytearray()

    async def head(self) -> bytes | None:
        """The next request head, or None at a clean end of stream between requests."""
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end > MAX_HEAD:
                raise BadRequest(431, "request head too long")
            if end >= 0:
                head = bytes(self._buf[:end])
                del self._buf[:end + 4]
                return head
            if len(self._buf) > MAX_HEAD:
                raise BadRequest(431, "request head too long")
            data = await self._stream.receive_some(_CHUNK)
            if not data:
                if self._buf.strip():
                    raise BadRequest(400, "connection closed inside a request head")
                return None
            self._buf += data

    async def discard(self, n: int) -> None:
        take = min(n, len(self._buf))
        del self._buf[:take]
        n -= take
        while n > 0:
            data = await self._stream.receive_some(min(n, _CHUNK))
            if not data:
                raise BadRequest(400, "connection closed inside a request body")
            n -= len(data)


def _response_head(status: int, length: int, keep_alive: bool,
                   content_type: bytes = b"application/octet-stream") -> bytes:
    return (b"HTTP/1.1 %d %s\r\nServer: multistack\r\nContent-Type: %s\r\n"
            b"Content-Length: %d\r\nConnection: %s\r\n\r\n"
            % (status, _REASONS[status], content_type, length,
               b"keep-alive" if keep_alive else b"close"))


async def _send_body(stream: trio.abc.SendStream, head: bytes, size: int) -> None:
    # The head rides with the first chunk: one write, one segment for small bodies.
    first = min(size, _CHUNK - len(head))
    await stream.send_all(head + _PATTERN[:first])
    sent = first
    while sent < size:
        n = min(size - sent, _CHUNK)
        start = sent % 256
        await stream.send_all(_PATTERN[start:start + n])
        sent += n


async def _respond(stream: trio.abc.SendStream, request: Request) -> bool:
    """Answer one request; return whether the connection stays open."""
    keep_alive = request.keep_alive
    if request.method not in ("GET", "HEAD"):
        body = b"only GET and HEAD\n"
        await stream.send_all(_response_head(405, len(body), keep_alive, b"text/plain") + body)
        return keep_alive
    if request.target == "/":
        status, size, content_type = 200, len(_INDEX), b"text/plain"
    else:
        size = body_size(request.target)
        status, content_type = (200, b"application/octet-stream") if size is not None \
            else (404, b"text/plain")
    if status == 404:
        body = b"not found\n"
        head = _response_head(404, len(body), keep_alive, content_type)
        await stream.send_all(head if request.method == "HEAD" else head + body)
        return keep_alive
    head = _response_head(status, size, keep_alive, content_type)
    if request.method == "HEAD":
        await stream.send_all(head)
    elif request.target == "/":
        await stream.send_all(head + _INDEX)
    else:
        await _send_body(stream, head, size)
    return keep_alive


class _IdleWatch(trio.abc.HalfCloseableStream):
    """A connection's stream that pushes its idle deadline on at every transfer."""

    def __init__(self, stream: trio.abc.HalfCloseableStream, scope: trio.CancelScope,
                 idle_timeout: float) -> None:
        self._stream = stream
        self._scope = scope
        self._idle_timeout = idle_timeout

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        data = await self._stream.receive_some(max_bytes)
        self._scope.deadline = trio.current_time() + self._idle_timeout
        return data

    async def send_all(self, data) -> None:
        await self._stream.send_all(data)
        self._scope.deadline = trio.current_time() + self._idle_timeout

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


async def handle(stream: trio.abc.HalfCloseableStream, *,
                 idle_timeout: float | None = None) -> None:
    """Serve HTTP requests on one connection until either side ends it (or it idles
    for ``idle_timeout`` seconds, if given), then close it."""
    try:
        if idle_timeout is None:
            await _serve_connection(stream)
        else:
            with trio.move_on_after(idle_timeout) as idle:
                await _serve_connection(_IdleWatch(stream, idle, idle_timeout))
    finally:
        try:
            await stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass


async def _serve_connection(stream: trio.abc.HalfCloseableStream) -> None:
    reader = _Reader(stream)
    try:
        while True:
            try:
                head = await reader.head()
                if head is None:
                    break
                request = parse_head(head)
                if "chunked" in request.headers.get("transfer-encoding", "").lower():
                    raise BadRequest(501, "chunked request bodies are not supported")
                length = request.headers.get("content-length", "0")
                if not length.isdigit():
                    raise BadRequest(400, "bad Content-Length")
                if int(length) > MAX_BODY:
                    raise BadRequest(413, "request body too large")
                await reader.discard(int(length))
            except BadRequest as exc:
                body = f"{exc}\n".encode()
                await stream.send_all(_response_head(exc.status, len(body), False,
                                                     b"text/plain") + body)
                break
            if not await _respond(stream, request):
                break
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass


async def serve(listeners, *, idle_timeout: float | None = IDLE_TIMEOUT,
                task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve on ``listeners`` (UTCP or kernel) until cancelled, closing connections
    idle for ``idle_timeout`` seconds (None: never)."""
    await trio.serve_listeners(functools.partial(handle, idle_timeout=idle_timeout), listeners,
                               task_status=task_status)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--addr", default=None, help="address to listen on (default: all)")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)

    async def run() -> None:
        listeners = await trio.open_tcp_listeners(args.port, host=args.addr)
        await serve(listeners)

    trio.run(run)


if __name__ == "__main__":
    main()
