"""A hand-driven TCP peer for the stack's TCP unit tests.

The tests play the peer at 192.0.2.2 on the virtual link of `tests.stack_link`: they
build segments with scapy (so scapy checks the stack's codec independently), with the
tester's own sequence bookkeeping (`TcpSequence`, as `TcpFlow` keeps it on the lab's
wire), and read what the stack sends. Time is the link's virtual
clock.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from scapy.layers.inet import TCP
from scapy.packet import Packet

from conformance.testbench.tcp_sequence import MOD, TcpSequence
from stack.settings import Settings
from tests.stack_link import DUT_IP, PEER_IP, Link

PEER_ISN = 1_000_000
DUT_PORT = 5000
PEER_PORT = 40000


class Peer:
    """The far end of one connection, its bookkeeping the tester's own
    (`conformance.testbench.tcp_sequence.TcpSequence`, in `flow`). The tests speak in
    absolute sequence numbers: ``snd_nxt`` is the peer's next one, ``rcv_nxt`` what it
    expects from the stack, and ``seq``/``ack`` arguments are absolute too. Until the
    stack's SYN is seen, the stack's ISN counts as 0, so absolute and relative agree."""

    def __init__(self, link: Link, *, sport: int = PEER_PORT, dport: int = DUT_PORT,
                 isn: int = PEER_ISN) -> None:
        self.link = link
        self.flow = TcpSequence(PEER_IP, DUT_IP, sport, dport, isn=isn, dut_isn=0)

    @property
    def isn(self) -> int:
        return self.flow.isn

    @property
    def snd_nxt(self) -> int:
        return (self.flow.isn + self.flow.snd_nxt) % MOD

    @property
    def rcv_nxt(self) -> int:
        return (self._dut_isn() + self.flow.rcv_nxt) % MOD

    def segment(self, flags: str, payload: bytes = b"", *, seq: int | None = None,
                ack: int | None = None, window: int | None = None,
                options: list[tuple[str, object]] | None = None) -> Packet:
        return self.flow.segment(
            flags, payload, seq=None if seq is None else (seq - self.flow.isn) % MOD,
            ack=None if ack is None else (ack - self._dut_isn()) % MOD,
            window=window, options=options)

    def send(self, flags: str, payload: bytes = b"", *, seq: int | None = None,
             ack: int | None = None, window: int | None = None,
             options: list[tuple[str, object]] | None = None) -> None:
        """Send a segment; the peer's SND.NXT moves unless ``seq`` is given."""
        self.link.inject(self.segment(flags, payload, seq=seq, ack=ack, window=window,
                                      options=options))
        if seq is None:
            self.flow.sent(flags, payload)

    def received(self) -> list[Packet]:
        """The TCP segments the stack sent since the last look, on this connection.
        The peer's RCV.NXT follows them."""
        segments = [frame[TCP] for frame in self.link.sent() if TCP in frame]
        for tcp in segments:
            self.flow.arrived(tcp)
        return segments

    def received_one(self) -> Packet:
        segments = self.received()
        assert len(segments) == 1, f"expected one segment, got {[s.summary() for s in segments]}"
        return segments[0]

    def nothing_received(self) -> None:
        segments = self.received()
        assert not segments, f"expected nothing, got {[s.summary() for s in segments]}"

    # --- scenarios ----------------------------------------------------------------------

    def _dut_isn(self) -> int:
        assert self.flow.dut_isn is not None, "the peer starts with the stack's ISN at 0"
        return self.flow.dut_isn

    def open_to_listener(self, mss: int = 1460) -> Packet:
        """SYN, SYN-ACK, ACK against a listening stack; returns the SYN-ACK."""
        self.send("S", options=[("MSS", mss)])
        synack = self.received_one()
        assert synack.flags == "SA", synack.summary()
        self.send("A")
        return synack

    def answer_connect(self, mss: int = 1460) -> Packet:
        """The stack sent a SYN (already sent): answer SYN-ACK, take its ACK."""
        syn = self.received_one()
        assert syn.flags == "S", syn.summary()
        self.send("SA", options=[("MSS", mss)])
        ack = self.received_one()
        assert ack.flags == "A" and ack.ack == self.snd_nxt, ack.summary()
        return syn


def flags_of(segment: Packet) -> str:
    return str(segment.flags)


def listening(link: Link, port: int = DUT_PORT, backlog: int = 8) -> int:
    handle = link.api.socket("tcp")
    link.api.bind(handle, IPv4Address(DUT_IP), port)
    link.api.listen(handle, backlog, link.now)
    return handle


def established_passive(settings: Settings | None = None, **link_options: object
                        ) -> tuple[Link, Peer, int]:
    """A stack that accepted a connection from the peer: (link, peer, accepted handle)."""
    link = Link(settings, **link_options)  # type: ignore[arg-type]
    listener = listening(link)
    peer = Peer(link)
    peer.open_to_listener()
    accepted = link.api.accept(listener)
    return link, peer, accepted.handle


def connect_errno(link: Link, handle: int, port: int = DUT_PORT) -> str:
    from stack.errors import SocketError

    try:
        link.api.connect(handle, IPv4Address(PEER_IP), port, link.now)
    except SocketError as error:
        return error.errno
    return "OK"


def established_active(settings: Settings | None = None, **link_options: object
                       ) -> tuple[Link, Peer, int]:
    """A stack that connected to the peer: (link, peer, handle)."""
    link = Link(settings, **link_options)  # type: ignore[arg-type]
    handle = link.api.socket("tcp")
    assert connect_errno(link, handle, PEER_PORT) == "EINPROGRESS"
    syn = link.sent()
    peer = Peer(link, sport=PEER_PORT, dport=syn[0][TCP].sport)
    peer.flow.arrived(syn[0])
    peer.send("SA", options=[("MSS", 1460)])
    ack = peer.received_one()
    assert ack.flags == "A", ack.summary()
    assert link.api.finish_connect(handle)
    return link, peer, handle
