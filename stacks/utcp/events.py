"""What a connection tells its application, and the errors it raises.

Like h11: :class:`LocalProtocolError` means *this* side asked for something
the state forbids; :class:`RemoteProtocolError` means the connection ended
because of the peer or the network (reset, refused, timed out).
"""

from __future__ import annotations

from dataclasses import dataclass


class TcpError(Exception):
    """Base of the errors UTCP raises on purpose."""


class LocalProtocolError(TcpError):
    """The application did something the connection's state does not allow."""


class RemoteProtocolError(TcpError):
    """The connection failed because of the peer or the path.

    ``reason`` is one of ``"reset"``, ``"refused"``, ``"timeout"``, ``"unreachable"``.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Connected:
    """The three-way handshake completed."""


@dataclass(frozen=True, slots=True)
class DataReceived:
    """``length`` new in-order bytes are waiting in the receive buffer (read them with ``read``)."""
    length: int


@dataclass(frozen=True, slots=True)
class EofReceived:
    """The peer sent FIN: no more data will arrive."""


@dataclass(frozen=True, slots=True)
class SendSpaceAvailable:
    """Acknowledgements freed room in the send buffer."""


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The connection ended cleanly; ``error`` is set when it did not."""
    error: RemoteProtocolError | None = None


Event = Connected | DataReceived | EofReceived | SendSpaceAvailable | ConnectionClosed
