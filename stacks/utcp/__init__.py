"""UTCP: a user-space TCP.  The core (everything but :mod:`.trio_api`) is sans-IO."""

from .config import TcpConfig
from .connection import Connection
from .endpoint import Endpoint
from .events import (Connected, ConnectionClosed, DataReceived, EofReceived, LocalProtocolError,
                     RemoteProtocolError, SendSpaceAvailable, TcpError)
from .listener import Listener
from .states import State

__all__ = ["Connected", "Connection", "ConnectionClosed", "DataReceived", "Endpoint",
           "EofReceived", "Listener", "LocalProtocolError", "RemoteProtocolError",
           "SendSpaceAvailable", "State", "TcpConfig", "TcpError"]
