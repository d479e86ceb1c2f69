"""Bringing a DUT connection into a given TCP state, and segments scapy will not build.

`open_passive` and `open_active` give a `Connection`: the tester's `TcpFlow` and the DUT's
socket handles. `enter_state` drives it on into any synchronized state of RFC 9293 3.3.2
with the DUT as the side that closes first where the state needs it. `raw_segment` builds
a TCP segment byte by byte (any data offset, any option bytes, a chosen checksum), for the
malformed-segment cases; `option_problems` checks the options of a segment the DUT sent.
"""

import struct
from dataclasses import dataclass

from scapy.layers.inet import IP, TCP
from scapy.packet import Packet, Raw

from conformance.errors import HarnessError
from conformance.targets.dut import Dut
from conformance.testbench.bench import ANSWER_S, Received, Testbench, step
from conformance.testbench.tcp import MOD, TcpFlow

SYNCHRONIZED_STATES = (
    "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK",
    "TIME-WAIT",
)
# The requirements the set-up steps embody: a failed step fails them (RFC 9293 3.5, 3.6).
HANDSHAKE = "RFC9293-3.5c"
CLOSING = "RFC9293-3.10.7.4j"
FAR_AHEAD = 1 << 20  # far beyond any receive window without window scaling (max 65535)


@dataclass
class Connection:
    flow: TcpFlow
    sock: int  # the DUT's connected socket
    listener: int | None = None  # the DUT's listener (passive open only)


def listen(dut: Dut, port: int, backlog: int = 8) -> int:
    listener = dut.socket("tcp")
    dut.setsockopt(listener, "SO_REUSEADDR", 1)
    dut.bind(listener, dut.ip, port)
    dut.listen(listener, backlog)
    return int(listener)


def open_passive(dut: Dut, tb: Testbench, port: int, sport: int = 43000) -> Connection:
    """The DUT listens on `port` and accepts the tester's connection from `sport`."""
    listener = listen(dut, port)
    accepting = dut.start("accept", sock=listener)
    flow = TcpFlow(tb, tb.host, sport=sport, dport=port)
    with step(HANDSHAKE, "the tester opens a connection to the DUT"):
        flow.connect(within=ANSWER_S)
        accepted = accepting.result(timeout=ANSWER_S)
        assert isinstance(accepted, tuple), f"accept after a completed handshake: {accepted}"
    return Connection(flow, accepted[0], listener)


def expect_dut_syn(tb: Testbench, dport: int, *, within: float = ANSWER_S) -> Received:
    return tb.expect(IP(src=tb.dut_host.ip, dst=tb.ip) / TCP(dport=dport, flags="S"),
                     within=within, why="the DUT's SYN")


def flow_for_syn(tb: Testbench, syn: Received) -> TcpFlow:
    """The tester's side of a connection the DUT opens with `syn`."""
    flow = TcpFlow(tb, tb.host, sport=syn[TCP].dport, dport=syn[TCP].sport)
    flow.dut_isn = syn[TCP].seq
    flow.rcv_nxt = 1
    return flow


def open_active(dut: Dut, tb: Testbench, port: int) -> Connection:
    """The DUT connects to the tester's `port`; the tester completes the handshake."""
    sock = dut.socket("tcp")
    connecting = dut.start("connect", sock=sock, addr=tb.ip, port=port)
    with step(HANDSHAKE, "the DUT opens a connection to the tester"):
        flow = flow_for_syn(tb, expect_dut_syn(tb, port))
        flow.send("SA", options=[("MSS", flow.mss)], why="SYN-ACK to the DUT's SYN")
        flow.expect("A", seq=1, ack=1, within=ANSWER_S, why="the DUT's ACK of the SYN-ACK")
        result = connecting.result(timeout=ANSWER_S)
        assert result is None, f"connect after a completed handshake: {result}"
    return Connection(flow, sock)


def enter_state(dut: Dut, tb: Testbench, state: str, port: int) -> Connection:
    """A connection the DUT accepted, brought into `state` (one of SYNCHRONIZED_STATES).
    The DUT half-closes with shutdown(SHUT_WR), so its socket stays usable."""
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
    return connection


def far_ahead_segment(flow: TcpFlow, why: str) -> None:
    """Data far beyond the DUT's receive window: unacceptable in every synchronized state."""
    flow.send("PA", b"out of window", seq=flow.snd_nxt + FAR_AHEAD, why=why)


def empty_ack_template(flow: TcpFlow) -> Packet:
    """<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> from the DUT, as RFC 9293 3.10.7.4 words it."""
    return flow.template("A", seq=flow.rcv_nxt, ack=flow.snd_nxt)


# ---- segments scapy will not build -----------------------------------------------------


def tcp_checksum(source: str, destination: str, segment: bytes) -> int:
    pseudo = (bytes(map(int, source.split("."))) + bytes(map(int, destination.split(".")))
              + struct.pack("!BBH", 0, 6, len(segment)))
    data = pseudo + segment + (b"\0" if len(segment) % 2 else b"")
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def raw_segment(
    flow: TcpFlow,
    flags: str,
    data: bytes = b"",
    *,
    option_bytes: bytes = b"",
    data_offset: int | None = None,
    seq: int | None = None,
    checksum: int | None = None,
) -> Packet:
    """A segment of `flow` built byte by byte: `option_bytes` as given (padded with zeros
    to a multiple of four unless `data_offset` is forced), `checksum` as given or correct."""
    template = flow.segment(flags, seq=seq)
    tcp = template[TCP]
    if data_offset is None:
        option_bytes += b"\0" * (-len(option_bytes) % 4)
        data_offset = 5 + len(option_bytes) // 4
    header = struct.pack(
        "!HHIIBBHHH", tcp.sport, tcp.dport, tcp.seq, tcp.ack if "A" in flags else 0,
        (data_offset & 0xF) << 4, int(tcp.flags), tcp.window, 0, 0,
    )
    segment = header + option_bytes + data
    if checksum is None:
        checksum = tcp_checksum(flow.source_ip, flow.tb.dut_host.ip, segment)
    segment = segment[:16] + struct.pack("!H", checksum) + segment[18:]
    return IP(src=flow.source_ip, dst=flow.tb.dut_host.ip, proto=6) / Raw(segment)


def send_raw(flow: TcpFlow, packet: Packet, why: str, *, advance: int = 0) -> None:
    flow.tb.send(packet, why)
    flow.snd_nxt = (flow.snd_nxt + advance) % MOD


def option_problems(received: Received) -> list[str]:
    """What is wrong with the options of a segment the DUT sent: RFC 9293 3.1 (MUST-68:
    a length on every option but EOL and NOP, inside the header; MUST-69: zeros after
    EOL) and 3.2 (MUST-65: MSS only on a SYN)."""
    tcp = received[TCP]
    raw = bytes(tcp)[20: tcp.dataofs * 4]
    problems = []
    index = 0
    while index < len(raw):
        kind = raw[index]
        if kind == 0:
            if any(raw[index + 1:]):
                problems.append("non-zero padding after End of Option List")
            break
        if kind == 1:
            index += 1
            continue
        if index + 1 >= len(raw) or raw[index + 1] < 2 or index + raw[index + 1] > len(raw):
            problems.append(f"option kind {kind} without a valid length")
            break
        if kind == 2 and not tcp.flags.S:
            problems.append("MSS option on a segment without SYN")
        index += raw[index + 1]
    return problems


def checksum_is_valid(received: Received) -> bool:
    """RFC 9293 3.1 (MUST-2): the checksum of a segment the DUT sent, over the
    pseudo-header, is correct."""
    ip = received[IP]
    segment = bytes(ip[TCP])[: ip.len - ip.ihl * 4]
    return tcp_checksum(ip.src, ip.dst, segment) == 0
