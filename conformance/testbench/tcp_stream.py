"""The byte stream of a connection: the DUT's data segments read off the wire, and the
DUT's application writing and reading while the tester acknowledges or sends.

The connection comes from `scenarios` (`open_passive`, `open_active`); its flow learns the
DUT's MSS and window from its SYN or SYN-ACK and every later segment.
"""

import base64
import time
from typing import Any

from scapy.layers.inet import TCP

from conformance.targets.dut import Dut, PendingCall, Unsupported
from conformance.testbench.bench import ANSWER_S, ExpectationFailed, Received
from conformance.testbench.scenarios import Connection
from conformance.testbench.tcp import TcpFlow


def payload(received: Received) -> bytes:
    return bytes(received[TCP].payload)


def next_data(flow: TcpFlow, *, within: float, why: str = "a data segment",
              observed: bool = True) -> Received:
    """The next segment of the flow that carries data (pure ACKs on the way are skipped);
    `observed` as for Testbench.expect."""
    deadline = time.monotonic() + within
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ExpectationFailed(f"no data segment from the DUT within {within}s ({why})")
        segment = flow.expect(within=remaining, why=why, observed=observed)
        if len(segment[TCP].payload) > 0:
            return segment


def next_data_or_none(flow: TcpFlow, *, within: float, why: str,
                      observed: bool = True) -> Received | None:
    try:
        return next_data(flow, within=within, why=why, observed=observed)
    except ExpectationFailed:
        return None


def receive_stream(flow: TcpFlow, length: int, *, within: float, ack: bool = True,
                   window: int | None = None, observed: bool = False) -> list[Received]:
    """Data segments until the DUT's first `length` data octets have all arrived in order,
    acknowledging each (unless `ack` is False). Returns every data segment seen. They are
    not observed one by one unless `observed` (how a stream is cut and where PSH goes
    vary from run to run of one stack): the caller observes what it judges."""
    segments: list[Received] = []
    while flow.rcv_nxt < 1 + length:
        segment = next_data(flow, within=within, why=f"data up to octet {length}",
                            observed=observed)
        segments.append(segment)
        if ack:
            flow.send("A", why=f"ACK of the DUT's data up to {flow.rcv_nxt}", window=window)
    return segments


def dut_writes(dut: Dut, connection: Connection, data: bytes, *,
               within: float = ANSWER_S, observed: bool = False) -> list[Received]:
    """The DUT's application writes `data` while the tester receives and acknowledges it
    all (a blocking send returns once the send buffer took the last octet, which a small
    buffer does only as the tester acknowledges). Returns the data segments, observed as
    for receive_stream."""
    sending = dut.start("send", sock=connection.sock, data=base64.b64encode(data).decode(),
                         flags=[])
    segments = receive_stream(connection.flow, len(data), within=within, observed=observed)
    sent = sending.result(timeout=within)
    assert sent == len(data), f"send of {len(data)} octets returned {sent}"
    return segments


def dut_reads(dut: Dut, connection: Connection, data: bytes, *, why: str,
              within: float = ANSWER_S) -> None:
    """The tester sends `data` as a conformant sender (the DUT's MSS and window) while the
    DUT's application reads it (MSG_WAITALL, so the window reopens as it reads); the DUT
    acknowledges all of it and the application gets it intact. A DUT without MSG_WAITALL
    (lwIP) reads with plain recv calls once the data is in; where its window cannot take
    all of the data unread, the case does not apply to it."""
    flow = connection.flow
    reading = dut.start("recv", sock=connection.sock, size=len(data), flags=["MSG_WAITALL"])
    try:
        flow.send_data(data, why=why, within=within)
    except ExpectationFailed:
        if reading.done():
            reading.result(timeout=0)  # Unsupported: nobody read, the window stayed shut
        raise
    flow.expect("A", ack=flow.snd_nxt, within=within, why=f"the ACK of all of it ({why})")
    received = read_all(dut, reading, connection.sock, len(data), within=within)
    assert received == data, (
        f"the application read {len(received) if isinstance(received, bytes) else received}"
        f" octets{' damaged' if isinstance(received, bytes) else ''} of {len(data)} ({why})")


def recv_waitall(dut: Dut, sock: int, size: int, *, within: float = ANSWER_S) -> Any:
    """`size` octets the application reads: one recv with MSG_WAITALL, or where the DUT
    lacks the flag (lwIP), recv calls until they came (or end of file, or an error)."""
    reading = dut.start("recv", sock=sock, size=size, flags=["MSG_WAITALL"])
    return read_all(dut, reading, sock, size, within=within)


def read_all(dut: Dut, reading: PendingCall, sock: int, size: int, *, within: float) -> Any:
    """The result of `reading`, a recv of `size` octets with MSG_WAITALL; where the DUT
    answered that it lacks the flag, plain recv calls until `size` octets came, end of
    file or an error (what they read, or the error when nothing came)."""
    try:
        return reading.result(timeout=within)
    except Unsupported:
        pass
    received = b""
    while len(received) < size:
        part = dut.start("recv", sock=sock, size=size - len(received), flags=[]).result(
            timeout=within)
        if not isinstance(part, bytes):
            return received or part
        if not part:
            break
        received += part
    return received


def recv_woken_by(dut: Dut, connection: Connection, flags: str, *, why: str,
                  what: str) -> object:
    """What a recv blocked on the connection returns once the tester sends a segment with
    `flags` (`what` it is, for the failure message)."""
    blocked = dut.start("recv", sock=connection.sock, size=100, flags=[])
    connection.flow.send(flags, why=why)
    assert blocked.wait(ANSWER_S), f"the blocked recv was not woken by {what}"
    return blocked.result(timeout=ANSWER_S)


def data_of(segments: list[Received], flow: TcpFlow) -> bytes:
    """The byte stream the segments carry, reassembled by relative sequence number."""
    stream: dict[int, int] = {}
    for segment in segments:
        start = flow.relative_seq(segment)
        for offset, octet in enumerate(payload(segment)):
            stream.setdefault(start + offset, octet)
    return bytes(stream[index] for index in sorted(stream))
