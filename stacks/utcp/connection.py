"""One TCP connection (a TCB), sans-IO.

Segments and the current time go in (:meth:`Connection.receive`,
:meth:`Connection.on_timer`); segments to send, events and the next
deadline come out (:meth:`segments_to_send`, :meth:`events`,
:meth:`poll_at`).  It reads no clock and does no I/O.  Ports on the wire
are the connection's own; addresses belong to the endpoint.

All sequence numbers inside are absolute integers (see :mod:`.seq`): the
send side counts from ISS, the receive side from IRS.  The order of checks
on an arriving segment follows RFC 9293 section 3.10.7.4, with RFC 5961's
rules for RST, SYN and ACK, and RFC 7323's PAWS.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, deque

from stacks.wire.tcp import FLAGS_BY_VALUE, TcpFlags, TcpRepr, build_tcp_repr

from . import seq as sq
from . import syncookies
from .config import TcpConfig
from .congestion import ALGORITHMS, CongestionControl, initial_window
from .events import (Connected, ConnectionClosed, DataReceived, EofReceived, Event,
                     LocalProtocolError, RemoteProtocolError, SendSpaceAvailable)
from .rto import RtoEstimator
from .sack import ReceiveQueue, Scoreboard
from .states import (CLOSE_WAIT, CLOSED, CLOSING, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, LAST_ACK,
                     LISTEN, RECEIVING, SENDING, SYN_RECEIVED, SYN_SENT, SYNCHRONIZED, TIME_WAIT,
                     TRANSITION_NAMES)
from .states import Event as Ev
from .states import next_state

# Plain ints: segment handling tests and combines flags all the time, and the enum's
# operators are Python calls.  Segments built here get TcpFlags by FLAGS_BY_VALUE.
ACK, SYN, FIN, RST, PSH = (f.value for f in (TcpFlags.ACK, TcpFlags.SYN, TcpFlags.FIN,
                                              TcpFlags.RST, TcpFlags.PSH))

#: RFC 9293 3.7.1: the MSS assumed when the peer sends none.
DEFAULT_MSS_V4 = 536
DEFAULT_MSS_V6 = 1220
TS_OPTION_LEN = 12
MAX_WINDOW_SCALE = 14
#: RFC 7323 5.5: TS.Recent older than this is invalid, so PAWS does not apply.
PAWS_IDLE = 24 * 24 * 3600.0
#: RFC 9293 3.10.4: the states in which ABORT sends a reset.
_RESET_ON_ABORT = frozenset({SYN_RECEIVED, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT})


class Connection:
    # Fixed attributes: a connection has more than CPython keeps inline in an
    # instance, and slots make every field access in the per-segment path cheaper.
    __slots__ = (
        "cc", "config", "error", "irs", "iss", "key", "local_port", "max_snd_wnd",
        "peer_mss", "rcv_adv", "rcv_nxt", "rcv_wscale", "remote_port", "rto", "sack_ok",
        "scoreboard", "snd_max", "snd_nxt", "snd_una", "snd_wl1", "snd_wl2", "snd_wnd",
        "snd_wscale", "soft_error", "state", "stats", "ts_ok", "ts_recent", "_ack_now",
        "_active_open", "_buf", "_buf_start", "_challenge_count", "_challenge_window",
        "_closed_reported", "_delack_at", "_dupacks", "_eof", "_events", "_fin_acked",
        "_fin_queued", "_in_recovery", "_keepalive_at", "_keepalive_probes",
        "_last_ack_sent", "_last_data_sent_at", "_last_heard", "_last_rto_una", "_ooo",
        "_path_mss", "_peer_offered_wscale", "_persist_at", "_persist_backoff",
        "_probe_now", "_rcv_buf", "_recover", "_retries", "_retx_high", "_retx_queue",
        "_rst_queue", "_rto_at", "_rtt_sent_at", "_rtt_seq", "_syn_timed_out",
        "_timewait_at", "_ts_offset", "_ts_recent_at", "_unacked_segments", "released"
    )

    def __init__(self, local_port: int, remote_port: int, *, isn: int, now: float,
                 config: TcpConfig | None = None, ipv6: bool = False,
                 ts_offset: int | None = None) -> None:
        # A copy: options set on one connection (Nagle, keepalive) stay with it.
        self.config = config = config.copy() if config is not None else TcpConfig()
        self.local_port = local_port
        self.remote_port = remote_port
        self.state = CLOSED
        self.stats: Counter[str] = Counter()
        self._events: deque[Event] = deque()
        self.error: RemoteProtocolError | None = None
        self.soft_error: str | None = None   # last ICMP error that did not end the connection
        self.key: tuple = ()                 # (local addr, local port, remote addr, remote port)
        #: The application let go of it (Endpoint.release): in TIME-WAIT the endpoint
        #: may keep it as a compact record instead.
        self.released = False

        # Send sequence space.
        self.iss = isn
        self.snd_una = isn
        self.snd_nxt = isn
        self.snd_max = isn               # highest sequence number sent, plus one
        self.snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = 0
        self.max_snd_wnd = 0
        self._buf = bytearray()          # unacknowledged and unsent data
        self._buf_start = isn + 1        # sequence number of _buf[0]
        self._fin_queued = False
        self._fin_acked = False
        self._peer_offered_wscale = False

        # Receive sequence space (set when the peer's SYN arrives).
        self.irs = 0
        self.rcv_nxt = 0
        self.rcv_adv = 0                 # right edge of the window we advertised
        self._rcv_buf = bytearray()
        self._ooo = ReceiveQueue()
        self._eof = False

        # Options negotiated in the handshake.
        self.peer_mss = DEFAULT_MSS_V6 if ipv6 else DEFAULT_MSS_V4
        self._path_mss = config.mss
        self.snd_wscale = 0
        self.rcv_wscale = window_scale_for(config) if config.window_scaling else 0
        self.ts_ok = False
        self.sack_ok = False
        # The TSval clock's offset (RFC 7323 7.1): the endpoint gives one per address
        # pair (see isn.py); a connection made by hand derives one from its ISN.
        self._ts_offset = (isn * 2654435761) & sq.MASK if ts_offset is None else ts_offset
        self.ts_recent: int | None = None
        self._ts_recent_at = 0.0
        self._last_ack_sent = 0

        # Timers, each an absolute deadline or None.
        self._rto_at: float | None = None
        self._persist_at: float | None = None
        self._delack_at: float | None = None
        self._keepalive_at: float | None = None
        self._timewait_at: float | None = None
        self._retries = 0
        self._persist_backoff = 0
        self._keepalive_probes = 0
        self._last_heard = now
        self._last_rto_una: int | None = None
        self._syn_timed_out = False
        self._active_open = False
        self._last_data_sent_at: float | None = None

        self.rto = RtoEstimator(initial=config.initial_rto, minimum=config.min_rto,
                                maximum=config.max_rto)
        self._rtt_seq: int | None = None  # timed segment when timestamps are off (Karn)
        self._rtt_sent_at = 0.0
        self.cc: CongestionControl = ALGORITHMS[config.congestion](self._smss())

        # Loss recovery.
        self._dupacks = 0
        self._recover = isn
        self._in_recovery = False
        self._retx_queue: list[int] = []
        self._retx_high = isn
        self.scoreboard = Scoreboard()

        # What the next call to segments_to_send owes.
        self._ack_now = False
        self._unacked_segments = 0
        self._probe_now = False
        self._rst_queue: list[TcpRepr] = []
        self._challenge_window = -1.0
        self._challenge_count = 0
        self._closed_reported = False

    # ------------------------------------------------------------------ opening

    @classmethod
    def connect(cls, local_port: int, remote_port: int, *, isn: int, now: float,
                config: TcpConfig | None = None, ipv6: bool = False,
                ts_offset: int | None = None) -> Connection:
        """Active open: the SYN goes out with the next :meth:`segments_to_send`."""
        conn = cls(local_port, remote_port, isn=isn, now=now, config=config, ipv6=ipv6,
                   ts_offset=ts_offset)
        conn._transition(Ev.ACTIVE_OPEN)
        conn._active_open = True
        return conn

    @classmethod
    def accept(cls, syn: TcpRepr, *, isn: int, now: float, config: TcpConfig | None = None,
               ipv6: bool = False, ts_offset: int | None = None) -> Connection:
        """Passive open from a listener's SYN: the connection starts in SYN-RECEIVED."""
        if syn.flags & (SYN | ACK | RST) != SYN:
            raise LocalProtocolError("a passive open needs a SYN without ACK or RST")
        conn = cls(syn.dst_port, syn.src_port, isn=isn, now=now, config=config, ipv6=ipv6,
                   ts_offset=ts_offset)
        conn._transition(Ev.PASSIVE_OPEN)
        conn._take_syn(syn, now)
        conn._transition(Ev.RCV_SYN)
        return conn

    @classmethod
    def cookie_syn_ack(cls, syn: TcpRepr, *, cookie: int, now: float, config: TcpConfig,
                       ts_offset: int) -> TcpRepr:
        """The SYN-ACK answering ``syn`` with ``cookie`` as our ISN, for a listener
        that keeps no state: :meth:`from_cookie` replays it from the ACK.

        With timestamps, window scaling and SACK are agreed as usual, the
        peer's half kept in our TSval (see :mod:`.syncookies`).
        """
        timestamp = window_scale = peer_wscale = None
        sack = False
        if config.timestamps and syn.timestamp is not None:
            if config.window_scaling and syn.window_scale is not None:
                peer_wscale = min(syn.window_scale, MAX_WINDOW_SCALE)
                window_scale = window_scale_for(config)
            sack = config.sack and syn.sack_permitted
            timestamp = (syncookies.encode_options(ts_clock(now, ts_offset), peer_wscale, sack),
                         syn.timestamp[0])
        return TcpRepr(syn.dst_port, syn.src_port, cookie, sq.add(syn.seq, 1),
                       FLAGS_BY_VALUE[SYN | ACK], min(config.recv_buffer, 65535), mss=config.mss,
                       window_scale=window_scale, sack_permitted=sack, timestamp=timestamp)

    @classmethod
    def from_cookie(cls, ack: TcpRepr, *, isn: int, mss: int, now: float,
                    config: TcpConfig | None = None, ipv6: bool = False,
                    ts_offset: int | None = None) -> Connection | None:
        """Rebuild a passive connection from the ACK that returned a valid SYN cookie.

        The handshake is replayed from what the cookie kept: the peer's SYN
        (its ISN and MSS, and with timestamps the options our TSval carried)
        and our SYN-ACK (ISN = cookie, ``ts_offset`` the one it was sent
        with), then the ACK is processed as usual, data included.  None
        when the echoed options are ones :meth:`cookie_syn_ack` never sends.
        """
        cfg = config if config is not None else TcpConfig()
        peer_ts = ack.timestamp if cfg.timestamps else None
        window_scale = None
        sack = False
        if peer_ts is not None:
            options = syncookies.decode_options(peer_ts[1])
            if options is None:
                return None
            window_scale, sack = options
            if (window_scale is not None and not cfg.window_scaling) or (sack and not cfg.sack):
                return None
        syn = TcpRepr(ack.src_port, ack.dst_port, sq.add(ack.seq, -1), 0, FLAGS_BY_VALUE[SYN],
                      ack.window, mss=mss, window_scale=window_scale, sack_permitted=sack,
                      timestamp=None if peer_ts is None else (peer_ts[0], 0))
        conn = cls.accept(syn, isn=isn, now=now, config=cfg, ipv6=ipv6, ts_offset=ts_offset)
        conn.snd_nxt = conn.snd_max = conn.iss + 1
        if peer_ts is not None:
            # The echo is the cookie's options, up to 63 ms before the SYN-ACK left:
            # no RTT sample from it, as none is taken without timestamps.
            ack = dataclasses.replace(ack, timestamp=(peer_ts[0], 0))
        conn.receive(ack, now)
        return conn

    # ------------------------------------------------------------------ TIME-WAIT records

    @property
    def time_wait_ends(self) -> float | None:
        """When TIME-WAIT runs out (None outside it)."""
        return self._timewait_at if self.state is TIME_WAIT else None

    def take_time_wait_record(self) -> tuple:
        """What TIME-WAIT needs of this connection, as a tuple of numbers: about 1 KB
        with its table entries against 3.4 for the connection, and nothing the
        garbage collector tracks.
        TIME-WAIT goes on in the record, so this connection is CLOSED from now on.

        :meth:`from_time_wait_record` makes a connection of it again, so a segment
        that arrives meanwhile meets the same code as in a connection kept whole.
        """
        if self.state is not TIME_WAIT:
            raise LocalProtocolError(f"a TIME-WAIT record of a connection in {self.state.value}")
        cfg = self.config
        record = (self.local_port, self.remote_port, self.iss, self.snd_max, self.irs,
                  self.rcv_nxt, self.rcv_adv, self.rcv_wscale, self.snd_wscale, self.ts_ok,
                  self.ts_recent, self._ts_recent_at, self._ts_offset, self._last_ack_sent,
                  self.sack_ok, self._timewait_at, self._challenge_window,
                  self._challenge_count, self.snd_wnd, self.max_snd_wnd, self.snd_wl1,
                  self.snd_wl2, cfg.msl, cfg.challenge_ack_limit, cfg.recv_buffer)
        self._timewait_at = None
        self._transition(Ev.TIME_WAIT_EXPIRED)
        return record

    @staticmethod
    def reopen_state_of_record(record: tuple) -> tuple[bool, int | None, int]:
        """(ts_ok, ts_recent, rcv_nxt) of a TIME-WAIT record: what judges a new SYN."""
        return record[9], record[10], record[5]

    @classmethod
    def from_time_wait_record(cls, record: tuple, *, now: float, config: TcpConfig,
                              ipv6: bool = False) -> Connection:
        """The connection in TIME-WAIT that :meth:`take_time_wait_record` recorded.

        ``config`` supplies what TIME-WAIT does not use; the record's own MSL,
        challenge ACK limit and receive buffer replace its values.
        """
        (local_port, remote_port, iss, snd_max, irs, rcv_nxt, rcv_adv, rcv_wscale, snd_wscale,
         ts_ok, ts_recent, ts_recent_at, ts_offset, last_ack_sent, sack_ok, timewait_at,
         challenge_window, challenge_count, snd_wnd, max_snd_wnd, snd_wl1, snd_wl2, msl,
         challenge_ack_limit, recv_buffer) = record
        cfg = dataclasses.replace(config, msl=msl, challenge_ack_limit=challenge_ack_limit,
                                  recv_buffer=recv_buffer)
        conn = cls(local_port, remote_port, isn=iss, now=now, config=cfg, ipv6=ipv6,
                   ts_offset=ts_offset)
        conn.state = TIME_WAIT
        conn.snd_una = conn.snd_nxt = conn.snd_max = conn._buf_start = snd_max
        conn._fin_queued = conn._fin_acked = True
        conn.irs = irs
        conn.rcv_nxt = rcv_nxt
        conn.rcv_adv = rcv_adv
        conn._eof = True                     # their FIN came before TIME-WAIT
        conn.rcv_wscale = rcv_wscale
        conn.snd_wscale = snd_wscale
        conn.ts_ok = ts_ok
        conn.ts_recent = ts_recent
        conn._ts_recent_at = ts_recent_at
        conn._last_ack_sent = last_ack_sent
        conn.sack_ok = sack_ok
        conn._timewait_at = timewait_at
        conn._challenge_window = challenge_window
        conn._challenge_count = challenge_count
        conn.snd_wnd = snd_wnd
        conn.max_snd_wnd = max_snd_wnd      # bounds the old ACKs still acceptable
        conn.snd_wl1 = snd_wl1
        conn.snd_wl2 = snd_wl2
        conn._closed_reported = True         # the application heard of its end already
        conn.released = True
        return conn

    # ------------------------------------------------------------------ application calls

    def send(self, data: bytes) -> int:
        """Queue as much of ``data`` as the send buffer holds; return how many bytes."""
        if self.state not in SENDING or self._fin_queued:
            raise LocalProtocolError(f"cannot send in {self.state.value}"
                                     + (" after close" if self._fin_queued else ""))
        n = min(len(data), self.send_space())
        if n:
            self._buf += data[:n]
        return n

    def send_space(self) -> int:
        return max(0, self.config.send_buffer - len(self._buf))

    @property
    def unsent(self) -> int:
        """Bytes queued but never sent."""
        return self._buf_start + len(self._buf) - max(self.snd_max, self._buf_start)

    @property
    def send_mss(self) -> int:
        """Payload bytes of a full segment we send (options such as timestamps deducted)."""
        return self._smss()

    @property
    def in_flight(self) -> int:
        return self.snd_max - self.snd_una

    def read(self, max_bytes: int | None = None) -> bytes:
        """Take up to ``max_bytes`` of received in-order data; reading reopens the window."""
        n = len(self._rcv_buf) if max_bytes is None else min(max_bytes, len(self._rcv_buf))
        if n == 0:
            return b""
        data = bytes(self._rcv_buf[:n])
        del self._rcv_buf[:n]
        if self.state in RECEIVING and self._window_update_due():
            self._ack_now = True
        return data

    def _window_update_due(self) -> bool:
        """Whether reading opened the window enough to announce it in a segment of its own.

        Receiver SWS avoidance (RFC 9293 3.8.6.2.2): only growth of at least
        min(buffer/2, MSS).  And, like Linux, only when the advertised window has
        fallen to half the buffer or less, and not when an ACK is already due
        soon (the delayed ACK or the reply carries the new window) unless the
        window left is small enough to stall the sender.
        """
        current = max(self.rcv_adv - self.rcv_nxt, 0)
        if self._window_growth() < self._update_threshold():
            return False
        if 2 * current > self.config.recv_buffer:
            return False
        return self._delack_at is None or current < 4 * self._rcv_mss()

    @property
    def readable(self) -> int:
        return len(self._rcv_buf)

    @property
    def eof_received(self) -> bool:
        return self._eof

    def close(self) -> None:
        """No more data from this side: FIN follows the queued data."""
        if self.state in (SYN_SENT, LISTEN):
            self._transition(Ev.CLOSE)
            self._report_closed()
            return
        if self.state is SYN_RECEIVED:
            self._fin_queued = True    # RFC 9293: queued until ESTABLISHED
            return
        if self.state not in (SYN_RECEIVED, ESTABLISHED, CLOSE_WAIT):
            if self._fin_queued or self.state is CLOSED:
                return  # closing twice is harmless
            raise LocalProtocolError(f"cannot close in {self.state.value}")
        self._fin_queued = True
        self._transition(Ev.CLOSE)

    def abort(self) -> None:
        """Reset the connection: RST to the peer where RFC 9293 3.10.4 says so.

        Not in CLOSING, LAST-ACK or TIME-WAIT: both sides have sent their FIN,
        and a RST would only cut the peer's TIME-WAIT short (as Linux, too)."""
        if self.state is CLOSED:
            return
        if self.state in _RESET_ON_ABORT:
            self._rst_queue.append(self._bare(RST | ACK, self.snd_max, self.rcv_nxt))
        self._transition(Ev.ABORT)
        self._report_closed()

    def set_keepalive(self, idle: float | None, interval: float, count: int, now: float) -> None:
        """Probe an idle connection after ``idle`` seconds; give up after ``count`` probes."""
        self.config.keepalive_idle = idle
        self.config.keepalive_interval = interval
        self.config.keepalive_count = count
        self._keepalive_at = None
        self._last_activity(now)

    def drop(self) -> None:
        """End the connection without a word to the peer (an evicted half-open entry)."""
        if self.state is not CLOSED:
            self._transition(Ev.ABORT)
            self._report_closed()

    def set_path_mtu(self, mtu: int, ipv6: bool = False) -> bool:
        """A smaller path MTU (ICMP "fragmentation needed" / "packet too big"): shrink
        segments and resend.  Returns whether the segment size went down."""
        mss = mtu - (60 if ipv6 else 40)
        if mss < 88 or mss >= self._path_mss:
            return False
        self._path_mss = mss
        self.cc.set_smss(self._smss())
        if self.snd_max > self.snd_una:
            self.snd_nxt = self.snd_una   # what was in flight was too big to arrive
        return True

    def on_unreachable(self, message: str) -> None:
        """An ICMP destination unreachable about this connection (RFC 5461): fatal only
        while connecting, a soft error otherwise."""
        if self.state is SYN_SENT:
            self._fail("unreachable", message)
        else:
            self.soft_error = message

    @property
    def ack_due(self) -> bool:
        """An ACK is owed at once: RFC 5681 4.2 wants one for every second full
        segment and for each out-of-order one (the sender counts duplicates)."""
        return self._ack_now

    def events(self) -> list[Event]:
        out = list(self._events)
        self._events.clear()
        return out

    # ------------------------------------------------------------------ state machine

    def _transition(self, event: Ev) -> None:
        old = self.state
        self.state = next_state(old, event)
        self.stats[TRANSITION_NAMES[old, self.state]] += 1
        if self.state is TIME_WAIT:
            self._timewait_at = None  # set by the caller, which knows the time
        if self.state in (CLOSED, TIME_WAIT):
            self._rto_at = self._persist_at = self._delack_at = self._keepalive_at = None

    def _report_closed(self, error: RemoteProtocolError | None = None) -> None:
        if not self._closed_reported:
            self._closed_reported = True
            self.error = error
            self._events.append(ConnectionClosed(error))

    def _fail(self, reason: str, message: str) -> None:
        error = RemoteProtocolError(message, reason)
        event = Ev.TIMEOUT if reason == "timeout" else Ev.RCV_RST
        self._transition(event)
        self._buf.clear()
        self._report_closed(error)

    def _enter_time_wait(self, now: float) -> None:
        self._timewait_at = now + 2 * self.config.msl
        self._report_closed()

    @property
    def closed(self) -> bool:
        return self.state is CLOSED

    # ------------------------------------------------------------------ receiving

    def receive(self, seg: TcpRepr, now: float) -> None:
        """Process one arriving segment addressed to this connection."""
        state = self.state
        if state is CLOSED or state is LISTEN:
            return
        if state is SYN_SENT:
            self._receive_in_syn_sent(seg, now)
            return
        self.stats["segments_in"] += 1
        flags = int(seg.flags)
        seq = sq.unwrap(seg.seq, self.rcv_nxt)
        wnd = max(self.rcv_adv - self.rcv_nxt, 0)

        # RFC 5961 3.2: only an exactly placed RST resets; one in the window is challenged.
        if flags & RST:
            if seq == self.rcv_nxt:
                self.stats["rst_in"] += 1
                if state is TIME_WAIT:
                    self._transition(Ev.RCV_RST)
                    return
                if state is SYN_RECEIVED and self._active_open:
                    # RFC 9293 3.10.7.4: reached through a simultaneous open, so
                    # the peer refused our connection.
                    self._fail("refused", "connection refused")
                else:
                    self._fail("reset", "connection reset by peer")
            elif self.rcv_nxt <= seq < self.rcv_nxt + max(wnd, 1):
                self._challenge_ack(now)
            else:
                self.stats["rst_out_of_window"] += 1
            return

        # RFC 5961 4.2: a SYN in a synchronized state is answered with a challenge ACK.
        if flags & SYN:
            if state is not SYN_RECEIVED:
                self._challenge_ack(now)
                return
            if not (flags & ACK and seq == self.irs
                    and sq.unwrap(seg.ack, self.snd_una) == self.snd_max):
                if seq == self.irs:
                    self.snd_nxt = self.iss   # their SYN was retransmitted: so is our SYN-ACK
                return
            # Simultaneous open: their SYN-ACK crossed ours.  Its SYN is old news, its ACK
            # completes our handshake (as Linux accepts it), so go on without the SYN.
            flags &= ~SYN
            seg = dataclasses.replace(seg, flags=FLAGS_BY_VALUE[flags], seq=sq.wrap(self.irs + 1))
            seq = self.irs + 1

        # RFC 7323 3.2: once timestamps are agreed, a segment without TSopt is dropped
        # silently (never aborting the connection); RSTs were handled above.
        peer_ts = seg.timestamp
        if self.ts_ok and peer_ts is None:
            self.stats["ts_missing_dropped"] += 1
            return

        # RFC 7323 5.3: PAWS rejects segments with a timestamp older than TS.Recent.
        if self.ts_ok and peer_ts is not None and self.ts_recent is not None \
                and sq.lt(peer_ts[0], self.ts_recent) \
                and now - self._ts_recent_at < PAWS_IDLE:
            self.stats["paws_rejected"] += 1
            # Answer only segments that occupy sequence space: answering reordered pure ACKs
            # would start an ACK exchange for nothing.
            if seg.segment_len:
                self._ack_now = True
            return

        seg_len = seg.segment_len
        if not self._acceptable(seq, seg_len, wnd):
            self.stats["unacceptable"] += 1
            if state is TIME_WAIT and flags & ACK:
                # Their FIN, or data before it, again: our last ACK was lost.  Restart
                # 2MSL (as Linux does) so TIME-WAIT outlasts their retransmissions.
                self._timewait_at = now + 2 * self.config.msl
            self._ack_now = True
            return

        if not flags & ACK:
            return

        if self.ts_ok and peer_ts is not None and seq <= self._last_ack_sent \
                and (self.ts_recent is None or sq.ge(peer_ts[0], self.ts_recent)):
            self.ts_recent = peer_ts[0]
            self._ts_recent_at = now

        self._last_activity(now)
        if not self._process_ack(seg, seq, now):
            return
        if self.state is CLOSED:
            return

        payload = seg.payload
        fin = bool(flags & FIN)
        if seq < self.rcv_nxt:             # trim what we already have
            skip = self.rcv_nxt - seq
            payload = payload[skip:]
            seq = self.rcv_nxt
        room = self.rcv_nxt + wnd - seq
        if len(payload) > room:            # trim what lies beyond the window
            payload = payload[:max(room, 0)]
            fin = False

        if payload and self.state in RECEIVING:
            self._receive_data(seq, payload, bool(flags & PSH))
        if fin and self.state in RECEIVING:
            fin_seq = seq + len(payload)
            if fin_seq == self.rcv_nxt:
                self._receive_fin(now)
            elif fin_seq > self.rcv_nxt:
                self._ooo.fin = fin_seq
                self._ack_now = True
        elif self._ooo.fin is not None and self._ooo.fin == self.rcv_nxt \
                and self.state in RECEIVING:
            self._receive_fin(now)

    def _acceptable(self, seq: int, seg_len: int, wnd: int) -> bool:
        """RFC 9293 3.10.7.4, the four cases of segment length and window."""
        nxt = self.rcv_nxt
        if seg_len == 0:
            if wnd == 0:
                return seq == nxt
            return nxt <= seq < nxt + wnd
        if wnd == 0:
            return False
        end = seq + seg_len - 1
        return nxt <= seq < nxt + wnd or nxt <= end < nxt + wnd

    def _receive_in_syn_sent(self, seg: TcpRepr, now: float) -> None:
        flags = int(seg.flags)
        ack = sq.unwrap(seg.ack, self.snd_una)
        if flags & ACK and not (self.iss < ack <= self.snd_max):
            if not flags & RST:
                self._rst_queue.append(self._bare(RST, ack, None))
            return
        if flags & RST:
            if flags & ACK:
                self._fail("refused", "connection refused")
            return
        if not flags & SYN:
            return
        self._take_syn(seg, now)
        if flags & ACK:
            self._transition(Ev.RCV_SYN_ACK)
            self._update_rtt_on_ack(ack, seg, now)
            self._ack_snd(ack)
            self._retries = 0
            if self._syn_timed_out:
                self.rto.fall_back(self.config.syn_timeout_fallback_rto)
            self._rto_at = None if self.snd_max == self.snd_una else now + self.rto.rto
            self.snd_wl1, self.snd_wl2 = self.irs, ack   # the SYN's window is not scaled
            self._ack_now = True
            self._events.append(Connected())
            self._last_activity(now)
        else:
            # Simultaneous open: answer with SYN+ACK on the same ISS.
            self._transition(Ev.RCV_SYN)
            self.snd_nxt = self.iss
            self._rto_at = None

    def _take_syn(self, syn: TcpRepr, now: float) -> None:
        """Record the peer's ISN and the options of its SYN."""
        self.irs = syn.seq
        self.rcv_nxt = self.irs + 1
        self._last_ack_sent = self.rcv_nxt
        cfg = self.config
        if syn.mss:
            self.peer_mss = syn.mss
        self._peer_offered_wscale = syn.window_scale is not None
        if cfg.window_scaling and syn.window_scale is not None:
            self.snd_wscale = min(syn.window_scale, MAX_WINDOW_SCALE)
        else:
            self.rcv_wscale = 0
            self.snd_wscale = 0
        syn_ts = syn.timestamp if cfg.timestamps else None
        self.ts_ok = syn_ts is not None
        if syn_ts is not None:
            self.ts_recent = syn_ts[0]
            self._ts_recent_at = now
        self.sack_ok = cfg.sack and syn.sack_permitted
        self.cc.smss = self._smss()
        self.cc.cwnd = initial_window(self.cc.smss)
        self.snd_wnd = syn.window               # never scaled in a SYN (RFC 7323 2.2)
        self.max_snd_wnd = self.snd_wnd
        self.rcv_adv = self.rcv_nxt + min(self._free_space(), 65535)

    def _process_ack(self, seg: TcpRepr, seq: int, now: float) -> bool:
        """The ACK field (RFC 9293 3.10.7.4, fifth check).  False means drop the segment."""
        ack = sq.unwrap(seg.ack, self.snd_una)
        if self.state is SYN_RECEIVED:
            if self.snd_una < ack <= self.snd_max:
                self._transition(Ev.RCV_ACK_OF_SYN)
                if self._syn_timed_out:
                    self.rto.fall_back(self.config.syn_timeout_fallback_rto)
                self._events.append(Connected())
                self._set_send_window(seg, seq, ack)
                if self._fin_queued:
                    self._transition(Ev.CLOSE)   # close() came during the handshake
            else:
                self._rst_queue.append(self._bare(RST, ack, None))
                return False
        # RFC 5961 5.2: ACK acceptability; anything outside is answered, not used.
        if ack > self.snd_max or ack < self.snd_una - self.max_snd_wnd:
            self.stats["ack_unacceptable"] += 1
            self._challenge_ack(now)
            return False

        new_sack = False
        if self.sack_ok and seg.sack_blocks:
            for left, right in seg.sack_blocks:
                start = sq.unwrap(left, self.snd_una)
                end = sq.unwrap(right, self.snd_una)
                if self.snd_una < end <= self.snd_max and start < end:
                    new_sack |= self.scoreboard.add(max(start, self.snd_una), end)

        old_wnd = self.snd_wnd
        if ack > self.snd_una:
            self._new_ack(ack, seg, now)
        elif ack == self.snd_una and not seg.payload and not int(seg.flags) & (SYN | FIN) \
                and self.snd_max > self.snd_una \
                and ((seg.window << self.snd_wscale) == old_wnd or new_sack):
            # RFC 5681's duplicate ACK; with SACK, an ACK bringing new SACK information
            # counts even if the window moved (RFC 6675).
            self._duplicate_ack(now)

        # Window update (RFC 9293: only from a segment not older than the last one used).
        if self.snd_wl1 < seq or (self.snd_wl1 == seq and self.snd_wl2 <= ack):
            self._set_send_window(seg, seq, ack)

        if self._fin_queued and self._fin_acked:
            if self.state is FIN_WAIT_1:
                self._transition(Ev.RCV_ACK_OF_FIN)
            elif self.state is CLOSING:
                self._transition(Ev.RCV_ACK_OF_FIN)
                self._enter_time_wait(now)
            elif self.state is LAST_ACK:
                self._transition(Ev.RCV_ACK_OF_FIN)
                self._report_closed()
                return False
        return True

    def _set_send_window(self, seg: TcpRepr, seq: int, ack: int) -> None:
        self.snd_wnd = seg.window << self.snd_wscale
        self.snd_wl1 = seq
        self.snd_wl2 = ack
        self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
        if self.snd_wnd > 0:
            self._persist_at = None
            self._persist_backoff = 0

    def _new_ack(self, ack: int, seg: TcpRepr, now: float) -> None:
        acked = ack - self.snd_una
        flight_before = self.snd_max - self.snd_una
        self._update_rtt_on_ack(ack, seg, now)
        freed = self._ack_snd(ack)
        self._retries = 0
        self._last_rto_una = None
        if self.snd_max > self.snd_una:
            self._rto_at = now + self.rto.rto
        else:
            self._rto_at = None
        if self._in_recovery:
            if ack >= self._recover:
                self.cc.on_exit_recovery(self.snd_max - self.snd_una)
                self._in_recovery = False
                self._dupacks = 0
                self._retx_queue.clear()
            else:
                # RFC 6582 partial acknowledgement: the next hole is lost too.
                self.cc.on_partial_ack(acked)
                self._queue_retransmission(self._next_hole())
        else:
            self._dupacks = 0
            self.cc.on_ack(acked, flight_before, now, self.rto.srtt)
        if freed and self.state in SENDING:
            self._events.append(SendSpaceAvailable())

    def _ack_snd(self, ack: int) -> int:
        """Advance SND.UNA to ``ack``; return how many data bytes left the buffer."""
        buf_end = self._buf_start + len(self._buf)
        freed = max(0, min(ack, buf_end) - self._buf_start)
        if freed:
            del self._buf[:freed]
            self._buf_start += freed
        if self._fin_queued and ack > self._buf_start + len(self._buf):
            self._fin_acked = True
        self.snd_una = ack
        if self.snd_nxt < ack:
            self.snd_nxt = ack
        self.scoreboard.advance(ack)
        return freed

    def _duplicate_ack(self, now: float) -> None:
        self.stats["dupacks_in"] += 1
        if self._in_recovery:
            self.cc.on_dupack_in_recovery()
            if self.sack_ok:
                self._queue_retransmission(self._next_hole())
            return
        self._dupacks += 1
        # RFC 6675 IsLost: three segments' worth SACKed above SND.UNA mean it is lost too.
        sacked_enough = self.sack_ok and self.scoreboard.sacked_bytes >= 3 * self._smss()
        if self._dupacks < 3 and not sacked_enough:
            return
        # RFC 6582 step 1: a fresh loss only if the ACK covers more than `recover`.
        if self.snd_una > self._recover or self._recover == self.iss:
            self.stats["fast_retransmits"] += 1
            self._recover = self.snd_max
            self._in_recovery = True
            self.cc.on_enter_recovery(self.snd_max - self.snd_una, now)
            self._retx_high = self.snd_una
            self._queue_retransmission(self.snd_una)

    def _next_hole(self) -> int | None:
        """Where to retransmit next in recovery: the first SACK hole, or SND.UNA without SACK."""
        if not self.sack_ok or not self.scoreboard:
            return self.snd_una
        start = max(self.snd_una, self._retx_high)
        return self.scoreboard.first_hole(start)

    def _queue_retransmission(self, at: int | None) -> None:
        if at is not None and at < self.snd_max and at not in self._retx_queue:
            self._retx_queue.append(at)

    def _update_rtt_on_ack(self, ack: int, seg: TcpRepr, now: float) -> None:
        if self.ts_ok and seg.timestamp is not None and seg.timestamp[1]:
            # RFC 7323 4.1: the echoed timestamp measures every ACK, retransmissions included.
            rtt = sq.diff(self._ts_now(now), seg.timestamp[1]) / 1000.0
            if 0 <= rtt < 120:
                self.rto.sample(rtt)
            return
        if self._rtt_seq is not None and ack >= self._rtt_seq:
            self.rto.sample(now - self._rtt_sent_at)
            self._rtt_seq = None

    def _receive_data(self, seq: int, payload: bytes, push: bool) -> None:
        if seq == self.rcv_nxt:
            had_holes = len(self._ooo) > 0
            self._rcv_buf += payload
            self.rcv_nxt += len(payload)
            self.stats["bytes_received"] += len(payload)
            if had_holes:
                more = self._ooo.pop_ready(self.rcv_nxt)
                self._rcv_buf += more
                self.rcv_nxt += len(more)
                self.stats["bytes_received"] += len(more)
                self._ack_now = True          # RFC 5681 4.2: ACK at once when a hole fills
            else:
                self._unacked_segments += 1
                if self._unacked_segments >= 2 or self.config.delayed_ack <= 0:
                    self._ack_now = True
            self._events.append(DataReceived(len(self._rcv_buf)))
        else:
            self.stats["out_of_order_in"] += 1
            self._ooo.add(seq, payload)
            self._ack_now = True              # a duplicate ACK, with SACK blocks, at once

    def _receive_fin(self, now: float) -> None:
        self.rcv_nxt += 1
        self._ooo.fin = None
        self._eof = True
        self._ack_now = True
        self._events.append(EofReceived())
        if self.state is FIN_WAIT_2:
            self._transition(Ev.RCV_FIN)
            self._enter_time_wait(now)
        else:
            self._transition(Ev.RCV_FIN)

    # ------------------------------------------------------------------ timers

    def poll_at(self) -> float | None:
        """The earliest deadline at which :meth:`on_timer` has work, or None."""
        earliest = None
        for deadline in (self._rto_at, self._persist_at, self._delack_at, self._keepalive_at,
                         self._timewait_at):
            if deadline is not None and (earliest is None or deadline < earliest):
                earliest = deadline
        return earliest

    def on_timer(self, now: float) -> None:
        if self._timewait_at is not None and now >= self._timewait_at:
            self._timewait_at = None
            if self.state is TIME_WAIT:
                self._transition(Ev.TIME_WAIT_EXPIRED)
            return
        if self._delack_at is not None and now >= self._delack_at:
            self._delack_at = None
            self._ack_now = True
        if self._rto_at is not None and now >= self._rto_at:
            self._rto_at = None
            self._retransmission_timeout(now)
        if self._persist_at is not None and now >= self._persist_at:
            self._persist_at = None
            self._probe_now = True
            self._persist_backoff += 1
            self.stats["window_probes"] += 1
        if self._keepalive_at is not None and now >= self._keepalive_at:
            self._keepalive_at = None
            self._keepalive_expired(now)

    def _retransmission_timeout(self, now: float) -> None:
        if self.snd_max <= self.snd_una or self.state is CLOSED:
            return
        limit = self.config.syn_retries if self.state in (SYN_SENT, SYN_RECEIVED) \
            else self.config.max_retries
        # A peer that shrank its window to zero while our data was in flight turns our
        # retransmissions into window probes: as long as it answers them, it is alive and
        # the connection must not time out (RFC 9293 3.8.6.1; Linux does the same).
        probing = self.state in SYNCHRONIZED and self.snd_wnd == 0 \
            and now - self._last_heard <= 2 * self.config.max_rto
        if self._retries >= limit and not probing:
            self._fail("timeout", "connection timed out")
            return
        self._retries += 1
        self.stats["timeouts"] += 1
        if self.state is SYN_SENT or self.state is SYN_RECEIVED:
            self._syn_timed_out = True
        self.rto.back_off()
        self.cc.on_timeout(self.snd_max - self.snd_una, now)
        # A second timeout for the same data: stop trusting SACK information (the peer may
        # have reneged, RFC 2018 section 8).
        if self._last_rto_una == self.snd_una:
            self.scoreboard.clear()
        self._last_rto_una = self.snd_una
        self._recover = self.snd_max
        self._in_recovery = False
        self._dupacks = 0
        self._retx_queue.clear()
        self._rtt_seq = None
        self.snd_nxt = self.snd_una          # go back: resend from the first unacknowledged byte
        if self.state not in (SYN_SENT, SYN_RECEIVED):
            # The first segment goes even into a zero window or a full cwnd.
            self._retx_queue.append(self.snd_una)

    def _keepalive_expired(self, now: float) -> None:
        if self.state not in (ESTABLISHED, CLOSE_WAIT) or self.snd_max != self.snd_una:
            return
        if self._keepalive_probes >= self.config.keepalive_count:
            self._fail("timeout", "keepalive: peer not responding")
            return
        self._keepalive_probes += 1
        self._probe_now = True
        self.stats["keepalives"] += 1
        self._keepalive_at = now + self.config.keepalive_interval

    def _last_activity(self, now: float) -> None:
        self._last_heard = now
        self._keepalive_probes = 0
        if self.config.keepalive_idle is not None and self.state in (ESTABLISHED,
                                                                      CLOSE_WAIT,
                                                                      SYN_RECEIVED):
            self._keepalive_at = now + self.config.keepalive_idle

    def _challenge_ack(self, now: float) -> None:
        """RFC 5961 section 7: an ACK in answer to a suspicious segment, rate-limited."""
        if now - self._challenge_window >= 1.0:
            self._challenge_window = now
            self._challenge_count = 0
        if self._challenge_count < self.config.challenge_ack_limit:
            self._challenge_count += 1
            self.stats["challenge_acks"] += 1
            self._ack_now = True
        else:
            self.stats["challenge_acks_suppressed"] += 1

    # ------------------------------------------------------------------ sending

    def segments_to_send(self, now: float) -> list[TcpRepr]:
        """Everything this connection should transmit now, oldest first."""
        out = self._rst_queue
        self._rst_queue = []
        state = self.state
        if state is CLOSED or state is LISTEN:
            return out
        if state is SYN_SENT or state is SYN_RECEIVED:
            if self.snd_nxt == self.iss:
                out.append(self._syn_segment(now))     # it carries any ACK due
            if state is SYN_SENT:
                return out
            # SYN-RECEIVED goes on to the ACK below: a challenge ACK, or the answer
            # to an unacceptable segment.
        elif state is not TIME_WAIT:
            self._send_retransmissions(out, now)
            self._send_data(out, now)
            if self._probe_now:
                self._probe_now = False
                if not out:
                    # A window probe or keepalive: an old sequence number draws an ACK
                    # with the peer's current window.
                    out.append(self._segment(self.snd_una - 1, ACK, b"", now))
            self._arm_persist(now)
        if self._ack_now and not out:
            # The highest sequence number sent (Linux's SND.NXT, which never goes back):
            # after a timeout our SND.NXT may lie below the peer's RCV.NXT, and an ACK
            # carrying it would be out of the peer's window and dropped.
            out.append(self._segment(self.snd_max, ACK, b"", now))
        if self._unacked_segments and self._delack_at is None and not self._ack_now \
                and self.config.delayed_ack > 0:
            self._delack_at = now + self.config.delayed_ack
        return out

    def _syn_segment(self, now: float) -> TcpRepr:
        cfg = self.config
        syn_ack = self.state is SYN_RECEIVED
        if syn_ack:
            flags = SYN | ACK
            ack = sq.wrap(self.rcv_nxt)
            ts = (self._ts_now(now), self.ts_recent or 0) if self.ts_ok else None
            wscale = self.rcv_wscale if cfg.window_scaling and self._peer_offered_wscale else None
            sack = self.sack_ok
            window = min(self._free_space(), 65535)
        else:
            flags = SYN
            ack = 0
            ts = (self._ts_now(now), 0) if cfg.timestamps else None
            wscale = self.rcv_wscale if cfg.window_scaling else None
            sack = cfg.sack
            window = min(self._free_space(), 65535)
        if self.snd_max > self.iss:
            self.stats["syn_retransmits"] += 1
            self._rtt_seq = None
        elif not self.ts_ok:
            self._rtt_seq = self.iss + 1
            self._rtt_sent_at = now
        self.snd_nxt = self.iss + 1
        self.snd_max = max(self.snd_max, self.snd_nxt)
        if self._rto_at is None:
            self._rto_at = now + self.rto.rto
        self._ack_now = False
        return TcpRepr(self.local_port, self.remote_port, sq.wrap(self.iss), ack,
                       FLAGS_BY_VALUE[flags], window, mss=cfg.mss, window_scale=wscale,
                       sack_permitted=sack, timestamp=ts)

    def _send_retransmissions(self, out: list[TcpRepr], now: float) -> None:
        queue, self._retx_queue = self._retx_queue, []
        for at in queue:
            if at < self.snd_una or at >= self.snd_max:
                continue
            if self.scoreboard.sacked_at(at) is not None:
                continue
            segment = self._data_segment_at(at, self.snd_max, now)
            if segment is not None:
                out.append(segment)
                self.stats["retransmitted_segments"] += 1
                self.stats["bytes_retransmitted"] += len(segment.payload)
                if self.snd_nxt == at:   # after a timeout: go on from behind this segment
                    self.snd_nxt = at + segment.segment_len

    def _data_segment_at(self, at: int, limit: int, now: float) -> TcpRepr | None:
        """One segment of already-sent data starting at ``at``, for retransmission."""
        buf_end = self._buf_start + len(self._buf)
        cap = self._payload_cap()
        n = min(cap, buf_end - at, limit - at)
        nxt = self.scoreboard.next_sacked(at)
        if nxt is not None:
            n = min(n, nxt - at)
        n = max(n, 0)
        fin = self._fin_queued and at + n == buf_end and self.snd_max > buf_end
        if n == 0 and not fin:
            return None
        offset = at - self._buf_start
        payload = bytes(self._buf[offset:offset + n])
        flags = ACK | (FIN if fin else 0) | (PSH if n and at + n == buf_end else 0)
        self._rtt_seq = None                  # Karn: no sample across a retransmission
        if n:
            self._last_data_sent_at = now
        self._retx_high = max(self._retx_high, at + n)
        if self._rto_at is None:
            self._rto_at = now + self.rto.rto
        return self._segment(at, flags, payload, now)

    def _send_data(self, out: list[TcpRepr], now: float) -> None:
        if self.state not in (ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1,
                              CLOSING, LAST_ACK):
            return
        cfg = self.config
        if cfg.slow_start_after_idle and self.snd_max == self.snd_una \
                and self._last_data_sent_at is not None \
                and now - self._last_data_sent_at > self.rto.rto and self.unsent:
            self._last_data_sent_at = None
            self.cc.restart_after_idle()
            self.stats["cwnd_restarts_after_idle"] += 1
        while True:
            buf_end = self._buf_start + len(self._buf)
            if self.snd_nxt < self._buf_start:
                self.snd_nxt = self._buf_start
            retransmitting = self.snd_nxt < self.snd_max
            if retransmitting and self.scoreboard:
                sacked_end = self.scoreboard.sacked_at(self.snd_nxt)
                if sacked_end is not None:
                    self.snd_nxt = sacked_end
                    continue
            fin_pending = self._fin_queued and self.snd_nxt <= buf_end and not self._fin_acked
            avail = buf_end - self.snd_nxt
            if avail <= 0 and not fin_pending:
                break
            cap = self._payload_cap()
            cwnd = self.cc.cwnd
            if not self._in_recovery and self._dupacks in (1, 2):
                # RFC 3042 limited transmit: each of the first two duplicate ACKs lets one
                # new segment out, so a small window still gathers three duplicates.
                cwnd += self._dupacks * self._smss()
            usable = self.snd_una + min(self.snd_wnd, cwnd) - self.snd_nxt
            n = min(avail, cap, max(usable, 0))
            if retransmitting:
                nxt = self.scoreboard.next_sacked(self.snd_nxt)
                if nxt is not None:
                    n = min(n, nxt - self.snd_nxt)
            idle = self.snd_max == self.snd_una
            if n <= 0:
                if not (fin_pending and avail <= 0):
                    break
                n = 0
            elif n < cap and n < avail:
                # Sender SWS avoidance: no small segment while the window is what limits us,
                # unless nothing is in flight (RFC 9293 3.8.6.2.1).
                if not retransmitting and not idle and n < self.max_snd_wnd // 2:
                    break
            elif n < cap and cfg.nagle and not retransmitting and not idle and not fin_pending:
                break   # Nagle: one small segment in flight at a time
            start = self.snd_nxt
            offset = start - self._buf_start
            payload = bytes(self._buf[offset:offset + n])
            fin = fin_pending and start + n == buf_end
            flags = ACK | (PSH if n and start + n == buf_end else 0) | (FIN if fin else 0)
            out.append(self._segment(start, flags, payload, now))
            if n:
                self._last_data_sent_at = now
            if retransmitting:
                self.stats["retransmitted_segments"] += 1
                self.stats["bytes_retransmitted"] += n
                self._rtt_seq = None
            elif self._rtt_seq is None and not self.ts_ok and n:
                self._rtt_seq = start + n
                self._rtt_sent_at = now
            self.snd_nxt = start + n + (1 if fin else 0)
            self.snd_max = max(self.snd_max, self.snd_nxt)
            if self._rto_at is None:
                self._rto_at = now + self.rto.rto
            if fin:
                break

    def _arm_persist(self, now: float) -> None:
        """Start the persist timer when a zero window stops us with nothing in flight."""
        waiting = self.unsent > 0 or (self._fin_queued and self.snd_max <= self._buf_start
                                      + len(self._buf))
        if self.snd_wnd == 0 and waiting and self.snd_max == self.snd_una:
            if self._persist_at is None:
                delay = min(self.rto.rto * (1 << min(self._persist_backoff, 16)),
                            self.config.max_rto)
                self._persist_at = now + delay
        else:
            self._persist_at = None
            if self.snd_wnd:
                self._persist_backoff = 0

    def _segment(self, seq_abs: int, flags: int, payload: bytes, now: float) -> TcpRepr:
        """A synchronized-state segment: ACK, window, timestamp and SACK blocks filled in."""
        window = self._advertise()
        ts = (self._ts_now(now), self.ts_recent or 0) if self.ts_ok else None
        blocks: tuple[tuple[int, int], ...] = ()
        if self.sack_ok and len(self._ooo):
            blocks = tuple((sq.wrap(s), sq.wrap(e))
                           for s, e in self._ooo.blocks(3 if self.ts_ok else 4))
        self._last_ack_sent = self.rcv_nxt
        self._ack_now = False
        self._unacked_segments = 0
        self._delack_at = None
        self.stats["segments_out"] += 1
        if payload:
            self.stats["bytes_sent"] += len(payload)
        return build_tcp_repr(self.local_port, self.remote_port, sq.wrap(seq_abs),
                              sq.wrap(self.rcv_nxt), FLAGS_BY_VALUE[flags], window,
                              timestamp=ts, sack_blocks=blocks, payload=payload)

    def _bare(self, flags: int, seq_abs: int, ack_abs: int | None) -> TcpRepr:
        """A reset: no options, no window."""
        ack = sq.wrap(ack_abs) if ack_abs is not None and flags & ACK else 0
        return TcpRepr(self.local_port, self.remote_port, sq.wrap(seq_abs), ack,
                       FLAGS_BY_VALUE[flags], 0)

    # ------------------------------------------------------------------ sizes

    def _smss(self) -> int:
        """Sender MSS for congestion control: data per full segment with timestamps."""
        return max(min(self.peer_mss, self._path_mss) - (TS_OPTION_LEN if self.ts_ok else 0), 64)

    def _payload_cap(self) -> int:
        cap = self._smss()
        if self.sack_ok and len(self._ooo):
            cap -= 4 + 8 * min(len(self._ooo), 3 if self.ts_ok else 4)
        return max(cap, 1)

    def _free_space(self) -> int:
        return max(0, self.config.recv_buffer - len(self._rcv_buf))

    def _update_threshold(self) -> int:
        return max(1, min(self.config.recv_buffer // 2, self._rcv_mss()))

    def _rcv_mss(self) -> int:
        return self.config.mss

    def _window_growth(self) -> int:
        return self._free_space() - max(self.rcv_adv - self.rcv_nxt, 0)

    def _advertise(self) -> int:
        """The window field to send; the window never shrinks (RFC 9293 3.8.6.2.2)."""
        current = max(self.rcv_adv - self.rcv_nxt, 0)
        free = self._free_space()
        wnd = free if free - current >= self._update_threshold() or free <= current else current
        field = min(wnd >> self.rcv_wscale, 65535)
        self.rcv_adv = max(self.rcv_adv, self.rcv_nxt + (field << self.rcv_wscale))
        return field

    def _ts_now(self, now: float) -> int:
        return ts_clock(now, self._ts_offset)

    # ------------------------------------------------------------------ inspection

    def snapshot(self) -> dict[str, object]:
        """What ``ss -ti`` shows of a socket, read-only: queues, window, RTT and counts.

        ``send_queue`` holds the bytes not yet acknowledged (sent or not),
        ``receive_queue`` those received in order and not yet read; ``ssthresh``
        is None until a loss sets it; times are in milliseconds, ``srtt_ms``
        None before the first RTT sample.  ``bytes_sent`` counts every
        payload byte sent, retransmissions included (``bytes_retransmitted``);
        ``bytes_received`` the bytes received in order.
        """
        stats = self.stats
        # None while still "arbitrarily high" (RFC 5681 3.1): no loss yet.
        ssthresh: int | None = self.cc.ssthresh if self.cc.ssthresh < 1 << 30 else None
        srtt = self.rto.srtt
        rttvar = self.rto.rttvar
        return {
            "state": self.state.value,
            "send_queue": len(self._buf),
            "receive_queue": len(self._rcv_buf),
            "mss": self._smss(),
            "cwnd": self.cc.cwnd,
            "ssthresh": ssthresh,
            "send_window": self.snd_wnd,
            "in_flight": self.in_flight,
            "srtt_ms": None if srtt is None else round(srtt * 1000, 3),
            "rttvar_ms": None if rttvar is None else round(rttvar * 1000, 3),
            "rto_ms": round(self.rto.rto * 1000, 3),
            "retransmits": stats["retransmitted_segments"] + stats["syn_retransmits"],
            "timeouts": stats["timeouts"],
            "segments_in": stats["segments_in"],
            "segments_out": stats["segments_out"],
            "bytes_sent": stats["bytes_sent"],
            "bytes_retransmitted": stats["bytes_retransmitted"],
            "bytes_acked": max(0, self._buf_start - self.iss - 1),
            "bytes_received": stats["bytes_received"],
        }

    def __repr__(self) -> str:
        return (f"<Connection {self.local_port}->{self.remote_port} {self.state.value} "
                f"una={self.snd_una - self.iss} nxt={self.snd_nxt - self.iss} "
                f"rcv_nxt={self.rcv_nxt - self.irs}>")


def window_scale_for(config: TcpConfig) -> int:
    """The smallest shift with 65535 << shift >= the receive buffer (at most 14)."""
    # ceil(buffer / 65535) rounded up to a power of two, as a shift count
    units = -(-config.recv_buffer // 65535)
    return min(max(units - 1, 0).bit_length(), MAX_WINDOW_SCALE)


def ts_clock(now: float, offset: int) -> int:
    """The TSval at ``now``: milliseconds plus the connection's offset (RFC 7323 5.4)."""
    return (int(now * 1000) + offset) & sq.MASK
