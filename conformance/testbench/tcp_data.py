"""Connections set up for data-transfer cases, and the DUT's data segments read off the wire.

Two ways to a connection: the tester opens it (`open_to_dut`: the DUT listens and
accepts) or the DUT opens it (`open_from_dut`: the tester answers the DUT's SYN). Either
way the case gets a `TcpFlow` with relative sequence numbers and the DUT's socket handle;
the flow learns the DUT's MSS and window from its SYN or SYN-ACK and every later segment.
"""

import base64
import time
from dataclasses import dataclass

from scapy.layers.inet import IP, TCP

from conformance.lab.addressing import Host
from conformance.targets.dut import Dut, Errno
from conformance.testbench.bench import ANSWER_S, ExpectationFailed, Received, Testbench, step
from conformance.testbench.tcp import DEFAULT_MSS, TcpFlow
from conformance.testbench.tcp_states import HANDSHAKE


@dataclass
class Connection:
    flow: TcpFlow
    sock: int
    syn: Received | None = None  # the DUT's SYN, when the DUT opened the connection


def open_to_dut(
    dut: Dut, tb: Testbench, port: int, *, sport: int, mss: int | None = 1460,
    window: int = 65535, rcvbuf: int | None = None, source: Host | None = None,
) -> Connection:
    """The tester connects to a DUT listener (SYN with an MSS option unless `mss` is None)
    and the DUT accepts. `rcvbuf` sets SO_RCVBUF on the listener before listen()."""
    listener = dut.socket("tcp")
    dut.setsockopt(listener, "SO_REUSEADDR", 1)
    if rcvbuf is not None:
        dut.setsockopt(listener, "SO_RCVBUF", rcvbuf)
    dut.bind(listener, dut.ip, port)
    dut.listen(listener, 4)
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
        assert not isinstance(accepted, Errno), f"accept failed: {accepted}"
    return Connection(flow, accepted[0])


def open_from_dut(
    dut: Dut, tb: Testbench, port: int, *, host: Host | None = None, mss: int = 1460,
    window: int = 65535,
) -> Connection:
    """The DUT connects to `host` (the tester by default), which answers its SYN."""
    peer = host or tb.host
    sock = dut.socket("tcp")
    connecting = dut.start("connect", sock=sock, addr=peer.ip, port=port)
    with step(HANDSHAKE, "the DUT opens a connection to the tester"):
        syn = tb.expect(IP(src=dut.ip, dst=peer.ip) / TCP(dport=port, flags="S"),
                        within=ANSWER_S, why="the DUT's SYN")
        flow = TcpFlow(tb, peer, sport=port, dport=syn[TCP].sport, window=window, mss=mss)
        flow.dut_isn, flow.rcv_nxt = syn[TCP].seq, 1
        flow.send("SA", options=[("MSS", mss)], why="SYN-ACK from the tester")
        flow.expect("A", ack=flow.snd_nxt, within=ANSWER_S,
                    why="the DUT's ACK completing the handshake")
        result = connecting.result(timeout=ANSWER_S)
        assert result is None, f"connect failed: {result}"
    return Connection(flow, sock, syn)


def knows_the_tester(tb: Testbench) -> None:
    """The DUT answers an echo request from the tester, so it has the tester's link
    address before a case times what it sends: the ARP exchange is not inside the first
    interval measured (a SYN's first retransmission, an ICMP error beating the RTO)."""
    tb.pass_barrier(tb.echo_barrier(), "the DUT resolves the tester's address first")


def payload(received: Received) -> bytes:
    return bytes(received[TCP].payload)


def next_data(flow: TcpFlow, *, within: float, why: str = "a data segment") -> Received:
    """The next segment of the flow that carries data (pure ACKs on the way are skipped)."""
    deadline = time.monotonic() + within
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ExpectationFailed(f"no data segment from the DUT within {within}s ({why})")
        segment = flow.expect(within=remaining, why=why)
        if len(segment[TCP].payload) > 0:
            return segment


def next_data_or_none(flow: TcpFlow, *, within: float, why: str) -> Received | None:
    try:
        return next_data(flow, within=within, why=why)
    except ExpectationFailed:
        return None


def receive_stream(flow: TcpFlow, length: int, *, within: float, ack: bool = True,
                   window: int | None = None) -> list[Received]:
    """Data segments until the DUT's first `length` data octets have all arrived in order,
    acknowledging each (unless `ack` is False). Returns every data segment seen."""
    segments: list[Received] = []
    while flow.rcv_nxt < 1 + length:
        segment = next_data(flow, within=within, why=f"data up to octet {length}")
        segments.append(segment)
        if ack:
            flow.send("A", why=f"ACK of the DUT's data up to {flow.rcv_nxt}", window=window)
    return segments


def dut_writes(dut: Dut, connection: Connection, data: bytes, *,
               within: float = ANSWER_S) -> list[Received]:
    """The DUT's application writes `data` while the tester receives and acknowledges it
    all (a blocking send returns once the send buffer took the last octet, which a small
    buffer does only as the tester acknowledges). Returns the data segments."""
    sending = dut.start("send", sock=connection.sock, data=base64.b64encode(data).decode(),
                         flags=[])
    segments = receive_stream(connection.flow, len(data), within=within)
    sent = sending.result(timeout=within)
    assert sent == len(data), f"send of {len(data)} octets returned {sent}"
    return segments


def dut_reads(dut: Dut, connection: Connection, data: bytes, *, why: str,
              within: float = ANSWER_S) -> None:
    """The tester sends `data` as a conformant sender (the DUT's MSS and window) while the
    DUT's application reads it (MSG_WAITALL, so the window reopens as it reads); the DUT
    acknowledges all of it and the application gets it intact."""
    flow = connection.flow
    reading = dut.start("recv", sock=connection.sock, size=len(data), flags=["MSG_WAITALL"])
    flow.send_data(data, why=why, within=within)
    flow.expect("A", ack=flow.snd_nxt, within=within, why=f"the ACK of all of it ({why})")
    received = reading.result(timeout=within)
    assert received == data, (
        f"the application read {len(received) if isinstance(received, bytes) else received}"
        f" octets{' damaged' if isinstance(received, bytes) else ''} of {len(data)} ({why})")


def data_of(segments: list[Received], flow: TcpFlow) -> bytes:
    """The byte stream the segments carry, reassembled by relative sequence number."""
    stream: dict[int, int] = {}
    for segment in segments:
        start = flow.relative_seq(segment)
        for offset, octet in enumerate(payload(segment)):
            stream.setdefault(start + offset, octet)
    return bytes(stream[index] for index in sorted(stream))
