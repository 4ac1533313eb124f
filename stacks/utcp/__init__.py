"""UTCP: a user-space TCP.  The core (everything but :mod:`.trio_api`) is sans-IO.

Modules, one concern each:

* :mod:`.states` — the RFC 9293 state machine as a table;
* :mod:`.seq` — 32-bit sequence arithmetic;
* :mod:`.connection` — one TCB: handshake (simultaneous open included),
  data, close (simultaneous close included), RFC 5961 checks, PAWS,
  window scaling, MSS, delayed ACK, Nagle, keepalive, zero-window probes,
  TIME-WAIT, retransmission and loss recovery;
* :mod:`.rto` — RFC 6298; :mod:`.congestion` — NewReno (RFC 5681/6582)
  and CUBIC (RFC 9438) behind one interface; :mod:`.sack` — RFC 2018
  receive blocks and the sender's scoreboard;
* :mod:`.isn` — RFC 6528; :mod:`.syncookies` — RFC 4987 SYN cookies;
* :mod:`.listener` — bounded SYN queue and backlog; :mod:`.endpoint` —
  demultiplexing, resets for unknown segments, timers of many connections;
* :mod:`.trio_api` — the trio streams and listeners over a Host.

Also RFC 3042 limited transmit.  Not implemented: urgent data (URG is
ignored), ECN, TCP Fast Open, RACK/TLP, MD5/AO signatures.
"""

import os as _os

from stacks._compiled import guard as _guard

#: Whether the core runs compiled by mypyc (see stacks/_compiled.py) or as Python.
COMPILED = _guard(__name__, _os.path.dirname(__file__))

from .config import TcpConfig  # noqa: E402 (the guard decides where these come from)
from .connection import Connection  # noqa: E402
from .endpoint import Endpoint
from .events import (Connected, ConnectionClosed, DataReceived, EofReceived, LocalProtocolError,
                     RemoteProtocolError, SendSpaceAvailable, TcpError)
from .listener import Listener
from .states import State

__all__ = ["Connected", "Connection", "ConnectionClosed", "DataReceived", "Endpoint",
           "EofReceived", "Listener", "LocalProtocolError", "RemoteProtocolError",
           "SendSpaceAvailable", "State", "TcpConfig", "TcpError"]
