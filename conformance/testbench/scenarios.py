"""Bringing the DUT into position: every case's set-up, TCP and UDP, in one place.

TCP: `open_passive` (the DUT listens and accepts the tester's connection) and
`open_active` (the DUT connects and the tester answers its SYN) give a `Connection`: the
tester's `TcpFlow`, with relative sequence numbers, and the DUT's socket handles.
`enter_state` drives a passive one on into any synchronized state of RFC 9293 3.3.2, with
the DUT as the side that closes first where the state needs it. Each set-up is a `step`
judged at the requirement it embodies: a DUT that cannot get there fails that step.

UDP: `bound_socket` (unconnected, bound to a port) and `connected_socket` (connected to a
peer, options set first).
"""

from collections.abc import Sequence
from dataclasses import dataclass

from scapy.layers.inet import IP, TCP

from conformance.errors import HarnessError
from conformance.lab.addressing import Host
from conformance.targets.dut import Dut
from conformance.testbench.bench import ANSWER_S, Received, Testbench, step
from conformance.testbench.tcp import TcpFlow
from conformance.testbench.tcp_sequence import DEFAULT_MSS
from conformance.testbench.udp import PORT

SYNCHRONIZED_STATES = (
    "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK",
    "TIME-WAIT",
)
# The requirements the set-up steps embody: a failed step fails them (RFC 9293 3.5, 3.6).
HANDSHAKE = "RFC9293-3.5c"
CLOSING = "RFC9293-3.10.7.4j"


@dataclass
class Connection:
    flow: TcpFlow
    sock: int  # the DUT's connected socket
    listener: int | None = None  # the DUT's listener (passive open only)
    syn: Received | None = None  # the DUT's SYN (active open only)


# ---- TCP -------------------------------------------------------------------------------


def listen(dut: Dut, port: int, backlog: int = 8, *, addr: str | None = None,
           reuseaddr: bool = True, rcvbuf: int | None = None) -> int:
    """A DUT listener on `addr` (the DUT's address by default) port `port`, with
    SO_REUSEADDR unless `reuseaddr` is False; `rcvbuf` sets SO_RCVBUF before listen()."""
    listener = dut.socket("tcp")
    if reuseaddr:
        dut.setsockopt(listener, "SO_REUSEADDR", 1)
    if rcvbuf is not None:
        dut.setsockopt(listener, "SO_RCVBUF", rcvbuf)
    dut.bind(listener, addr or dut.ip, port)
    dut.listen(listener, backlog)
    return int(listener)


def open_passive(
    dut: Dut, tb: Testbench, port: int, *, sport: int = 43000, mss: int | None = 1460,
    window: int = 65535, rcvbuf: int | None = None, source: Host | None = None,
    backlog: int = 8, reuseaddr: bool = True,
) -> Connection:
    """The DUT listens on `port` (see `listen`) and accepts the tester's connection from
    `source` (the tester by default) port `sport`: a SYN with an MSS option unless `mss`
    is None."""
    listener = listen(dut, port, backlog, reuseaddr=reuseaddr, rcvbuf=rcvbuf)
    accepting = dut.start("accept", sock=listener)
    flow = TcpFlow(tb, source or tb.host, sport=sport, dport=port, window=window,
                   mss=mss or DEFAULT_MSS)
    options: list[tuple[str, object]] = [("MSS", mss)] if mss is not None else []
    with step(HANDSHAKE, "the tester opens a connection to the DUT"):
        flow.send("S", options=options, why=f"SYN from port {sport}"
                  + ("" if mss is not None else ", without an MSS option"))
        flow.expect_synack(within=ANSWER_S)
        flow.send("A", why="ACK completing the handshake")
        accepted = accepting.result(timeout=ANSWER_S)
        assert isinstance(accepted, tuple), f"accept after a completed handshake: {accepted}"
    return Connection(flow, accepted[0], listener)


def expect_dut_syn(tb: Testbench, dport: int, *, peer: Host | None = None,
                   within: float = ANSWER_S) -> Received:
    """The DUT's SYN to `peer` (the tester by default) port `dport`."""
    return tb.expect(IP(src=tb.dut_host.ip, dst=(peer or tb.host).ip)
                     / TCP(dport=dport, flags="S"), within=within, why="the DUT's SYN")


def flow_for_syn(tb: Testbench, syn: Received, *, peer: Host | None = None,
                 mss: int = 1460, window: int = 65535) -> TcpFlow:
    """The tester's side (as `peer`, the tester by default) of a connection the DUT opens
    with `syn`."""
    flow = TcpFlow(tb, peer or tb.host, sport=syn[TCP].dport, dport=syn[TCP].sport,
                   mss=mss, window=window)
    flow.dut_isn = syn[TCP].seq
    flow.rcv_nxt = 1
    return flow


def open_active(dut: Dut, tb: Testbench, port: int, *, peer: Host | None = None,
                mss: int = 1460, window: int = 65535) -> Connection:
    """The DUT connects to `peer` (the tester by default) port `port`; the tester
    completes the handshake with a SYN-ACK offering `mss`."""
    sock = dut.socket("tcp")
    connecting = dut.start("connect", sock=sock, addr=(peer or tb.host).ip, port=port)
    with step(HANDSHAKE, "the DUT opens a connection to the tester"):
        syn = expect_dut_syn(tb, port, peer=peer)
        flow = flow_for_syn(tb, syn, peer=peer, mss=mss, window=window)
        flow.send("SA", options=[("MSS", mss)], why="SYN-ACK to the DUT's SYN")
        flow.expect("A", seq=1, ack=1, within=ANSWER_S, why="the DUT's ACK of the SYN-ACK")
        result = connecting.result(timeout=ANSWER_S)
        assert result is None, f"connect after a completed handshake: {result}"
    return Connection(flow, sock, syn=syn)


def enter_state(dut: Dut, tb: Testbench, state: str, port: int, *,
                close_socket: bool = False) -> Connection:
    """A connection the DUT accepted, brought into `state` (one of SYNCHRONIZED_STATES).
    The DUT half-closes with shutdown(SHUT_WR), so its socket stays usable; `close_socket`
    closes it once there (the connection lives on, as after close() in TIME-WAIT)."""
    if state not in SYNCHRONIZED_STATES:
        raise HarnessError(f"enter_state: {state} is not a synchronized state")
    connection = open_passive(dut, tb, port)
    flow = connection.flow
    with step(CLOSING, f"bringing the connection into {state}"):
        if state in ("FIN-WAIT-1", "FIN-WAIT-2", "CLOSING", "TIME-WAIT"):
            dut.shutdown(connection.sock, "SHUT_WR")
            flow.expect("FA", within=ANSWER_S, why="the DUT's FIN")
            if state == "FIN-WAIT-2":
                flow.send("A", why="ACK of the DUT's FIN: it is in FIN-WAIT-2")
            elif state == "CLOSING":
                flow.send("FA", ack=flow.rcv_nxt - 1,
                          why="the tester's FIN, not acknowledging the DUT's: both closing")
                flow.expect("A", ack=flow.snd_nxt, within=ANSWER_S,
                            why="the DUT acknowledges the FIN: it is in CLOSING")
            elif state == "TIME-WAIT":
                flow.send("FA", why="ACK of the DUT's FIN with the tester's FIN")
                flow.expect("A", ack=flow.snd_nxt, within=ANSWER_S,
                            why="the DUT's last ACK: it is in TIME-WAIT")
        elif state in ("CLOSE-WAIT", "LAST-ACK"):
            flow.send("FA", why="the tester's FIN")
            flow.expect("A", ack=flow.snd_nxt, within=ANSWER_S,
                        why="the DUT acknowledges the FIN: it is in CLOSE-WAIT")
            if state == "LAST-ACK":
                dut.shutdown(connection.sock, "SHUT_WR")
                flow.expect("FA", within=ANSWER_S, why="the DUT's FIN: it is in LAST-ACK")
    if close_socket:
        dut.close(connection.sock)
    return connection


def knows_the_tester(tb: Testbench) -> None:
    """The DUT answers an echo request from the tester, so it has the tester's link
    address before a case times what it sends: the ARP exchange is not inside the first
    interval measured (a SYN's first retransmission, an ICMP error beating the RTO)."""
    tb.pass_barrier(tb.echo_barrier(), "the DUT resolves the tester's address first")


# ---- UDP -------------------------------------------------------------------------------


def bound_socket(dut: Dut, port: int = PORT, addr: str = "0.0.0.0") -> int:
    """An unconnected DUT UDP socket bound to `addr`:`port`."""
    sock: int = dut.socket("udp")
    dut.bind(sock, addr, port)
    return sock


def connected_socket(dut: Dut, addr: str, port: int, *,
                     options: Sequence[tuple[str, object]] = ()) -> int:
    """A DUT UDP socket with `options` set, then connected to `addr`:`port` (RFC 1122
    4.1.3.4: a connected socket takes datagrams of that peer only)."""
    sock: int = dut.socket("udp")
    for name, value in options:
        dut.setsockopt(sock, name, value)
    dut.connect(sock, addr, port)
    return sock
