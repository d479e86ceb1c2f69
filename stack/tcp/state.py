"""The TCP state machine of RFC 9293 3.3.2 (figure 5), kept as data.

`TRANSITIONS` maps (state, event) to the next state; `change_state` is the only code that
sets a socket's state, and it records every change. A (state, event) pair missing from
the table is a bug in the stack, raised with both named.
"""

from __future__ import annotations

from enum import Enum
from typing import Final, Protocol

from stack.timing import Nanoseconds

HISTORY_KEPT: Final = 32


class State(Enum):
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


class Event(Enum):
    PASSIVE_OPEN = "listen"
    ACTIVE_OPEN = "connect"
    RECEIVE_SYN = "SYN received"
    RECEIVE_SYN_ACK = "SYN-ACK received"
    RECEIVE_ACK_OF_SYN = "ACK of our SYN received"
    RECEIVE_FIN = "FIN received"
    RECEIVE_ACK_OF_FIN = "ACK of our FIN received"
    CLOSE = "close or shutdown(SHUT_WR)"
    TIMEOUT = "timer expired"  # 2 x MSL in TIME-WAIT, tcp_fin_timeout in FIN-WAIT-2
    RESET = "RST received"
    ABORT = "aborted"  # RST sent, retransmissions given up, ICMP hard error
    REOPEN = "new SYN in TIME-WAIT"


S, E = State, Event
SYNCHRONIZED: Final = frozenset({
    S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT, S.CLOSING, S.LAST_ACK,
    S.TIME_WAIT,
})

TRANSITIONS: Final[dict[tuple[State, Event], State]] = {
    (S.CLOSED, E.PASSIVE_OPEN): S.LISTEN,
    (S.CLOSED, E.ACTIVE_OPEN): S.SYN_SENT,
    (S.LISTEN, E.CLOSE): S.CLOSED,
    # A connection made by a listener starts as a copy of it, in LISTEN (like Linux).
    (S.LISTEN, E.RECEIVE_SYN): S.SYN_RECEIVED,
    (S.SYN_SENT, E.RECEIVE_SYN_ACK): S.ESTABLISHED,
    (S.SYN_SENT, E.RECEIVE_SYN): S.SYN_RECEIVED,  # simultaneous open
    (S.SYN_SENT, E.CLOSE): S.CLOSED,
    (S.SYN_RECEIVED, E.RECEIVE_ACK_OF_SYN): S.ESTABLISHED,
    (S.SYN_RECEIVED, E.CLOSE): S.FIN_WAIT_1,
    (S.SYN_RECEIVED, E.RECEIVE_FIN): S.CLOSE_WAIT,
    (S.ESTABLISHED, E.CLOSE): S.FIN_WAIT_1,
    (S.ESTABLISHED, E.RECEIVE_FIN): S.CLOSE_WAIT,
    (S.FIN_WAIT_1, E.RECEIVE_ACK_OF_FIN): S.FIN_WAIT_2,
    (S.FIN_WAIT_1, E.RECEIVE_FIN): S.CLOSING,
    (S.FIN_WAIT_2, E.RECEIVE_FIN): S.TIME_WAIT,
    (S.FIN_WAIT_2, E.TIMEOUT): S.CLOSED,  # Linux tcp_fin_timeout, orphans only
    (S.CLOSE_WAIT, E.CLOSE): S.LAST_ACK,
    (S.CLOSING, E.RECEIVE_ACK_OF_FIN): S.TIME_WAIT,
    (S.LAST_ACK, E.RECEIVE_ACK_OF_FIN): S.CLOSED,
    (S.TIME_WAIT, E.TIMEOUT): S.CLOSED,
    (S.TIME_WAIT, E.REOPEN): S.CLOSED,
}
for _state in State:
    if _state is not S.CLOSED:
        TRANSITIONS[(_state, E.RESET)] = S.CLOSED
        TRANSITIONS[(_state, E.ABORT)] = S.CLOSED


class TransitionError(Exception):
    """The stack asked for a transition the state diagram does not have: a bug here."""

    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"no transition from {state.value} on {event.value!r}")
        self.state = state
        self.event = event


class HasState(Protocol):
    state: State
    state_history: list[tuple[Nanoseconds, str, str, str]]


def change_state(sock: HasState, event: Event, now: Nanoseconds) -> State:
    """Move ``sock`` along the diagram on ``event``; returns the new state."""
    following = TRANSITIONS.get((sock.state, event))
    if following is None:
        raise TransitionError(sock.state, event)
    sock.state_history.append((now, sock.state.value, event.value, following.value))
    del sock.state_history[:-HISTORY_KEPT]
    sock.state = following
    return following
