"""Segments a case builds or checks beyond what `TcpFlow` does, and segments scapy will
not build.

`far_ahead_segment` and `empty_ack_template` are the probe and the answer of RFC 9293
3.10.7.4 in any synchronized state. `raw_segment` builds a TCP segment byte by byte (any
data offset, any option bytes, a chosen checksum), for the malformed-segment cases;
`option_problems` checks the options of a segment the DUT sent.
"""

import struct

from scapy.layers.inet import IP, TCP
from scapy.packet import Packet, Raw

from conformance.testbench.bench import Received
from conformance.testbench.tcp import TcpFlow
from conformance.testbench.tcp_sequence import MOD

FAR_AHEAD = 1 << 20  # far beyond any receive window without window scaling (max 65535)


def far_ahead_segment(flow: TcpFlow, why: str, *, ack: int | None = None) -> None:
    """Data far beyond the DUT's receive window: unacceptable in every synchronized state.
    `ack` (relative) overrides the acknowledgement of all the tester has received."""
    flow.send("PA", b"out of window", seq=flow.snd_nxt + FAR_AHEAD, ack=ack, why=why)


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
