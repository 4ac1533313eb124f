"""The RFC 9293 connection state machine, as data.

``TRANSITIONS`` maps (state, event) to the next state; a pair that is not
in the table is a transition TCP does not make.  The connection code
decides *which* event a segment or call amounts to; this table alone
decides where that leads.  A FIN that also acknowledges our FIN in
FIN-WAIT-1 is two events in a row (ACK of FIN, then FIN), as RFC 9293
processes the ACK field before the FIN bit.  Abort, a peer's reset and a timeout end every
state, so they are listed for each.
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"

    # Members are singletons compared by identity, so the identity hash agrees with
    # equality; Enum's own __hash__ is a Python call at every set or dict lookup.
    __hash__ = object.__hash__


class Event(enum.Enum):
    ACTIVE_OPEN = "active open"          # the application connects: SYN goes out
    PASSIVE_OPEN = "passive open"        # the application listens
    RCV_SYN = "SYN received"             # a SYN without ACK
    RCV_SYN_ACK = "SYN+ACK received"     # the answer to our SYN
    RCV_ACK_OF_SYN = "ACK of SYN"        # the third segment of the handshake
    CLOSE = "close"                      # the application has no more to send
    RCV_FIN = "FIN received"
    RCV_ACK_OF_FIN = "ACK of FIN"
    TIME_WAIT_EXPIRED = "2MSL timeout"
    ABORT = "abort"                      # the application resets
    RCV_RST = "RST received"
    TIMEOUT = "user timeout"             # retransmissions or keepalives gave up

    __hash__ = object.__hash__           # as State's


S, E = State, Event

# The states as module constants too: on Python 3.11 every ``State.X`` goes through
# EnumType.__getattr__'s slow attribute path, which code run per segment notices.
CLOSED, LISTEN, SYN_SENT, SYN_RECEIVED = S.CLOSED, S.LISTEN, S.SYN_SENT, S.SYN_RECEIVED
ESTABLISHED, CLOSE_WAIT, LAST_ACK = S.ESTABLISHED, S.CLOSE_WAIT, S.LAST_ACK
FIN_WAIT_1, FIN_WAIT_2, CLOSING, TIME_WAIT = S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSING, S.TIME_WAIT

TRANSITIONS: dict[tuple[State, Event], State] = {
    (S.CLOSED, E.ACTIVE_OPEN): S.SYN_SENT,
    (S.CLOSED, E.PASSIVE_OPEN): S.LISTEN,
    (S.LISTEN, E.RCV_SYN): S.SYN_RECEIVED,
    (S.LISTEN, E.CLOSE): S.CLOSED,
    (S.SYN_SENT, E.RCV_SYN_ACK): S.ESTABLISHED,
    (S.SYN_SENT, E.RCV_SYN): S.SYN_RECEIVED,          # simultaneous open
    (S.SYN_SENT, E.CLOSE): S.CLOSED,
    (S.SYN_RECEIVED, E.RCV_ACK_OF_SYN): S.ESTABLISHED,
    (S.ESTABLISHED, E.CLOSE): S.FIN_WAIT_1,
    (S.ESTABLISHED, E.RCV_FIN): S.CLOSE_WAIT,
    (S.FIN_WAIT_1, E.RCV_ACK_OF_FIN): S.FIN_WAIT_2,
    (S.FIN_WAIT_1, E.RCV_FIN): S.CLOSING,              # simultaneous close
    (S.FIN_WAIT_2, E.RCV_FIN): S.TIME_WAIT,
    (S.CLOSE_WAIT, E.CLOSE): S.LAST_ACK,
    (S.CLOSING, E.RCV_ACK_OF_FIN): S.TIME_WAIT,
    (S.LAST_ACK, E.RCV_ACK_OF_FIN): S.CLOSED,
    (S.TIME_WAIT, E.TIME_WAIT_EXPIRED): S.CLOSED,
}

for _state in State:
    if _state is not S.CLOSED:
        for _event in (E.ABORT, E.RCV_RST, E.TIMEOUT):
            TRANSITIONS[_state, _event] = S.CLOSED

#: "OLD->NEW" for each transition: the name a connection counts it under.
TRANSITION_NAMES: dict[tuple[State, State], str] = {
    (old, new): f"{old.value}->{new.value}" for (old, _), new in TRANSITIONS.items()}

#: States in which both sides have exchanged SYNs.
SYNCHRONIZED = frozenset({S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT,
                          S.CLOSING, S.LAST_ACK, S.TIME_WAIT})
#: States in which arriving data is delivered to the application.
RECEIVING = frozenset({S.SYN_RECEIVED, S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2})
#: States in which the application may still queue data.
SENDING = frozenset({S.SYN_SENT, S.SYN_RECEIVED, S.ESTABLISHED, S.CLOSE_WAIT})


class IllegalTransition(Exception):
    """The state machine was asked for a transition RFC 9293 does not have."""


def next_state(state: State, event: Event) -> State:
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        raise IllegalTransition(f"no transition from {state.value} on {event.value}") from None
