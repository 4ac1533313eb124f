"""The control socket of a process's user-level stacks: what ``multistack-ctl ss`` reads.

A :class:`~stacks.host.Host` made with ``control_socket=True`` joins, while
its :meth:`~stacks.host.Host.run` runs, the one control server of its
process: a unix socket ``<pid>.sock`` in the run directory
(:mod:`multistack.stackctl` has the paths and the protocol).  The first
such host to run binds the socket and starts the server as a trio system
task; the last to stop removes the socket.  The server answers each
request from the hosts' transports as they are then: the cores' read-only
snapshots (:meth:`stacks.utcp.Endpoint.snapshot`,
:meth:`stacks.udp.UdpLayer.snapshot`) and the counters they keep.

Only the process's owner or root is answered (the socket is 0600 and the
peer's credentials are checked).  A request that is not JSON, not an
object, or unknown gets an error reply, and the connection stays open; a
request line longer than ``MAX_REQUEST`` gets one and the rest of that
line is skipped.  Nothing a
client sends reaches the hosts' runtime: the server's errors stay in its
own tasks.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import typing
from collections import Counter
from contextlib import asynccontextmanager

from multistack import stackctl

if typing.TYPE_CHECKING:
    from .host import Host

#: Clients served at once; more are told so and closed.
MAX_CLIENTS = 16
#: Seconds a client may stay silent (or not read its reply) before it is closed.
IDLE_TIMEOUT = 60.0
TCP, UDP = 6, 17


def _command() -> str:
    return " ".join(getattr(sys, "orig_argv", sys.argv))


def _error(message: str) -> dict:
    return {"ok": False, "error": message}


def _port_info(host: Host) -> dict:
    port = host.port
    return {"name": getattr(port, "name", "?"), "backend": type(port).__name__,
            "mac": ":".join(f"{b:02x}" for b in bytes(host.mac)), "mtu": port.mtu,
            "addresses": [str(i) for i in host.interfaces]}


def connections(hosts: typing.Iterable[Host]) -> dict:
    """The "connections" reply for ``hosts``: their ports, TCP and UDP rows."""
    ports, tcp, udp = [], [], []
    for host in hosts:
        name = getattr(host.port, "name", "?")
        ports.append(_port_info(host))
        for proto, rows in ((TCP, tcp), (UDP, udp)):
            handler = host.handler(proto)
            snapshot = getattr(handler, "snapshot", None)
            if snapshot is not None:
                rows.extend({"port": name, **row} for row in snapshot())
    return {"ok": True, "pid": os.getpid(), "command": _command(), "ports": ports,
            "tcp": tcp, "udp": udp}


def counters(hosts: typing.Iterable[Host]) -> dict:
    """The "counters" reply: the hosts', UDP layers' and TCP layers' counters, summed
    over the process's hosts (TCP's include its endpoint's and open listeners')."""
    totals = {"host": Counter(), "udp": Counter(), "tcp": Counter()}
    for host in hosts:
        totals["host"].update(host.counters)
        udp = host.handler(UDP)
        if udp is not None:
            totals["udp"].update(getattr(udp, "counters", {}))
        tcp = host.handler(TCP)
        if tcp is not None:
            totals["tcp"].update(getattr(tcp, "counters", {}))
            endpoint = getattr(tcp, "endpoint", None)
            if endpoint is not None:
                totals["tcp"].update(endpoint.stats)
                for listener in endpoint.listeners.values():
                    totals["tcp"].update(listener.stats)
    return {"ok": True, "pid": os.getpid(), "command": _command(),
            "counters": {name: dict(sorted(c.items())) for name, c in totals.items()}}


class ControlServer:
    """The process's control socket and the hosts it reports on."""

    def __init__(self, path: str, sock: socket.socket) -> None:
        import trio

        self.path = path
        self.hosts: list[Host] = []
        self.clients = 0
        self.token = trio.lowlevel.current_trio_token()
        self._listener = trio.socket.from_stdlib_socket(sock)
        self._scope = trio.CancelScope()
        self._identity = os.stat(path).st_ino

    @classmethod
    def open(cls) -> ControlServer:
        """Bind ``<pid>.sock`` in the run directory (replacing a stale one)."""
        directory = stackctl.server_run_dir()
        path = os.path.join(directory, stackctl.socket_name(os.getpid()))
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            pass
        else:       # left by an earlier process with our pid: remove it if ours
            if info.st_uid != os.geteuid():
                raise stackctl.StackControlError(f"{path} exists and belongs to uid {info.st_uid}")
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            os.chmod(path, 0o600)       # clients that got in before this meet the uid check
            sock.listen(MAX_CLIENTS)
        except OSError as exc:
            sock.close()
            raise stackctl.StackControlError(
                f"cannot open the stack control socket {path}: {exc.strerror or exc}") from None
        sock.setblocking(False)
        return cls(path, sock)

    def close(self) -> None:
        """Stop serving and remove the socket (if it is still ours)."""
        self._scope.cancel()
        self._unlink()

    def _unlink(self) -> None:
        try:
            if os.stat(self.path).st_ino == self._identity:
                os.unlink(self.path)
        except OSError:
            pass

    async def serve(self) -> None:
        import trio

        with self._scope:
            try:
                async with trio.open_nursery() as nursery:
                    while True:
                        try:
                            client, _ = await self._listener.accept()
                        except OSError:      # out of descriptors, say: try again soon
                            await trio.sleep(0.1)
                            continue
                        if self.clients >= MAX_CLIENTS:
                            nursery.start_soon(self._refuse, client,
                                               f"busy: {MAX_CLIENTS} clients already")
                        else:
                            nursery.start_soon(self._serve_client, client)
            finally:
                self._listener.close()
                self._unlink()
                if _SERVER.get("server") is self:
                    del _SERVER["server"]

    async def _refuse(self, client, message: str) -> None:
        import trio

        stream = trio.SocketStream(client)
        try:
            await _say_and_close(stream, message)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await trio.aclose_forcefully(stream)

    def _allowed(self, client) -> str | None:
        """Why the peer may not ask, or None when it may (the owner or root)."""
        _, uid, _ = stackctl.peer_credentials(client)
        owner = os.geteuid()
        if uid in (0, owner):
            return None
        return f"permission denied: uid {uid} is neither the stack's owner (uid {owner}) nor root"

    async def _serve_client(self, client) -> None:
        import trio

        self.clients += 1
        stream = trio.SocketStream(client)
        try:
            refusal = self._allowed(client)
            if refusal is not None:
                await _say_and_close(stream, refusal)
                return
            pending = bytearray()
            skipping = False            # the rest of an overlong line, already answered
            while True:
                with trio.move_on_after(IDLE_TIMEOUT) as idle:
                    data = await stream.receive_some(stackctl.MAX_REQUEST + 1)
                if idle.cancelled_caught or not data:
                    return
                pending += data
                while b"\n" in pending:
                    request, _, rest = bytes(pending).partition(b"\n")
                    pending = bytearray(rest)
                    if skipping:
                        skipping = False
                        continue
                    with trio.move_on_after(IDLE_TIMEOUT) as stuck:     # a client not reading
                        await stream.send_all(_line(self.answer(request)))
                    if stuck.cancelled_caught:
                        return
                if len(pending) > stackctl.MAX_REQUEST:
                    if not skipping:
                        await stream.send_all(_line(_error(
                            f"request longer than {stackctl.MAX_REQUEST} bytes")))
                        skipping = True
                    pending.clear()
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:       # noqa: BLE001 -- a bug here must not end the process's trio run
            pass
        finally:
            self.clients -= 1
            await trio.aclose_forcefully(stream)

    def answer(self, line: bytes) -> dict:
        """The reply to one request line."""
        if not line.strip():
            return _error("empty request; send a JSON object such as {\"request\": \"connections\"}")
        try:
            request = json.loads(line)
        except ValueError as exc:       # UnicodeDecodeError included
            return _error(f"malformed request: not JSON ({exc})")
        if not isinstance(request, dict):
            return _error("malformed request: not a JSON object")
        name = request.get("request")
        try:
            if name == "connections":
                return connections(self.hosts)
            if name == "counters":
                return counters(self.hosts)
        except Exception as exc:        # a bug here must not take the stacks down
            return _error(f"internal error: {type(exc).__name__}: {exc}")
        known = ", ".join(stackctl.REQUESTS)
        return _error(f"unknown request {name!r} (known: {known})"[:400])


async def _say_and_close(stream, message: str) -> None:
    """Send one error reply and end the conversation.  What the client sent
    meanwhile is read and dropped first: closing with it unread would reset the
    connection, and the client would lose the reply."""
    import trio

    with trio.move_on_after(1.0):
        await stream.send_all(_line(_error(message)))
        await stream.send_eof()
        drained = 0
        while drained < 1 << 20:
            data = await stream.receive_some(65536)
            if not data:
                break
            drained += len(data)


def _line(message: dict) -> bytes:
    return json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n"


#: The process's server while one runs ("server": ControlServer).
_SERVER: dict[str, ControlServer] = {}


@asynccontextmanager
async def serving(host: Host):
    """Report on ``host`` through the process's control socket while inside."""
    import trio

    server = _SERVER.get("server")
    if server is None or server.token is not trio.lowlevel.current_trio_token():
        if server is not None:      # of a trio run that ended without removing it
            server.close()
        server = ControlServer.open()
        _SERVER["server"] = server
        trio.lowlevel.spawn_system_task(server.serve, name="stack control socket")
    server.hosts.append(host)
    try:
        yield server
    finally:
        server.hosts.remove(host)
        if not server.hosts:
            server.close()
            if _SERVER.get("server") is server:
                del _SERVER["server"]
