"""Two reference-stack hosts joined by a virtual Ethernet link, under a virtual clock.

Host A is the lab's DUT (192.0.2.1), host B its tester (192.0.2.2). Frames one host sends reach
the other after a one-way delay; the link can drop, duplicate and delay (so reorder)
IPv4 frames as a seeded `Faults` schedule says, while ARP always gets through. Time is
integer nanoseconds and moves only from one event to the next: the earliest of the next
frame delivery and each host's `next_timer()`. No sleeps, no I/O, no privileges.

The applications on top are `Peer` calls on each host's socket API with the clock
filled in, and the streaming helpers `StreamWriter` and `StreamReader`, which a test
pumps after every event through `Pair.run(until=...)`.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Final

from conformance.lab import addressing
from stack.errors import SocketError
from stack.host import Host, InterfaceConfig
from stack.settings import Settings
from stack.sockets import SocketApi
from stack.timing import MILLISECOND, SECOND, Nanoseconds, earliest
from stack.wire.ethernet import MacAddress

# Two stations of the lab's address plan (conformance.lab.addressing): the DUT and the tester.
A_IP: Final = IPv4Address(addressing.DUT.ip)
B_IP: Final = IPv4Address(addressing.TESTER.ip)
A_MAC: Final = addressing.DUT.mac
B_MAC: Final = addressing.TESTER.mac
NETWORK: Final = addressing.LINK
START: Final[Nanoseconds] = 1_000 * SECOND  # far from zero: 0 is never "unset" by luck
ETHERTYPE_IPV4: Final = b"\x08\x00"
IPPROTO_TCP: Final = 6
# Events handled at one instant before the harness calls it a livelock (a timer that
# stays due, frames bouncing with zero delay).
MAX_EVENTS_AT_ONE_INSTANT: Final = 100_000


class Stuck(AssertionError):
    """The pair stopped making progress: nothing pending, or the time limit passed."""


@dataclass
class Faults:
    """What the link does to IPv4 frames, drawn from a seeded generator.

    Only the first ``budget`` IPv4 frames in each direction are subject to faults, and
    never more than ``max_consecutive_drops`` in a row per direction, so every segment
    gets through after a bounded number of retransmissions: the connection cannot reach
    R2 (RFC 1122 4.2.3.5) or the SYN retry limit.
    """

    seed: int = 0
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0  # probability that a frame is held back by extra delay
    reorder_delay: Nanoseconds = 5 * MILLISECOND  # at most this much extra
    budget: int = 1_000
    max_consecutive_drops: int = 3


@dataclass
class LinkCounters:
    """Per direction ("a->b", "b->a")."""

    frames: dict[str, int] = field(default_factory=lambda: {"a->b": 0, "b->a": 0})
    tcp_segments: dict[str, int] = field(default_factory=lambda: {"a->b": 0, "b->a": 0})
    dropped: dict[str, int] = field(default_factory=lambda: {"a->b": 0, "b->a": 0})
    duplicated: dict[str, int] = field(default_factory=lambda: {"a->b": 0, "b->a": 0})
    delayed: dict[str, int] = field(default_factory=lambda: {"a->b": 0, "b->a": 0})


def is_tcp(frame: bytes) -> bool:
    return frame[12:14] == ETHERTYPE_IPV4 and len(frame) > 23 and frame[23] == IPPROTO_TCP


class Peer:
    """One host's socket API, with the pair's clock filled in where a call needs it."""

    def __init__(self, pair: Pair, host: Host) -> None:
        self.pair = pair
        self.host = host
        self.api = SocketApi(host)
        self.address = host.address

    @property
    def now(self) -> Nanoseconds:
        return self.pair.now

    def socket(self) -> int:
        return self.api.socket("tcp")

    def bind(self, handle: int, port: int, address: IPv4Address | None = None) -> None:
        self.api.bind(handle, address or IPv4Address("0.0.0.0"), port)

    def listen(self, handle: int, backlog: int = 16) -> None:
        self.api.listen(handle, backlog, self.now)

    def connect(self, handle: int, address: IPv4Address, port: int) -> None:
        """Start the handshake; a blocking socket's EINPROGRESS is left to the caller's
        wait for the connection to be writable."""
        self.api.set_nonblocking(handle, True)
        try:
            self.api.connect(handle, address, port, self.now)
        except SocketError as error:
            if error.errno != "EINPROGRESS":
                raise

    def accept(self, handle: int) -> int | None:
        """The next established connection, or None while there is none."""
        try:
            return self.api.accept(handle, self.now).handle
        except SocketError as error:
            if error.errno == "EAGAIN":
                return None
            raise

    def send(self, handle: int, data: bytes) -> int:
        """Bytes taken (0 when the send buffer is full)."""
        try:
            return self.api.sendto(handle, data, None, {"MSG_DONTWAIT"}, self.now)
        except SocketError as error:
            if error.errno == "EAGAIN":
                return 0
            raise

    def recv(self, handle: int, size: int = 65536) -> bytes | None:
        """Data, b"" at the end of the stream, None while nothing is there."""
        try:
            return self.api.recvmsg(handle, size, {"MSG_DONTWAIT"}, self.now).data
        except SocketError as error:
            if error.errno == "EAGAIN":
                return None
            raise

    def shutdown(self, handle: int, how: str = "SHUT_WR") -> None:
        self.api.shutdown(handle, how, self.now)

    def close(self, handle: int) -> None:
        self.api.close(handle, self.now)

    def writable(self, handle: int) -> bool:
        return "POLLOUT" in self.api.poll(handle, {"POLLOUT"})

    def state(self, handle: int) -> str | None:
        """The connection's state name from the stack's snapshot, None once it is gone."""
        for sock in self.api.snapshot(self.now)["sockets"]:
            if sock["sock"] == handle:
                return str(sock.get("state"))
        return None


class Pair:
    def __init__(
        self, settings: Settings | None = None, *, faults: Faults | None = None,
        delay: Nanoseconds = 1 * MILLISECOND, seed: int = 1,
    ) -> None:
        self.now: Nanoseconds = START
        self.delay = delay
        self.faults = faults or Faults()
        self._fault_rng = random.Random(self.faults.seed)
        self.hosts = {
            "a": self._host(A_MAC, A_IP, settings, random.Random(seed)),
            "b": self._host(B_MAC, B_IP, settings, random.Random(seed + 1)),
        }
        self.a = Peer(self, self.hosts["a"])
        self.b = Peer(self, self.hosts["b"])
        self.counters = LinkCounters()
        # Frames on the wire: (delivery time, order of sending, receiving host, frame).
        self._in_flight: list[tuple[Nanoseconds, int, str, bytes]] = []
        self._sent = 0
        self._faulted = {"a->b": 0, "b->a": 0}
        self._drop_run = {"a->b": 0, "b->a": 0}

    @staticmethod
    def _host(mac: str, address: IPv4Address, settings: Settings | None,
              rng: random.Random) -> Host:
        config = InterfaceConfig(mac=MacAddress.from_string(mac), address=address,
                                 network=NETWORK)
        return Host(config, settings, rng)

    # --- the link -------------------------------------------------------------------------

    def flush(self) -> None:
        """Put what each host has sent on the wire, with the faults the schedule says."""
        for name, other in (("a", "b"), ("b", "a")):
            for frame in self.hosts[name].take_frames():
                self._transmit(f"{name}->{other}", other, frame)

    def _transmit(self, direction: str, receiver: str, frame: bytes) -> None:
        counters, faults = self.counters, self.faults
        counters.frames[direction] += 1
        if is_tcp(frame):
            counters.tcp_segments[direction] += 1
        copies, extra = 1, 0
        if frame[12:14] == ETHERTYPE_IPV4 and self._faulted[direction] < faults.budget:
            self._faulted[direction] += 1
            rng = self._fault_rng
            if (rng.random() < faults.drop
                    and self._drop_run[direction] < faults.max_consecutive_drops):
                self._drop_run[direction] += 1
                counters.dropped[direction] += 1
                return
            self._drop_run[direction] = 0
            if rng.random() < faults.duplicate:
                copies = 2
                counters.duplicated[direction] += 1
            if rng.random() < faults.reorder:
                extra = rng.randrange(1, faults.reorder_delay + 1)
                counters.delayed[direction] += 1
        for copy in range(copies):
            self._sent += 1
            # A duplicate trails its original by a microsecond.
            due = self.now + self.delay + extra + copy * 1_000
            heapq.heappush(self._in_flight, (due, self._sent, receiver, frame))

    # --- time -------------------------------------------------------------------------

    def next_event(self) -> Nanoseconds | None:
        return earliest(
            self._in_flight[0][0] if self._in_flight else None,
            self.hosts["a"].next_timer(), self.hosts["b"].next_timer(),
        )

    def step(self, wake: Nanoseconds | None = None) -> bool:
        """Move to the next event, or to ``wake`` (an application's own timer) if that
        comes first, and handle everything due then; False when nothing is pending at
        all (no frame on the wire, no timer, no wake)."""
        self.flush()
        when = earliest(self.next_event(), wake)
        if when is None:
            return False
        self.now = max(self.now, when)
        while self._in_flight and self._in_flight[0][0] <= self.now:
            _, _, receiver, frame = heapq.heappop(self._in_flight)
            self.hosts[receiver].receive(frame, self.now)
        for host in self.hosts.values():
            deadline = host.next_timer()
            if deadline is not None and deadline <= self.now:
                host.poll(self.now)
        self.flush()
        return True

    def run(self, until: Callable[[], bool], *, within: Nanoseconds = 600 * SECOND,
            wake: Callable[[], Nanoseconds | None] | None = None) -> None:
        """Step until ``until()`` holds (it is called before the first step and after
        each, so it may also drive the applications); ``wake`` says when an application
        next wants to run. Raises `Stuck` when nothing is pending or ``within`` of
        virtual time passes first."""
        deadline = self.now + within
        last, same_instant = self.now, 0
        while not until():
            self.flush()
            if not self.step(wake() if wake else None):
                raise Stuck(f"nothing pending at {self.now}; {self.describe()}")
            if self.now > deadline:
                raise Stuck(f"not done within {within} ns; {self.describe()}")
            same_instant = same_instant + 1 if self.now == last else 0
            last = self.now
            if same_instant > MAX_EVENTS_AT_ONE_INSTANT:
                raise Stuck(f"livelock at {self.now}; {self.describe()}")

    def describe(self) -> str:
        c = self.counters
        return (f"frames {c.frames}, tcp {c.tcp_segments}, dropped {c.dropped}, "
                f"duplicated {c.duplicated}, delayed {c.delayed}, in flight "
                f"{len(self._in_flight)}")

    # --- connections --------------------------------------------------------------------

    def connect(self, port: int = 5001) -> tuple[int, int]:
        """A connection from A to B's listener on ``port``: (A's socket, B's accepted
        socket). The listening socket stays open as `self.listener`."""
        self.listener = self.b.socket()
        self.b.bind(self.listener, port)
        self.b.listen(self.listener)
        client = self.a.socket()
        self.a.connect(client, B_IP, port)
        accepted: list[int] = []

        def established() -> bool:
            if not accepted and (handle := self.b.accept(self.listener)) is not None:
                accepted.append(handle)
            return bool(accepted) and self.a.writable(client)

        self.run(established, within=120 * SECOND)
        return client, accepted[0]


class StreamWriter:
    """Writes ``data`` in the given chunk sizes as the send buffer allows, then shuts
    the sending direction down (FIN)."""

    def __init__(self, peer: Peer, handle: int, data: bytes, chunks: list[int] | None = None,
                 *, shutdown: bool = True) -> None:
        self.peer, self.handle, self.data = peer, handle, data
        self.chunks = chunks or [65536]
        self.offset = 0
        self._next_chunk = 0
        self.shutdown = shutdown
        self.finished = False

    def pump(self) -> bool:
        """Write what fits now; True once everything is written (and shut down)."""
        while self.offset < len(self.data):
            size = self.chunks[self._next_chunk % len(self.chunks)]
            taken = self.peer.send(self.handle, self.data[self.offset:self.offset + size])
            if taken == 0:
                return False
            self.offset += taken
            if taken == size:
                self._next_chunk += 1
        if not self.finished:
            if self.shutdown:
                self.peer.shutdown(self.handle, "SHUT_WR")
            self.finished = True
        return True


class StreamReader:
    """Reads everything until the end of the stream (recv returns b"").

    By default it reads all there is whenever pumped. A slow reader reads at most
    ``per_read`` bytes once every ``interval`` of virtual time, and a late one nothing
    before ``start``, so that the receive buffer fills and the window closes;
    `Pair.run(..., wake=reader.wake)` wakes it."""

    def __init__(self, peer: Peer, handle: int, *, per_read: int | None = None,
                 interval: Nanoseconds = 0, start: Nanoseconds = 0) -> None:
        self.peer, self.handle = peer, handle
        self.per_read, self.interval = per_read, interval
        self.received = bytearray()
        self.eof = False
        self._next_read = start  # reads nothing before this time

    def wake(self) -> Nanoseconds | None:
        """When a slow or late reader reads next."""
        if self.eof or not (self.interval or self._next_read > self.peer.now):
            return None
        return self._next_read

    def pump(self) -> bool:
        """Read; True once the end of the stream was read."""
        if self.peer.now < self._next_read:
            return self.eof
        if self.interval:
            self._next_read = self.peer.now + self.interval
        budget = self.per_read
        while not self.eof and (budget is None or budget > 0):
            data = self.peer.recv(self.handle, min(budget or 65536, 65536))
            if data is None:
                break
            if data == b"":
                self.eof = True
            self.received += data
            if budget is not None:
                budget -= len(data)
        return self.eof
