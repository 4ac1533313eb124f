"""Template segments and a connection under test, smoltcp style.

The connection under test ("local") is driven by segments written from the
peer's side ("remote") and an explicit time.  Options are off unless a
test turns them on, so templates stay short.
"""

from __future__ import annotations

from dataclasses import replace

from stacks.utcp import Connection, State, TcpConfig
from stacks.wire.tcp import TcpFlags, TcpRepr

ACK, SYN, FIN, RST, PSH = TcpFlags.ACK, TcpFlags.SYN, TcpFlags.FIN, TcpFlags.RST, TcpFlags.PSH
LOCAL_PORT = 80
REMOTE_PORT = 49500
LOCAL_ISS = 10_000
REMOTE_ISS = 50_000
WINDOW = 64_000


def plain_config(**overrides) -> TcpConfig:
    """No options, no delayed ACK, no Nagle: each test switches on what it examines."""
    base = dict(timestamps=False, sack=False, window_scaling=False, delayed_ack=0.0,
                nagle=False, mss=1000, recv_buffer=64_000, send_buffer=64_000)
    base.update(overrides)
    return TcpConfig(**base)


def remote(seq: int, ack: int = 0, flags: TcpFlags = ACK, payload: bytes = b"",
           window: int = WINDOW, **options) -> TcpRepr:
    """A segment from the peer; ``seq``/``ack`` are offsets from REMOTE_ISS / LOCAL_ISS."""
    return TcpRepr(REMOTE_PORT, LOCAL_PORT, (REMOTE_ISS + seq) & 0xFFFFFFFF,
                   (LOCAL_ISS + ack) & 0xFFFFFFFF if flags & ACK else 0, flags, window,
                   payload=payload, **options)


def local(seq: int, ack: int = 0, flags: TcpFlags = ACK, payload: bytes = b"",
          window: int = WINDOW, **options) -> TcpRepr:
    """The segment we expect from the connection under test, same offsets."""
    return TcpRepr(LOCAL_PORT, REMOTE_PORT, (LOCAL_ISS + seq) & 0xFFFFFFFF,
                   (REMOTE_ISS + ack) & 0xFFFFFFFF if flags & ACK else 0, flags, window,
                   payload=payload, **options)


def sent(conn: Connection, now: float) -> list[TcpRepr]:
    return conn.segments_to_send(now)


def only(conn: Connection, now: float) -> TcpRepr:
    out = conn.segments_to_send(now)
    assert len(out) == 1, out
    return out[0]


def strip(seg: TcpRepr, **fields) -> TcpRepr:
    return replace(seg, **fields)


def listen_and_syn(config: TcpConfig | None = None, now: float = 0.0, **syn_options) -> Connection:
    """A passive connection that just got the peer's SYN (SYN-RECEIVED)."""
    config = config or plain_config()
    syn_options.setdefault("mss", 1000)
    syn = remote(0, flags=SYN, **syn_options)
    return Connection.accept(syn, isn=LOCAL_ISS, now=now, config=config)


def established(config: TcpConfig | None = None, now: float = 0.0, **syn_options) -> Connection:
    """A passive connection through the handshake, its output drained."""
    conn = listen_and_syn(config, now, **syn_options)
    conn.segments_to_send(now)                     # SYN-ACK
    conn.receive(remote(1, 1), now)
    assert conn.state is State.ESTABLISHED
    assert conn.segments_to_send(now) == []
    conn.events()
    return conn


def send_data(conn: Connection, data: bytes, now: float) -> list[TcpRepr]:
    assert conn.send(data) == len(data)
    return conn.segments_to_send(now)
