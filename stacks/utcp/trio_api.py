"""UTCP for trio applications: streams, listeners and the per-host TCP layer.

    listener = await open_tcp_listener(host, "10.0.0.2", 80)
    await trio.serve_listeners(handler, [listener])

    stream = await open_tcp_stream(host, "10.0.0.2", 80)
    await stream.send_all(b"GET / HTTP/1.1\\r\\n\\r\\n")

:class:`TcpLayer` is the protocol handler a :class:`~stacks.host.Host`
calls for IP protocol 6: it parses segments, feeds the sans-IO
:class:`~stacks.utcp.Endpoint`, sends what comes out through the host and
wakes the tasks waiting on a connection.  The host's runtime
(``await host.run()``) must be running in some task.

Closing follows Linux: ``aclose`` with unread data, or data arriving after
``aclose``, resets the connection; otherwise it sends FIN and the
connection finishes in the background (an orphan; one stuck in FIN-WAIT-2
is dropped after ``ORPHAN_TIMEOUT``).
"""

from __future__ import annotations

import errno
from collections import Counter
from ipaddress import ip_address

import trio

from stacks.host.host import Host, IcmpError, IcmpErrorKind, NoRoute, PacketTooBig
from stacks.wire.errors import MalformedPacket
from stacks.wire.tcp import PROTOCOL, TcpRepr

from .config import TcpConfig
from .connection import Connection
from .endpoint import MAX_TIME_WAIT, Endpoint
from .events import LocalProtocolError, RemoteProtocolError
from .isn import IsnGenerator
from .listener import Listener
from .states import CLOSE_WAIT, CLOSED, ESTABLISHED, SYN_RECEIVED, SYN_SENT, TIME_WAIT

ORPHAN_TIMEOUT = 60.0
WILDCARDS = {ip_address("0.0.0.0"), ip_address("::")}


class _Exclusive:
    """At most one task at a time in a group of methods (trio's BusyResourceError)."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._held = False

    def __enter__(self) -> None:
        if self._held:
            raise trio.BusyResourceError(f"another task is using this stream for {self._what}")
        self._held = True

    def __exit__(self, *exc_info: object) -> None:
        self._held = False


def _os_error(error: RemoteProtocolError) -> OSError:
    code = {"reset": errno.ECONNRESET, "refused": errno.ECONNREFUSED,
            "timeout": errno.ETIMEDOUT, "unreachable": errno.EHOSTUNREACH}[error.reason]
    return OSError(code, str(error))


class TcpLayer:
    """The TCP protocol handler of one Host.  Get it with :meth:`of`."""

    def __init__(self, host: Host, *, config: TcpConfig | None = None,
                 isn_secret: bytes | None = None, seed: int | None = None,
                 verify_checksums: bool = True, max_time_wait: int = MAX_TIME_WAIT) -> None:
        self.host = host
        self.endpoint = Endpoint(config=config, isn=IsnGenerator(isn_secret), seed=seed,
                                 path_mtu=host.path_mtu, max_time_wait=max_time_wait)
        self.verify_checksums = verify_checksums
        self.counters: Counter[str] = Counter()
        self._lots: dict[Connection, trio.lowlevel.ParkingLot] = {}
        self._listener_lots: dict[Listener, trio.lowlevel.ParkingLot] = {}
        self._orphans: dict[Connection, float] = {}
        self._promised: float | None = None
        host.attach(PROTOCOL, self)

    @classmethod
    def of(cls, host: Host, **kwargs) -> TcpLayer:
        """The host's TCP layer, attached on first use (``kwargs`` apply then)."""
        existing = host.handler(PROTOCOL)
        if existing is None:
            return cls(host, **kwargs)
        if not isinstance(existing, cls):
            raise ValueError(f"protocol 6 of this host is handled by {type(existing).__name__}")
        return existing

    def snapshot(self) -> list[dict[str, object]]:
        """The endpoint's listeners and connections (:meth:`Endpoint.snapshot`)."""
        return self.endpoint.snapshot()

    # ---------------------------------------------------------------- ProtocolHandler

    def on_packet(self, src, dst, payload: memoryview, now: float) -> None:
        try:
            seg = TcpRepr.parse(payload, src, dst, verify_checksum=self.verify_checksums)
        except MalformedPacket:
            self.counters["drop_malformed"] += 1
            return
        conn = self.endpoint.receive(src, dst, seg, now)
        if conn is None:
            return
        if conn in self._orphans and conn.readable:
            conn.read()
            conn.abort()      # nobody will read this: tell the sender (as Linux does)
            self.counters["orphan_reset_on_data"] += 1
        if conn.ack_due:
            # Not coalesced into the batch's answer: the sender's ACK clock and its
            # duplicate-ACK count need every one of these.
            self._flush(now)

    def on_batch_end(self, now: float) -> None:
        # Otherwise one flush per receive batch: segments that arrived together
        # get one answer, and parked tasks one wakeup.
        self._flush(now)

    def on_icmp_error(self, error: IcmpError, now: float) -> None:
        if error.src_port is None or error.dst_port is None:
            return
        quoted = error.quoted_payload
        seq = int.from_bytes(quoted[4:8], "big") if len(quoted) >= 8 else None
        if error.kind in (IcmpErrorKind.FRAG_NEEDED, IcmpErrorKind.PACKET_TOO_BIG):
            if self.endpoint.on_icmp_error(error.src, error.src_port, error.dst, error.dst_port,
                                           mtu=error.mtu, quoted_seq=seq) \
                    and error.mtu is not None:
                # Believed: the host's other flows to dst take the smaller MTU too
                # (they shrink when the host refuses their next segment, in _send_due).
                self.host.learn_path_mtu(error.dst, error.mtu, now)
        elif error.kind is IcmpErrorKind.UNREACHABLE:
            self.endpoint.on_icmp_error(error.src, error.src_port, error.dst, error.dst_port,
                                        message=f"ICMP unreachable from {error.reporter}",
                                        quoted_seq=seq)
        self._flush(now)

    def poll_at(self) -> float | None:
        deadline = self._deadline()
        self._promised = deadline        # what the host's runtime now sleeps until
        return deadline

    def _deadline(self) -> float | None:
        deadline = self.endpoint.poll_at()
        if self._orphans:
            # Every orphan gets the same timeout: the first entry is due first.
            orphan = next(iter(self._orphans.values()))
            deadline = orphan if deadline is None or orphan < deadline else deadline
        return deadline

    def on_timer(self, now: float) -> None:
        self.endpoint.on_timer(now)
        orphans = self._orphans
        while orphans:
            conn, deadline = next(iter(orphans.items()))
            if deadline > now:
                break
            del orphans[conn]
            if conn.state is not CLOSED and conn.state is not TIME_WAIT:
                conn.abort()
                self.endpoint.touch(conn)
                self.counters["orphans_dropped"] += 1
        self._flush(now)

    # ---------------------------------------------------------------- output and wakeups

    def _flush(self, now: float) -> None:
        if self._send_due(now):
            self._send_due(now)     # the connections that shrank resend at once
        for conn in self.endpoint.take_touched():
            lot = self._lots.get(conn)
            if lot:             # someone is parked (unparking none still costs)
                lot.unpark_all()
            # TIME-WAIT and CLOSED need no orphan timeout (and every state change
            # passes here), so the orphan table holds only connections still closing.
            if (conn.state is CLOSED or conn.state is TIME_WAIT) and conn in self._orphans:
                del self._orphans[conn]
        for listener, lot in self._listener_lots.items():
            if lot and (listener.accept_queue or listener.closed):
                lot.unpark_all()

    def _send_due(self, now: float) -> bool:
        """Send what the endpoint has due; True if a connection shrank its segments
        to a path MTU the host learned meanwhile (they then need another round)."""
        shrank = False
        for src, dst, seg in self.endpoint.segments_to_send(now):
            try:
                self.host.send_ip(src, dst, PROTOCOL, seg.emit(src, dst), now=now)
            except NoRoute as exc:
                self.counters["drop_no_route"] += 1
                # Like Linux's ENETUNREACH: a connect with no route fails at once.
                self.endpoint.on_icmp_error(src, seg.src_port, dst, seg.dst_port,
                                            message=f"no route: {exc}")
            except PacketTooBig as exc:
                # The host learned a smaller path MTU to dst (from another flow's ICMP
                # error): like Linux's TCP, which sizes segments by the route's MTU,
                # this connection takes it; the segment is sent again, smaller.
                self.counters["drop_too_big"] += 1
                conn = self.endpoint.connections.get((src, seg.src_port, dst, seg.dst_port))
                if conn is not None and conn.set_path_mtu(exc.mtu, ipv6=src.version == 6):
                    self.counters["path_mtu_taken_from_host"] += 1
                    self.endpoint.touch(conn)
                    shrank = True
            except ValueError:
                self.counters["drop_unsendable"] += 1
        return shrank

    def kick(self, conn: Connection | None = None) -> None:
        """The application changed something: send what is due and rearm the timers,
        late in this scheduling round (with what the other tasks changed in it)."""
        if conn is not None:
            self.endpoint.touch(conn)
        self.host.defer(self._flush_for_application)

    def _flush_for_application(self, now: float) -> None:
        # The segments go to the port without waking the runtime for them; it needs
        # a wakeup only when a deadline came earlier than the one it sleeps until.
        self._flush(now)
        deadline = self._deadline()
        if deadline is not None and (self._promised is None or deadline < self._promised):
            self._promised = deadline
            self.host.wakeup(at=deadline)

    def lot(self, conn: Connection) -> trio.lowlevel.ParkingLot:
        return self._lots.setdefault(conn, trio.lowlevel.ParkingLot())

    def forget(self, conn: Connection) -> None:
        """The application closed its stream: the connection is the endpoint's alone."""
        self._lots.pop(conn, None)
        self.endpoint.release(conn)

    def orphan(self, conn: Connection) -> None:
        # The clock only moves forward, so insertion order is deadline order.
        self._orphans.setdefault(conn, trio.current_time() + ORPHAN_TIMEOUT)
        self._lots.pop(conn, None)

    # ---------------------------------------------------------------- opening

    def listen(self, address, port: int, backlog: int, config: TcpConfig | None, *,
               syn_queue: int | None = None, syn_cookies: bool = True) -> "UtcpListener":
        address = None if address is None or ip_address(address) in WILDCARDS else ip_address(address)
        if port == 0:
            port = self.endpoint.free_port(address)
        try:
            listener = self.endpoint.listen(address, port, backlog=backlog, config=config,
                                            syn_queue=syn_queue, syn_cookies=syn_cookies)
        except LocalProtocolError as exc:
            raise OSError(errno.EADDRINUSE, str(exc)) from None
        self._listener_lots[listener] = trio.lowlevel.ParkingLot()
        return UtcpListener(self, listener)

    async def connect(self, address, port: int, *, source=None, local_port: int | None = None,
                      config: TcpConfig | None = None) -> "UtcpStream":
        remote = ip_address(address)
        local = ip_address(source) if source is not None else self.host.source_address_for(remote)
        if local is None:
            raise OSError(errno.EADDRNOTAVAIL, f"no IPv{remote.version} address to connect from")
        try:
            conn = self.endpoint.connect(local, remote, port, trio.current_time(),
                                         local_port=local_port, config=config)
        except LocalProtocolError as exc:
            raise OSError(errno.EADDRINUSE, str(exc)) from None
        stream = UtcpStream(self, conn)
        try:
            self.kick(conn)     # the SYN leaves late in this round (or fails: no route)
            while conn.state is SYN_SENT or conn.state is SYN_RECEIVED:
                await self.lot(conn).park()
        except BaseException:
            conn.abort()
            self.kick(conn)
            self.forget(conn)
            raise
        if conn.error is not None:
            self.forget(conn)
            raise _os_error(conn.error)
        self.kick(conn)
        return stream


class UtcpStream(trio.abc.HalfCloseableStream):
    """One UTCP connection as a trio stream."""

    def __init__(self, layer: TcpLayer, conn: Connection) -> None:
        self._layer = layer
        self.connection = conn
        self._closed = False
        self._eof_sent = False
        self._send_guard = _Exclusive("sending")
        self._receive_guard = _Exclusive("receiving")
        self._lot = layer.lot(conn)

    @property
    def local_address(self):
        return self.connection.key[0], self.connection.key[1]

    @property
    def remote_address(self):
        return self.connection.key[2], self.connection.key[3]

    def setsockopt_nodelay(self, on: bool = True) -> None:
        """TCP_NODELAY: switch Nagle's algorithm off (on=True) or back on."""
        self.connection.config.nagle = not on

    def set_keepalive(self, idle: float | None, interval: float = 75.0, count: int = 9) -> None:
        """SO_KEEPALIVE with TCP_KEEPIDLE/KEEPINTVL/KEEPCNT; idle None switches it off."""
        self.connection.set_keepalive(idle, interval, count, trio.current_time())
        self._layer.kick(self.connection)

    def _check_send(self) -> None:
        if self._closed or self._eof_sent:
            raise trio.ClosedResourceError("this stream was closed for sending")
        conn = self.connection
        if conn.error is not None:
            raise trio.BrokenResourceError(str(conn.error)) from _os_error(conn.error)
        if conn.state not in (ESTABLISHED, CLOSE_WAIT, SYN_RECEIVED):
            raise trio.BrokenResourceError(f"connection is {conn.state.value}")

    async def send_all(self, data) -> None:
        with self._send_guard:
            # The checkpoint comes first: what the task does next in this round (more
            # data, a close) then leaves with this data, a FIN in the same segment.
            await trio.lowlevel.checkpoint()
            self._check_send()
            view = memoryview(data).cast("B")
            try:
                while view:
                    n = self.connection.send(bytes(view[:self.connection.send_space()]))
                    view = view[n:]
                    if n:
                        self._layer.kick(self.connection)
                    if view:
                        await self._lot.park()
                        self._check_send()
            except LocalProtocolError as exc:
                raise trio.BrokenResourceError(str(exc)) from None

    async def wait_send_all_might_not_block(self) -> None:
        with self._send_guard:
            await trio.lowlevel.checkpoint_if_cancelled()
            self._check_send()
            if self.connection.send_space():
                await trio.lowlevel.cancel_shielded_checkpoint()
                return
            while self.connection.send_space() == 0:
                await self._lot.park()      # the checkpoint
                if self._closed:
                    raise trio.ClosedResourceError("stream closed")
                if self.connection.error is not None or self.connection.closed:
                    return      # the next send_all will say what went wrong

    async def send_eof(self) -> None:
        with self._send_guard:
            await trio.lowlevel.checkpoint_if_cancelled()
            if self._closed:
                raise trio.ClosedResourceError("stream closed")
            if not self._eof_sent:
                self._eof_sent = True
                try:
                    self.connection.close()
                except LocalProtocolError:
                    pass       # already closed by the peer's reset: nothing to finish
                self._layer.kick(self.connection)
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if max_bytes is not None:
            if not isinstance(max_bytes, int):
                raise TypeError("max_bytes must be an integer or None")
            if max_bytes < 1:
                raise ValueError("max_bytes must be at least 1")
        with self._receive_guard:
            await trio.lowlevel.checkpoint_if_cancelled()
            conn = self.connection
            parked = False      # parking is a checkpoint: then none is due at the end
            while True:
                if self._closed:
                    raise trio.ClosedResourceError("stream closed")
                if conn.readable:
                    data = conn.read(max_bytes if max_bytes is not None else 65536)
                    if conn.ack_due:           # reading opened the window enough to say so
                        self._layer.kick(conn)
                    if not parked:
                        await trio.lowlevel.cancel_shielded_checkpoint()
                    return data
                if conn.eof_received:
                    if not parked:
                        await trio.lowlevel.cancel_shielded_checkpoint()
                    return b""
                if conn.error is not None:
                    raise trio.BrokenResourceError(str(conn.error)) from _os_error(conn.error)
                if conn.closed:
                    raise trio.BrokenResourceError("connection closed")
                await self._lot.park()
                parked = True

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            conn = self.connection
            if conn.readable or conn.state is SYN_SENT:
                conn.abort()                   # unread data is lost: say so with RST
            elif conn.state in (ESTABLISHED, CLOSE_WAIT, SYN_RECEIVED):
                conn.close()
            if conn.state is not CLOSED:
                self._layer.orphan(conn)
            self._layer.kick(conn)
            self._layer.forget(conn)
            self._lot.unpark_all()
        await trio.lowlevel.checkpoint()


class UtcpListener(trio.abc.Listener[UtcpStream]):
    def __init__(self, layer: TcpLayer, listener: Listener) -> None:
        self._layer = layer
        self.listener = listener
        self._guard = _Exclusive("accepting")

    @property
    def address(self):
        return self.listener.address, self.listener.port

    async def accept(self) -> UtcpStream:
        with self._guard:
            await trio.lowlevel.checkpoint_if_cancelled()
            lot = self._layer._listener_lots.get(self.listener)
            parked = False      # parking is a checkpoint: then none is due at the end
            while True:
                if self.listener.closed or lot is None:
                    raise trio.ClosedResourceError("listener closed")
                conn = self.listener.accept()
                if conn is not None:
                    if not parked:
                        await trio.lowlevel.cancel_shielded_checkpoint()
                    return UtcpStream(self._layer, conn)
                await lot.park()
                parked = True

    async def aclose(self) -> None:
        if not self.listener.closed:
            self._layer.endpoint.unlisten(self.listener)
            lot = self._layer._listener_lots.pop(self.listener, None)
            if lot is not None:
                lot.unpark_all()
            self._layer.kick()
        await trio.lowlevel.checkpoint()


async def open_tcp_listener(host: Host, address, port: int, *, backlog: int = 128,
                            config: TcpConfig | None = None, syn_queue: int | None = None,
                            syn_cookies: bool = True) -> UtcpListener:
    """Listen on (address, port) of ``host``; address None or a wildcard: all of them.

    ``syn_queue`` bounds the half-open connections (default: twice the
    backlog, at least 64); past it, SYNs get SYN cookies, or with
    ``syn_cookies`` False the oldest half-open connection is dropped.
    """
    await trio.lowlevel.checkpoint()
    return TcpLayer.of(host).listen(address, port, backlog, config, syn_queue=syn_queue,
                                    syn_cookies=syn_cookies)


async def open_tcp_stream(host: Host, address, port: int, *, source=None,
                          local_port: int | None = None,
                          config: TcpConfig | None = None) -> UtcpStream:
    """Connect to (address, port); raises OSError (ECONNREFUSED, ETIMEDOUT, ...) on failure.

    ``local_port`` None picks an ephemeral port; a port that shares the NIC
    with the OS stack (the kernel module) must use one it registered.
    """
    return await TcpLayer.of(host).connect(address, port, source=source, local_port=local_port,
                                           config=config)
