"""What the TCP state modules (``arrival``, ``time_wait``, ``listener``, ``output``,
``timers``, ``calls``) ask of the layer that holds the connections: a narrow interface,
so that they depend on these services and not on `TcpLayer` or the host."""

from __future__ import annotations

import random
from typing import Protocol

from stack.endpoints import Endpoint, IpService
from stack.settings import Settings
from stack.tcp.connection import TcpSocket
from stack.tcp.state import Event
from stack.timing import Nanoseconds
from stack.wire.tcp import TcpSegment

Connections = dict[tuple[Endpoint, Endpoint], TcpSocket]


class TcpContext(Protocol):
    ip: IpService
    settings: Settings
    rng: random.Random
    sockets: dict[int, TcpSocket]  # by handle: what the user holds
    connections: Connections  # by (local, remote): everything with a peer

    def record_drop(self, now: Nanoseconds, reason: str, detail: str = "") -> None: ...

    def listener_for(self, local: Endpoint) -> TcpSocket | None:
        """The listening socket for ``local``: one bound to that address, else one bound
        to the wildcard."""

    def new_connection(self, parent: TcpSocket, local: Endpoint, remote: Endpoint
                       ) -> TcpSocket:
        """A connection made by a listener: a copy of it, in LISTEN, with its options."""

    def initial_sequence(self, sock: TcpSocket, now: Nanoseconds) -> int: ...

    def update_mss(self, sock: TcpSocket, now: Nanoseconds) -> None:
        """Recompute the MSS we announce and the one we send from the path MTU."""

    def terminate(self, sock: TcpSocket, event: Event, now: Nanoseconds,
                  errno: str | None) -> None:
        """The connection is over: CLOSED, timers stopped, the error left for the user."""

    def send_reset_reply(self, segment: TcpSegment, local: Endpoint, remote: Endpoint,
                         now: Nanoseconds) -> None:
        """A RST in reply to ``segment`` (RFC 9293 3.10.7.1)."""
