"""A listening socket: a bounded SYN queue and an accept queue (the backlog).

SYN-flood protection: the SYN queue is bounded.  When half-open
connections fill it, new SYNs are answered with SYN cookies (stateless, see
:mod:`.syncookies`) — or, with cookies switched off, the oldest half-open
connection is dropped silently to make room, so a flood cannot grow memory
and a genuine client whose handshake completes quickly still gets in.  A
full accept queue drops new SYNs, as Linux does, so clients retry later.

While the listener has answered with cookies recently, an ACK that does not
rebuild a connection is dropped rather than reset: it may be a later
segment of a cookie handshake that overtook the first (the cookie names
the peer's ISN as the first segment's sequence number minus one), or one
that found the accept queue full.  The peer retransmits it.
"""

from __future__ import annotations

import enum
from collections import Counter, OrderedDict, deque

from .config import TcpConfig
from .connection import Connection
from .states import CLOSED, SYNCHRONIZED
from .syncookies import COOKIE_LIFETIME


class Admission(enum.Enum):
    ACCEPT = "accept"      # keep state: a new half-open connection
    COOKIE = "cookie"      # answer with a SYN cookie, keep nothing
    DROP = "drop"          # do not answer; the client will retry


class Listener:
    def __init__(self, address, port: int, *, backlog: int = 128, syn_queue: int | None = None,
                 config: TcpConfig | None = None, syn_cookies: bool = True) -> None:
        if backlog < 1:
            raise ValueError("backlog must be at least 1")
        if syn_queue is not None and (syn_queue < 0 or (syn_queue == 0 and not syn_cookies)):
            raise ValueError(f"syn_queue {syn_queue}: at least 0 with SYN cookies, 1 without")
        self.address = address          # None listens on every local address
        self.port = port
        self.backlog = backlog
        self.syn_queue_limit = syn_queue if syn_queue is not None else max(2 * backlog, 64)
        self.config = config if config is not None else TcpConfig()
        self.syn_cookies = syn_cookies
        self.syn_queue: OrderedDict[tuple, Connection] = OrderedDict()
        self.accept_queue: deque[Connection] = deque()
        self.closed = False
        self.stats: Counter[str] = Counter()
        self.cookie_sent_at: float | None = None

    def answering_with_cookies(self, now: float) -> bool:
        """Whether a cookie this listener sent may still be returned."""
        return self.cookie_sent_at is not None and now - self.cookie_sent_at < COOKIE_LIFETIME

    def admit(self) -> tuple[Admission, Connection | None]:
        """What to do with a new SYN, and the half-open connection evicted to make room
        for it (which the caller forgets)."""
        if len(self.accept_queue) >= self.backlog:
            self.stats["syn_dropped_backlog_full"] += 1
            return Admission.DROP, None
        victim = None
        if len(self.syn_queue) >= self.syn_queue_limit:
            if self.syn_cookies:
                self.stats["syn_cookies_sent"] += 1
                return Admission.COOKIE, None
            if not self.syn_queue:      # no SYN queue at all (limit 0) and no cookies
                self.stats["syn_dropped_no_syn_queue"] += 1
                return Admission.DROP, None
            _, victim = self.syn_queue.popitem(last=False)
            victim.drop()        # forgotten, not reset: a half-open entry has no user yet
            self.stats["syn_queue_evicted"] += 1
        return Admission.ACCEPT, victim

    def has_room(self) -> bool:
        return len(self.accept_queue) < self.backlog

    def add_established(self, conn: Connection) -> None:
        """A connection rebuilt from a SYN cookie: straight to the accept queue."""
        self.accept_queue.append(conn)
        self.stats["accepted"] += 1
        self.stats["syn_cookies_accepted"] += 1

    def add_half_open(self, conn: Connection) -> None:
        self.syn_queue[conn.key] = conn

    def update(self, conn: Connection) -> None:
        """Move a connection whose handshake completed to the accept queue."""
        if conn.key not in self.syn_queue:
            return
        if conn.state in SYNCHRONIZED:
            del self.syn_queue[conn.key]
            self.accept_queue.append(conn)
            self.stats["accepted"] += 1
        elif conn.state is CLOSED:
            del self.syn_queue[conn.key]

    def accept(self) -> Connection | None:
        """The oldest established connection not yet taken, or None."""
        while self.accept_queue:
            conn = self.accept_queue.popleft()
            if conn.state is not CLOSED or conn.readable:
                return conn
        return None

    def close(self) -> list[Connection]:
        """Stop listening; return the connections nobody accepted, for the caller to reset."""
        self.closed = True
        pending = list(self.syn_queue.values()) + list(self.accept_queue)
        self.syn_queue.clear()
        self.accept_queue.clear()
        return pending
