"""Urgent data through the socket API (RFC 9293 3.8.5, RFC 1122 4.2.2.4): urgent data
longer than a segment, both ways, and what the reader learns of it: POLLPRI, the mark
(SIOCATMARK) where its reads stop, with the data kept in the stream (SO_OOBINLINE).

The BSD socket API marks the last urgent octet: a read stops before it, and SIOCATMARK
is 1 there. A mark one octet later (the octet the urgent pointer names, Linux
tcp_stdurg) tells the reader just as well where the urgent data ends, so either passes.
"""

from scapy.layers.inet import TCP

from conformance.case import requirement
from conformance.targets.dut import Dut
from conformance.testbench.bench import ANSWER_S, Testbench
from conformance.testbench.scenarios import open_passive
from conformance.testbench.tcp import TcpFlow
from conformance.testbench.tcp_stream import data_of, receive_stream

PORT = 5170
NORMAL = b"normal data, "
URGENT = b"urgent data in two segments"  # 27 octets: 12 in one segment, 15 in the next
SPLIT = 12
TAIL = b", normal again"
STREAM = NORMAL + URGENT + TAIL


def send_urgent(flow: TcpFlow, data: bytes, pointer: int, why: str) -> None:
    """`data` with URG and an urgent pointer `pointer` octets on from its first octet."""
    segment = flow.segment("PAU", data)
    segment[TCP].urgptr = pointer
    flow.tb.send(segment, why)
    flow.snd_nxt += len(data)


@requirement("RFC9293-3.8.5c", "RFC9293-3.8.5f", "RFC1122-4.2.2.4b", "RFC1122-4.2.2.4c",
             "RFC1122-4.2.2.4d")
def test_urgent_data_over_two_segments_is_read_inline_up_to_its_mark(
    dut: Dut, tb: Testbench,
) -> None:
    """27 octets of urgent data over two segments (the first one's urgent pointer reaches
    to the end of the second, which has no URG) reach an SO_OOBINLINE reader whole:
    POLLPRI tells of them, the reads stop at the mark at their end, and once past it no
    urgent data remains."""
    connection = open_passive(dut, tb, PORT, sport=43700)
    flow, sock = connection.flow, connection.sock
    dut.setsockopt(sock, "SO_OOBINLINE", 1)
    tb.observe("so_oobinline", dut.getsockopt(sock, "SO_OOBINLINE"))
    flow.send("PA", NORMAL, why=f"{len(NORMAL)} octets of normal data")
    send_urgent(flow, URGENT[:SPLIT], len(URGENT),
                why=f"urgent data, its first {SPLIT} octets: URG, pointer {len(URGENT)}")
    # RFC 9293 3.10.7.4 sixth: RCV.UP stays; the rest needs no URG of its own.
    flow.send("PA", URGENT[SPLIT:], why=f"the last {len(URGENT) - SPLIT} urgent octets, no URG")
    flow.send("PA", TAIL, why="normal data after the urgent data")
    flow.expect("A", ack=flow.snd_nxt, within=ANSWER_S, why="the DUT's ACK of all of it")

    events = dut.poll(sock, ["POLLPRI"], timeout_ms=1000)
    at_mark_first = dut.ioctl(sock, "SIOCATMARK")
    before_mark = b""
    for _ in STREAM:  # each read takes an octet at least
        if dut.ioctl(sock, "SIOCATMARK") == 1:
            break
        chunk = dut.recv(sock, len(STREAM), ["MSG_DONTWAIT"])
        if not isinstance(chunk, bytes) or not chunk:
            break
        before_mark += chunk
    after_mark = b""
    while len(before_mark + after_mark) < len(STREAM):
        chunk = dut.recv(sock, len(STREAM), ["MSG_DONTWAIT"])
        if not isinstance(chunk, bytes) or not chunk:
            break
        after_mark += chunk
    events_after = dut.poll(sock, ["POLLPRI"], timeout_ms=0)
    at_mark_after = dut.ioctl(sock, "SIOCATMARK")
    tb.observe("poll_before_reading", events)
    tb.observe("octets_before_the_mark", len(before_mark))
    tb.observe("poll_after_reading", events_after)

    assert "POLLPRI" in events, f"no POLLPRI for waiting urgent data: {events}"
    assert at_mark_first == 0, "SIOCATMARK 1 before any of the urgent data was read"
    assert before_mark + after_mark == STREAM, (
        f"the stream read was {before_mark + after_mark!r}, not {STREAM!r}")
    urgent_end = len(NORMAL) + len(URGENT)
    assert len(before_mark) in (urgent_end - 1, urgent_end), (
        f"the mark came after {len(before_mark)} octets; the urgent data ends at {urgent_end}")
    assert "POLLPRI" not in events_after and at_mark_after == 0, (
        f"urgent data still reported once all was read: poll {events_after}, "
        f"SIOCATMARK {at_mark_after}")


@requirement("RFC1122-4.2.2.4a", "RFC1122-4.2.2.4b", "RFC9293-3.8.5c")
def test_urgent_data_longer_than_a_segment_points_after_its_last_octet(
    dut: Dut, tb: Testbench,
) -> None:
    """3000 octets sent with MSG_OOB go out in several segments, each with URG and an
    urgent pointer to the octet after the last urgent one."""
    connection = open_passive(dut, tb, PORT, sport=43701, mss=1000)
    flow = connection.flow
    urgent = bytes(range(250)) * 12
    assert dut.send(connection.sock, urgent, ["MSG_OOB"]) == len(urgent)
    segments = receive_stream(flow, len(urgent), within=ANSWER_S)
    end = 1 + len(urgent)  # relative sequence number of the octet after the urgent data
    pointers = [(flow.relative_seq(segment), bool(segment[TCP].flags.U), segment[TCP].urgptr)
                for segment in segments]
    tb.observe("segments_seq_urg_pointer", pointers)
    assert data_of(segments, flow)[:len(urgent)] == urgent, "the urgent data arrived damaged"
    assert len(segments) > 1, "3000 octets in one segment of an MSS of 1000"
    for relative_seq, urg, pointer in pointers:
        assert urg, f"the segment at {relative_seq} carries no URG"
        assert relative_seq + pointer == end, (
            f"the segment at {relative_seq} points at {relative_seq + pointer}, not {end}")
