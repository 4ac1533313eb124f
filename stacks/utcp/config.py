"""Per-connection tunables, with RFC defaults unless noted."""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass


@dataclass(slots=True)
class TcpConfig:
    #: Largest segment payload we accept; advertised in our SYN (link MTU - 40 on IPv4).
    mss: int = 1460
    recv_buffer: int = 256 * 1024
    send_buffer: int = 256 * 1024
    window_scaling: bool = True
    timestamps: bool = True
    sack: bool = True
    #: Nagle's algorithm (RFC 9293 3.7.4); False is TCP_NODELAY.
    nagle: bool = True
    #: Delay before a lone ACK goes out; 0 acknowledges every segment at once.
    delayed_ack: float = 0.04
    initial_rto: float = 1.0
    min_rto: float = 1.0
    max_rto: float = 60.0
    #: Retransmissions of one segment before the connection gives up (R2).
    max_retries: int = 12
    syn_retries: int = 6
    #: Maximum segment lifetime; TIME-WAIT lasts twice this.
    msl: float = 30.0
    keepalive_idle: float | None = None
    keepalive_interval: float = 75.0
    keepalive_count: int = 9
    #: RFC 5961 section 7: challenge ACKs per second per connection.
    challenge_ack_limit: int = 10
    congestion: str = "newreno"
    #: RFC 6298 5.7: the RTO data starts with when the SYN or SYN-ACK timed out
    #: and the handshake gave no RTT sample.
    syn_timeout_fallback_rto: float = 3.0
    #: RFC 5681 4.1: after sending nothing for longer than the RTO, start again
    #: from the restart window (as Linux's net.ipv4.tcp_slow_start_after_idle).
    slow_start_after_idle: bool = True

    def copy(self) -> TcpConfig:
        """An independent copy; each connection takes one, and dataclasses.replace
        costs several times more."""
        return TcpConfig(*_field_values(self))


_field_values = operator.attrgetter(*(field.name for field in dataclasses.fields(TcpConfig)))
