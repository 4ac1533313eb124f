"""Many connections behind one set of addresses: demultiplexing by 4-tuple.

Segments for no connection and no listener get the RFC 9293 reset (section
3.10.7.1); TIME-WAIT connections stay in the table until 2MSL passes; a
SYN that arrives for a TIME-WAIT connection with a sequence number above
the old connection's reopens it (RFC 9293 3.6.1, as RFC 6191 allows).
At most ``max_time_wait`` connections wait in TIME-WAIT: past that the
oldest is forgotten early and counted, as Linux does past
``tcp_max_tw_buckets``, so a server that closes first under a flood of
short connections keeps bounded state.  A connection the application has
released (:meth:`Endpoint.release`) waits as a compact record, as Linux's
timewait sockets do: a tuple of numbers instead of a connection of some
twenty objects, which a server closing 2,000 connections a second would
otherwise keep 120,000 of, for the garbage collector to walk.  A segment
for it makes a connection of it again, so TIME-WAIT behaves the same.
Sans-IO like the connections: addresses and segments in, (src, dst,
segment) triples out.

Deadlines live in a heap with lazy deletion, so a host with thousands of
connections (most of them idle or in TIME-WAIT) finds the next deadline
without looking at each one.  A connection's deadline is (re)scheduled by
:meth:`segments_to_send`, which every change goes through.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable

from stacks.wire.tcp import TcpFlags, TcpRepr

from . import seq as sq
from .config import TcpConfig
from .connection import Connection
from .events import LocalProtocolError
from .isn import IsnGenerator
from .listener import Admission, Listener
from .syncookies import SynCookies, peer_isn_of_ack
from .states import CLOSED, SYN_RECEIVED, TIME_WAIT

EPHEMERAL_PORTS = range(49152, 65536)
#: TIME-WAIT connections kept at most (Linux's net.ipv4.tcp_max_tw_buckets).
MAX_TIME_WAIT = 32768


def _reopens(seg: TcpRepr, ts_ok: bool, ts_recent: int | None, rcv_nxt: int) -> bool:
    """Does a SYN for a tuple in TIME-WAIT open a new connection there?  By a newer
    timestamp (RFC 6191), else by a sequence number beyond the old connection's."""
    if seg.flags & (TcpFlags.SYN | TcpFlags.ACK | TcpFlags.RST) != TcpFlags.SYN:
        return False
    if ts_ok and seg.timestamp is not None and ts_recent is not None:
        return sq.gt(seg.timestamp[0], ts_recent)
    return sq.gt(seg.seq, sq.wrap(rcv_nxt))


class Endpoint:
    def __init__(self, *, config: TcpConfig | None = None, isn: IsnGenerator | None = None,
                 seed: int | None = None, path_mtu: Callable[[object], int] | None = None,
                 max_time_wait: int = MAX_TIME_WAIT) -> None:
        if max_time_wait < 0:
            raise ValueError("max_time_wait must not be negative")
        self.config = config if config is not None else TcpConfig()
        self.max_time_wait = max_time_wait
        #: The IP MTU towards an address (the host's PMTU table), for the MSS we announce.
        self.path_mtu = path_mtu
        self._isn = isn if isn is not None else IsnGenerator()
        self._cookies = SynCookies()
        self._rng = random.Random(seed)
        self.connections: dict[tuple, Connection] = {}
        self.listeners: dict[tuple, Listener] = {}
        self._stateless: list[tuple] = []        # resets and cookie SYN-ACKs: no connection behind them
        self._dirty: dict[Connection, None] = {}     # ordered set: may have output
        self._touched: dict[Connection, None] = {}   # ordered set: may have events
        self._timers: list[tuple[float, int, Connection]] = []
        self._scheduled: dict[Connection, float] = {}
        # By 4-tuple, oldest first: the connection, or its record once released.
        self._time_wait: dict[tuple, Connection | tuple] = {}
        self._record_timers: list[tuple[float, int, tuple, tuple]] = []  # (expiry, _, key, record)
        self._tiebreak = itertools.count()
        self.stats: Counter[str] = Counter()

    # ------------------------------------------------------------------ setup

    def listen(self, address, port: int, *, backlog: int = 128, syn_queue: int | None = None,
               config: TcpConfig | None = None, syn_cookies: bool = True) -> Listener:
        """Accept connections to ``port`` on ``address`` (None: every address)."""
        key = (address, port)
        if key in self.listeners:
            raise LocalProtocolError(f"already listening on {address}:{port}")
        listener = Listener(address, port, backlog=backlog, syn_queue=syn_queue,
                            config=config or self.config, syn_cookies=syn_cookies)
        self.listeners[key] = listener
        return listener

    def unlisten(self, listener: Listener) -> None:
        self.listeners.pop((listener.address, listener.port), None)
        for conn in listener.close():
            conn.abort()
            self.touch(conn)

    def connect(self, local_addr, remote_addr, remote_port: int, now: float, *,
                local_port: int | None = None, config: TcpConfig | None = None) -> Connection:
        if local_port is None:
            local_port = self._ephemeral_port(local_addr, remote_addr, remote_port)
        key = (local_addr, local_port, remote_addr, remote_port)
        if key in self.connections or key in self._time_wait:
            raise LocalProtocolError(f"connection {key} already exists")
        isn = self._isn.isn(local_addr, local_port, remote_addr, remote_port, now)
        conn = Connection.connect(local_port, remote_port, isn=isn, now=now,
                                  config=self._config_for(config or self.config, remote_addr),
                                  ipv6=local_addr.version == 6,
                                  ts_offset=self._isn.ts_offset(local_addr, remote_addr))
        conn.key = key
        self.connections[key] = conn
        self.touch(conn)
        return conn

    def _config_for(self, config: TcpConfig, remote) -> TcpConfig:
        """``config`` with an MSS no larger than the path to ``remote`` carries."""
        if self.path_mtu is not None:
            mss = self.path_mtu(remote) - (60 if remote.version == 6 else 40)
            if mss < config.mss:
                return dataclasses.replace(config, mss=mss)
        return config

    def free_port(self, local_addr) -> int:
        """An ephemeral port nothing on ``local_addr`` uses, for a listener on port 0."""
        used = {key[1] for key in itertools.chain(self.connections, self._time_wait)}
        for _ in range(len(EPHEMERAL_PORTS)):
            port = self._ephemeral_port(local_addr, None, 0)
            if port not in used:
                return port
        raise LocalProtocolError("no ephemeral port left")

    def _ephemeral_port(self, local_addr, remote_addr, remote_port: int) -> int:
        start = self._rng.randrange(len(EPHEMERAL_PORTS))
        for i in range(len(EPHEMERAL_PORTS)):
            port = EPHEMERAL_PORTS[(start + i) % len(EPHEMERAL_PORTS)]
            key = (local_addr, port, remote_addr, remote_port)
            if key not in self.connections and key not in self._time_wait \
                    and (local_addr, port) not in self.listeners and (None, port) not in self.listeners:
                return port
        raise LocalProtocolError("no ephemeral port left")

    def in_time_wait(self, key: tuple) -> bool:
        """Whether the 4-tuple (local addr, local port, remote addr, remote port) is
        held in TIME-WAIT, by a connection or its record."""
        return key in self._time_wait

    def release(self, conn: Connection) -> None:
        """The application is done with ``conn``: once in TIME-WAIT (and owing
        nothing but the wait) it is kept as a compact record, see the module's
        docstring, and ``conn`` itself goes to CLOSED."""
        conn.released = True
        if conn.state is TIME_WAIT:
            self.touch(conn)            # recorded once what it owes is sent

    def touch(self, conn: Connection) -> None:
        """The application called into ``conn``: it may have output or events."""
        self._dirty[conn] = None
        self._touched[conn] = None

    def take_touched(self) -> list[Connection]:
        """Connections that may have new events since the last call."""
        out = list(self._touched)
        self._touched.clear()
        return out

    def snapshot(self) -> list[dict[str, object]]:
        """Every listener, connection and TIME-WAIT record, read-only (for ``ss``).

        Each row has ``state`` and the local and remote address and port (a
        listener on every address has None for its address; a listener has
        no remote end); a connection adds :meth:`Connection.snapshot`.  A
        listener's ``receive_queue`` is its accept queue and ``send_queue``
        its backlog, as ``ss`` shows them.  A TIME-WAIT record keeps no
        counters, so its row has only its ends and queues.
        """
        rows: list[dict[str, object]] = []
        for listener in self.listeners.values():
            rows.append({"state": "LISTEN",
                         "local_address": None if listener.address is None
                         else str(listener.address),
                         "local_port": listener.port, "remote_address": None, "remote_port": None,
                         "receive_queue": len(listener.accept_queue),
                         "send_queue": listener.backlog, "syn_queue": len(listener.syn_queue)})
        for key, conn in self.connections.items():
            if conn.state is CLOSED:
                continue            # gone; dropped from the table with its last output
            row: dict[str, object] = {"local_address": str(key[0]), "local_port": key[1],
                                      "remote_address": str(key[2]), "remote_port": key[3]}
            row.update(conn.snapshot())
            rows.append(row)
        for key, held in self._time_wait.items():
            if isinstance(held, tuple):     # a connection in TIME-WAIT was listed above
                rows.append({"state": TIME_WAIT.value, "local_address": str(key[0]),
                             "local_port": key[1], "remote_address": str(key[2]),
                             "remote_port": key[3], "receive_queue": 0, "send_queue": 0})
        return rows

    # ------------------------------------------------------------------ input

    def receive(self, src, dst, seg: TcpRepr, now: float) -> Connection | None:
        """Deliver a segment from ``src`` to ``dst``; return the connection it went to."""
        key = (dst, seg.dst_port, src, seg.src_port)
        conn = self.connections.get(key)
        if conn is None:
            record = self._time_wait.get(key)
            if isinstance(record, tuple):       # (a connection there is in the table too)
                # A SYN that reopens the tuple is judged by the record alone.
                if _reopens(seg, *Connection.reopen_state_of_record(record)):
                    self.stats["time_wait_reopened"] += 1
                    self._forget_time_wait(key)
                else:
                    conn = self._resume_time_wait(key, record, now)
        elif conn.state is TIME_WAIT and _reopens(seg, conn.ts_ok, conn.ts_recent, conn.rcv_nxt):
            self.stats["time_wait_reopened"] += 1
            self._forget_time_wait(key)
            conn = None
        if conn is not None:
            half_open = conn.state is SYN_RECEIVED
            conn.receive(seg, now)
            self.touch(conn)
            if half_open:           # only a half-open connection is in a listener's queue
                self._update_listener(conn)
            return conn
        listener = self.listeners.get((dst, seg.dst_port)) or self.listeners.get((None, seg.dst_port))
        flags = seg.flags
        if listener is not None and not flags & TcpFlags.RST:
            if flags & TcpFlags.ACK and not flags & TcpFlags.SYN \
                    and listener.answering_with_cookies(now):
                # A failure is counted and dropped, not reset: see listener.py.
                return self._open_from_cookie(listener, key, src, dst, seg, now)
            if flags & TcpFlags.ACK:
                self._reset_for(src, dst, seg)      # RFC 9293: an ACK to LISTEN is reset
            elif flags & TcpFlags.SYN:
                if flags & TcpFlags.FIN:
                    # A scanner's probe, never a real open: dropped as Linux does.
                    self.stats["syn_fin_dropped"] += 1
                    return None
                return self._open_passive(listener, key, src, dst, seg, now)
            return None
        if listener is None:
            self._reset_for(src, dst, seg)
        return None

    def _open_passive(self, listener: Listener, key, src, dst, seg: TcpRepr,
                      now: float) -> Connection | None:
        admission, evicted = listener.admit()
        if evicted is not None:
            self.connections.pop(evicted.key, None)
        if admission is Admission.DROP:
            self.stats["syn_dropped"] += 1
            return None
        if admission is Admission.COOKIE:
            cookie = self._cookies.make(dst, seg.dst_port, src, seg.src_port, seg.seq, seg.mss, now)
            listener.cookie_sent_at = now
            self._stateless.append((dst, src, Connection.cookie_syn_ack(
                seg, cookie=cookie, now=now, config=self._config_for(listener.config, src),
                ts_offset=self._isn.ts_offset(dst, src))))
            return None
        isn = self._isn.isn(dst, seg.dst_port, src, seg.src_port, now)
        conn = Connection.accept(seg, isn=isn, now=now,
                                 config=self._config_for(listener.config, src),
                                 ipv6=dst.version == 6, ts_offset=self._isn.ts_offset(dst, src))
        conn.key = key
        self.connections[key] = conn
        listener.add_half_open(conn)
        self.touch(conn)
        return conn

    def _open_from_cookie(self, listener: Listener, key, src, dst, seg: TcpRepr,
                          now: float) -> Connection | None:
        cookie = sq.add(seg.ack, -1)
        mss = self._cookies.check(dst, seg.dst_port, src, seg.src_port, peer_isn_of_ack(seg.seq),
                                  cookie, now)
        if mss is None:
            listener.stats["syn_cookies_failed"] += 1
            return None
        if not listener.has_room():
            listener.stats["syn_cookies_backlog_full"] += 1
            return None
        conn = Connection.from_cookie(seg, isn=cookie, mss=mss, now=now,
                                      config=self._config_for(listener.config, src),
                                      ipv6=dst.version == 6,
                                      ts_offset=self._isn.ts_offset(dst, src))
        if conn is None or conn.state is CLOSED:
            listener.stats["syn_cookies_failed"] += 1
            return None
        conn.key = key
        self.connections[key] = conn
        listener.add_established(conn)
        self.touch(conn)
        return conn

    def _update_listener(self, conn: Connection) -> None:
        if conn.state is not SYN_RECEIVED:        # established, or gone
            local_addr, local_port = conn.key[0], conn.key[1]
            listener = self.listeners.get((local_addr, local_port)) \
                or self.listeners.get((None, local_port))
            if listener is not None:
                listener.update(conn)

    def _reset_for(self, src, dst, seg: TcpRepr) -> None:
        """RFC 9293 3.10.7.1: the reset for a segment that belongs to nothing."""
        flags = seg.flags
        if flags & TcpFlags.RST:
            return
        self.stats["rst_sent_no_connection"] += 1
        if flags & TcpFlags.ACK:
            rst = TcpRepr(seg.dst_port, seg.src_port, seg.ack, 0, TcpFlags.RST, 0)
        else:
            rst = TcpRepr(seg.dst_port, seg.src_port, 0, sq.add(seg.seq, seg.segment_len),
                          TcpFlags.RST | TcpFlags.ACK, 0)
        self._stateless.append((dst, src, rst))

    def on_icmp_error(self, local_addr, local_port: int, remote_addr, remote_port: int, *,
                      mtu: int | None = None, message: str = "unreachable",
                      quoted_seq: int | None = None) -> bool:
        """An ICMP error quoting one of our segments: PMTU update or unreachable.

        RFC 5927 section 4.1: the quoted sequence number, when there is one,
        must be one we have sent and not had acknowledged, or the error is
        ignored (a blind attacker would have to guess it).  Returns whether
        the error was believed (only then may the host learn its MTU).
        """
        conn = self.connections.get((local_addr, local_port, remote_addr, remote_port))
        if conn is None:
            self.stats["icmp_ignored_no_connection"] += 1
            return False
        if quoted_seq is not None and not conn.snd_una <= sq.unwrap(quoted_seq, conn.snd_una) \
                < max(conn.snd_max, conn.snd_una + 1):
            self.stats["icmp_ignored_bad_seq"] += 1
            return False
        if mtu is not None:
            conn.set_path_mtu(mtu, ipv6=local_addr.version == 6)
        else:
            conn.on_unreachable(message)
        self.touch(conn)
        return True

    # ------------------------------------------------------------------ output and timers

    def segments_to_send(self, now: float) -> list[tuple]:
        """(src, dst, segment) for everything due now."""
        out, self._stateless = self._stateless, []
        dirty = list(self._dirty)
        self._dirty.clear()
        for conn in dirty:
            local_addr, _, remote_addr, _ = conn.key
            for seg in conn.segments_to_send(now):
                out.append((local_addr, remote_addr, seg))
            state = conn.state
            if state is CLOSED and self.connections.get(conn.key) is conn:
                del self.connections[conn.key]
                if self._time_wait.get(conn.key) is conn:
                    del self._time_wait[conn.key]
                self._update_listener(conn)
            elif state is TIME_WAIT and self.connections.get(conn.key) is conn:
                if self._time_wait.get(conn.key) is not conn:
                    self._enter_time_wait(conn)
                if conn.released and self._record_time_wait(conn):
                    continue
            self._schedule(conn)
        return out

    def _enter_time_wait(self, conn: Connection) -> None:
        time_wait = self._time_wait
        time_wait[conn.key] = conn
        while len(time_wait) > self.max_time_wait:
            self.stats["time_wait_dropped"] += 1
            self._forget_time_wait(next(iter(time_wait)))

    def _forget_time_wait(self, key: tuple) -> None:
        """End a TIME-WAIT connection early, silently: its tuple is free again."""
        held = self._time_wait.pop(key)
        if isinstance(held, Connection):
            self._scheduled.pop(held, None)     # its heap entry is then superseded
            held.drop()
            if self.connections.get(key) is held:
                del self.connections[key]
        # A record's timer entry no longer matches it, and is dropped when due.

    def _record_time_wait(self, conn: Connection) -> bool:
        """Keep a released TIME-WAIT connection as its record, in its place by age;
        False while it has another timer than TIME-WAIT's own (an ACK it delays)."""
        expiry = conn.poll_at()
        if expiry is None or expiry != conn.time_wait_ends:
            return False
        key = conn.key
        record = conn.take_time_wait_record()
        del self.connections[key]
        self._scheduled.pop(conn, None)
        self._time_wait[key] = record
        timers = self._record_timers
        heapq.heappush(timers, (expiry, next(self._tiebreak), key, record))
        if len(timers) > 2 * len(self._time_wait) + 64:
            # Entries of records since resumed, reopened or forgotten: keep only live ones.
            timers[:] = [entry for entry in timers if self._time_wait.get(entry[2]) is entry[3]]
            heapq.heapify(timers)
        self.stats["time_wait_recorded"] += 1
        return True

    def _resume_time_wait(self, key: tuple, record: tuple, now: float) -> Connection:
        """The connection behind a TIME-WAIT record, for a segment that arrived for it."""
        conn = Connection.from_time_wait_record(record, now=now, config=self.config,
                                                ipv6=key[0].version == 6)
        conn.key = key
        self.connections[key] = conn
        self._time_wait[key] = conn         # same place: its age counts from the first time
        self.stats["time_wait_resumed"] += 1
        return conn

    def _expire_records(self, now: float) -> None:
        timers = self._record_timers
        while timers and timers[0][0] <= now:
            _, _, key, record = heapq.heappop(timers)
            if self._time_wait.get(key) is record:
                del self._time_wait[key]

    def _next_record_expiry(self) -> float | None:
        timers = self._record_timers
        while timers and self._time_wait.get(timers[0][2]) is not timers[0][3]:
            heapq.heappop(timers)       # resumed, reopened or forgotten since
        return timers[0][0] if timers else None

    def _schedule(self, conn: Connection) -> None:
        # A deadline that moved later keeps its earlier heap entry, which is filed
        # again only when it reaches the top (_settle_top).  Deadlines move later on
        # nearly every ACK (the RTO restarts), so this saves a heap push per segment.
        deadline = conn.poll_at() if conn.state is not CLOSED else None
        if deadline is None:
            self._scheduled.pop(conn, None)
            return
        filed = self._scheduled.get(conn)
        if filed is None or deadline < filed:
            self._scheduled[conn] = deadline
            timers = self._timers
            heapq.heappush(timers, (deadline, next(self._tiebreak), conn))
            if len(timers) > 2 * len(self._scheduled) + 64:
                # Superseded entries: each keeps its connection alive until its time,
                # a recorded TIME-WAIT one included.  Keep the live ones only.
                timers[:] = [entry for entry in timers if self._scheduled.get(entry[2]) == entry[0]]
                heapq.heapify(timers)

    def _settle_top(self) -> None:
        """Make the heap's first entry the true earliest deadline: drop entries
        superseded by an earlier one, file again those whose deadline moved later."""
        timers = self._timers
        scheduled = self._scheduled
        while timers:
            filed, _, conn = timers[0]
            if scheduled.get(conn) != filed:
                heapq.heappop(timers)                   # superseded
                continue
            deadline = conn.poll_at() if conn.state is not CLOSED else None
            if deadline == filed:
                return
            heapq.heappop(timers)
            if deadline is None:
                del scheduled[conn]
            else:                                       # it moved later
                scheduled[conn] = deadline
                heapq.heappush(timers, (deadline, next(self._tiebreak), conn))

    def poll_at(self) -> float | None:
        self._settle_top()
        deadline = self._timers[0][0] if self._timers else None
        expiry = self._next_record_expiry()
        if expiry is not None and (deadline is None or expiry < deadline):
            return expiry
        return deadline

    def on_timer(self, now: float) -> None:
        self._expire_records(now)
        timers = self._timers
        while True:
            self._settle_top()
            if not timers or timers[0][0] > now:
                break
            _, _, conn = heapq.heappop(timers)
            del self._scheduled[conn]
            conn.on_timer(now)
            self.touch(conn)
