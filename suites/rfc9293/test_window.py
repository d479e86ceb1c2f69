"""Window management (RFC 9293 3.8.6, RFC 1122 4.2.2.16, 4.2.2.17, 4.2.3.3, 4.2.3.4): zero
windows and their probes, shrinking windows, silly window syndrome avoidance on both
sides.

The tester plays the receiver by advertising windows in its ACKs (a zero window, a
small opening, a window that ends before data already sent), and the sender by filling
the DUT's window while the DUT's application does not read.
"""

import itertools
import time

import pytest
from scapy.layers.inet import TCP
from scapy.layers.l2 import Ether

from conformance.case import requirement, tcp_segment_choices
from conformance.targets.dut import Dut, Errno
from conformance.testbench.bench import (
    ANSWER_S,
    ExpectationFailed,
    Received,
    StepFailed,
    Testbench,
)
from conformance.testbench.scenarios import Connection, open_passive
from conformance.testbench.tcp import TcpFlow
from conformance.testbench.tcp_stream import (
    data_of,
    next_data,
    next_data_or_none,
    payload,
    receive_stream,
)
from conformance.testbench.templates import matches

pytestmark = tcp_segment_choices

PORT = 5150
DATA = bytes(range(256)) * 32  # 8192 octets
MSS = 1000
PROBES = 4
INITIAL_RTO_BOUND_S = 3.0
# Timers run late by up to a quarter (Linux's fourth probe under SYN cookies: 25.9 s
# for an RTO of 3 s doubled three times).
TIMER_SLACK = 1.25
# RFC 1122 4.2.3.4: the override timeout that sends data a silly window held is 0.1-1.0 s;
# a window probe (RFC 9293 3.8.6.1) may send it instead, after an RTO of about 1 s.
SMALL_WINDOW_SENT_WITHIN_S = 5.0


def closed_window(dut: Dut, tb: Testbench,
                  sport: int) -> tuple[Connection, bytes, list[Received]]:
    """A connection whose peer (the tester) offers a window of one MSS; the DUT's
    application writes DATA without blocking, the DUT fills that window, and the tester
    acknowledges it with a zero window: the window closes as a receiver's does when its
    buffer fills, its right edge where it was. Returns the connection, the data the send
    buffer took (all of DATA, or what a small buffer holds) and the segments that filled
    the window.

    The zero window comes on an ACK of new data. An ACK that only lowers the window
    (SEG.SEQ = SND.WL1, SEG.ACK = SND.WL2) is one RFC 9293 3.10.7.4 has a sender take,
    but 4.4BSD and lwIP (tcp_receive) take only a larger window from it: a window closed
    that way is not one every sender sees closed."""
    connection = open_passive(dut, tb, PORT, sport=sport, mss=MSS, window=MSS)
    flow = connection.flow
    accepted = dut.send(connection.sock, DATA, ["MSG_DONTWAIT"])
    assert isinstance(accepted, int) and accepted > MSS, f"a write of {len(DATA)}: {accepted}"
    filled = receive_stream(flow, MSS, within=ANSWER_S, ack=False)
    flow.send("A", why="ACK of the window's data: the tester's window is now zero", window=0)
    # The window the tester offers from now on, once it opens.
    flow.window = 65535
    return connection, DATA[:accepted], filled


def answered_probes(connection: Connection, count: int) -> list[Received]:
    """`count` zero-window probes, each answered with an ACK still advertising zero.
    A probe may carry at most one octet of new data (RFC 9293 3.8.6.1)."""
    flow, probes = connection.flow, []
    acknowledged = flow.rcv_nxt  # what the zero-window ACK acknowledged
    for n in range(count):
        # The probe timer runs on the RTO with back-off (RFC 1122 4.2.2.17); with no RTT
        # sample yet (a SYN cookie, no timestamps) the RTO may start at 3 s (RFC 6298 5.7).
        probe = flow.expect(within=INITIAL_RTO_BOUND_S * 2 ** n * TIMER_SLACK + 1.0,
                            why=f"zero-window probe {n + 1}")
        assert len(payload(probe)) <= 1, (
            f"{len(payload(probe))} octets sent into a zero window")
        probes.append(probe)
        # None of the DUT's data is acknowledged while the window is zero.
        flow.rcv_nxt = acknowledged
        flow.send("A", why=f"ACK of probe {n + 1}, window still zero", window=0)
    return probes


@requirement("RFC9293-3.8.6.1a", "RFC9293-3.8.6.1c", "RFC9293-3.8.6g", "RFC1122-4.2.2.17a",
             "RFC1122-4.2.2.17b")
def test_zero_window_is_probed_until_it_opens(dut: Dut, tb: Testbench) -> None:
    """Data written while the peer's window is zero is not sent; the DUT probes the
    window (answered, still zero, 4 times) and sends all the data once it opens."""
    connection, written, filled = closed_window(dut, tb, 43500)
    flow = connection.flow
    snd_una = flow.rcv_nxt
    probes = answered_probes(connection, PROBES)
    tb.observe("probe_payload_octets", [len(payload(probe)) for probe in probes])
    tb.observe("probe_seq_relative_to_snd_una",
               [flow.relative_seq(p) - snd_una for p in probes])
    flow.rcv_nxt = snd_una
    flow.send("A", why="window update: the window opens")
    segments = receive_stream(flow, len(written), within=ANSWER_S)
    received = data_of(filled + probes + segments, flow)[: len(written)]
    assert received == written, "the data arrived damaged"
    assert dut.getsockopt(connection.sock, "SO_ERROR") is None


@requirement("RFC9293-3.8.6.1d", "RFC9293-3.8.6.1e", "RFC1122-4.2.2.17c")
def test_zero_window_probes_back_off(dut: Dut, tb: Testbench) -> None:
    """The first probe of a zero window waits for a retransmission timeout (not sent at
    once: at least 0.1 s), and the intervals between probes grow exponentially (each at
    least 1.5 times the one before)."""
    connection, _, _ = closed_window(dut, tb, 43501)
    closed = tb.last_sent  # the tester's ACK that closed the window
    probes = answered_probes(connection, PROBES)
    first = round(probes[0].time_s - closed.time_s, 3)
    gaps = [round(b.time_s - a.time_s, 3) for a, b in itertools.pairwise(probes)]
    tb.observe("first_probe_after_s", first)
    tb.observe("probe_intervals_s", gaps)
    assert first >= 0.1, f"the first probe came {first} s after the window closed"
    for earlier, later in itertools.pairwise(gaps):
        assert later >= 1.5 * earlier, f"probe intervals do not back off: {gaps} s"


@requirement("RFC9293-3.8.6.2a", "RFC1122-4.2.3.4a")
def test_sender_does_not_fill_a_small_window_opening_at_once(dut: Dut, tb: Testbench) -> None:
    """With 7 KB waiting and a window that opens from zero to 100 octets (after one MSS,
    1000, was offered), the DUT does not send a 100-octet segment at once: only a full
    segment, half the largest window, or the override timeout (0.1-1 s) allows it. It
    does send into the opening in the end (the override timeout, or a window probe)."""
    connection, written, _ = closed_window(dut, tb, 43502)
    flow = connection.flow
    waiting = len(written) - (flow.rcv_nxt - 1)
    assert waiting > 100, f"only {waiting} octets wait in the send buffer"
    flow.send("A", why="window update: 100 octets", window=100)
    opened = tb.last_sent
    segment = next_data(flow, within=SMALL_WINDOW_SENT_WITHIN_S,
                        why="data into the small window, in the end")
    delay = round(segment.time_s - opened.time_s, 3)
    tb.observe("data_into_small_window", {"octets": len(payload(segment)), "after_s": delay})
    assert len(payload(segment)) <= 100, "more data than the window allows"
    assert delay >= 0.09, f"{len(payload(segment))} octets sent {delay} s after a 100-octet opening"


# The segments the tester fills the DUT's window with: small ones, so that the window is
# seen at many points as it closes (any sender may send segments this small: Nagle off,
# or an interactive application).
FILL_SEGMENT = 500
# The step that fills the window relies on the DUT taking the data its window offers:
# RFC 9293 3.8.6, the window is the range of sequence numbers the receiver "is currently
# prepared to accept"; taking less is shrinking it unannounced (SHLD-14).
WINDOW_HONOURED = "RFC9293-3.8.6a"


def acknowledgement(flow: TcpFlow, why: str) -> Received | None:
    """The DUT's ACK of all the tester has sent, or None if none comes in time."""
    try:
        return flow.expect("A", ack=flow.snd_nxt, within=ANSWER_S, why=why)
    except ExpectationFailed:
        return None


def fill_receive_window(
    dut: Dut, tb: Testbench, sport: int, *, segment_size: int = FILL_SEGMENT
) -> tuple[Connection, list[tuple[int, int]]]:
    """The tester sends data while the DUT's application reads nothing, in segments of at
    most `segment_size` that fit the window the DUT advertises, until that window is zero.
    A segment the DUT does not acknowledge is sent again once (a sender's retransmission
    timeout); unacknowledged twice, it fails RFC 9293 3.8.6 (the DUT takes less than its
    window offers). Returns the connection and the (relative ACK, window) of the SYN-ACK
    and of every ACK."""
    connection = open_passive(dut, tb, PORT, sport=sport, rcvbuf=4096)
    flow = connection.flow
    window = flow.received[0][TCP].window
    advertised = [(1, window)]
    for n in range(200):
        if window == 0:
            return connection, advertised
        # Filling the window is the point: any opening is used, in segments of at most
        # the DUT's MSS.
        size = min(segment_size, window, flow.dut_mss)
        flow.send("PA", DATA[:size], why=f"segment {n + 1} into the DUT's window")
        ack = acknowledgement(flow, "the DUT's ACK")
        if ack is None:
            flow.send("PA", DATA[:size], seq=flow.snd_nxt - size,
                      why=f"segment {n + 1} again: the DUT acknowledged nothing of it")
            ack = acknowledgement(flow, "the DUT's ACK of the retransmission")
        if ack is None:
            edge = advertised[-1][0] + advertised[-1][1]
            tb.observe("data_not_taken_inside_the_window", {
                "first_octet": flow.snd_nxt - size, "octets": size, "window": window,
                "right_edges": [ack + window for ack, window in advertised]})
            raise StepFailed(WINDOW_HONOURED, (
                f"set-up: filling the DUT's window: octets {flow.snd_nxt - size}-"
                f"{flow.snd_nxt - 1}, inside the {window}-octet window it offered (right "
                f"edge {edge}), acknowledged neither when sent nor when sent again, "
                f"{ANSWER_S} s each: the DUT takes less than its window offers"))
        window = ack[TCP].window
        advertised.append((flow.relative_ack(ack), window))
    raise AssertionError("the DUT's window did not close after 200 segments")


@requirement("RFC9293-3.8.6a", "RFC1122-4.2.2.16a")
def test_receive_window_right_edge_never_moves_left(dut: Dut, tb: Testbench) -> None:
    """As data fills the receive buffer of an application that does not read, the right
    edge of the DUT's window (ACK + window) never moves left."""
    _, advertised = fill_receive_window(dut, tb, 43503)
    edges = [ack + window for ack, window in advertised]
    tb.observe("right_edges", edges)
    for earlier, later in itertools.pairwise(edges):
        assert later >= earlier, f"the right window edge moved left: {earlier} -> {later}"


@requirement("RFC9293-3.8.6.2b", "RFC1122-4.2.3.3")
def test_receiver_does_not_open_a_silly_window(dut: Dut, tb: Testbench) -> None:
    """After a zero window, a 10-octet read does not reopen the window by a few octets:
    the window the DUT then advertises is zero or at least min(the tester's MSS, half the
    largest window it offered)."""
    # Full segments, as a bulk sender fills a window: the fewest the DUT must hold.
    connection, advertised = fill_receive_window(dut, tb, 43504, segment_size=len(DATA))
    flow = connection.flow
    largest = max(window for _, window in advertised)
    assert dut.recv(connection.sock, 10, []) == DATA[:10]
    flow.send("A", seq=flow.snd_nxt - 1, why="window probe (the last octet again)")
    answer = flow.expect("A", within=ANSWER_S, why="the DUT's answer with its window")
    window = answer[TCP].window
    # RFC 1122 4.2.3.3: the window opens by at least min(Fr * RCV.BUFF, Eff.snd.MSS).
    threshold = min(flow.mss, largest // 2)
    tb.observe("window_after_small_read", window)
    tb.observe("threshold", threshold)
    assert window == 0 or window >= threshold, (
        f"a {window}-octet window after a 10-octet read (threshold {threshold})")


# The keep-alive probe of the shrunk-window cases relies on it.
UNACCEPTABLE_ACKNOWLEDGED = "RFC9293-3.5.2d"


def shrunk_window(dut: Dut, tb: Testbench,
                  sport: int) -> tuple[Connection, list[Received], bytes, int]:
    """Four segments in flight; the tester acknowledges the first with a window that
    ends at the end of the second: the right edge moves left of SND.NXT. Then the
    application writes more. Returns the connection, the flight, all the data written,
    and the index of the first frame captured after the flight."""
    connection = open_passive(dut, tb, PORT, sport=sport, mss=MSS)
    flow = connection.flow
    assert dut.send(connection.sock, DATA[: 4 * MSS]) == 4 * MSS
    # Not observed segment by segment: where PSH falls in the flight varies from run to run.
    flight = [next_data(flow, within=ANSWER_S, why=f"segment {n + 1} of 4", observed=False)
              for n in range(4)]
    after_flight = len(tb.capture.frames)
    flow.rcv_nxt = 1 + MSS
    flow.send("A", why="ACK of segment 1, window shrunk to end at segment 2", window=MSS)
    # The shrink is taken in before the write: a stack may handle a segment apart from
    # its application's calls (gVisor does), and a write it handled first could go out in
    # the window it knew until then. A keep-alive probe after the shrink draws an empty
    # ACK (RFC 9293 3.5.2: an unacceptable segment is acknowledged) that can only follow
    # it. Its sequence number is the DUT's: SND.NXT, or (Linux) the shrunk right edge.
    probed = len(tb.capture.frames)
    flow.send("A", seq=flow.snd_nxt - 1, window=MSS, advance=False,
              why="keep-alive probe, window still shrunk: its ACK shows the shrink taken in")

    def probe_acknowledged() -> bool:
        return any(frame.sender == "dut" and matches(flow.template("A"), packet)
                   and not bytes(packet[TCP].payload)
                   for frame in tb.capture.frames[probed:]
                   for packet in [Ether(frame.data)])

    if not tb.capture.wait(probe_acknowledged, time.monotonic_ns() + int(ANSWER_S * 1e9)):
        raise StepFailed(UNACCEPTABLE_ACKNOWLEDGED, (
            f"no empty ACK answered a keep-alive probe within {ANSWER_S} s"))
    # What a small send buffer has room for (EAGAIN: nothing more).
    more = dut.send(connection.sock, DATA[4 * MSS:], ["MSG_DONTWAIT"])
    assert isinstance(more, int) or more == Errno("EAGAIN"), f"a write after the shrink: {more}"
    written = DATA[: 4 * MSS + (more if isinstance(more, int) else 0)]
    return connection, flight, written, after_flight


@requirement("RFC9293-3.8.6b", "RFC1122-4.2.2.16b")
def test_sender_survives_a_shrunk_window(dut: Dut, tb: Testbench) -> None:
    """After the peer shrinks its window below data already sent, the connection goes on
    and, once the window opens again, all the data arrives intact."""
    connection, flight, written, _ = shrunk_window(dut, tb, 43505)
    flow = connection.flow
    # Whatever comes in the meantime (a retransmission, if the DUT's timer fires within
    # the half second) is part of the stream; not observed: whether it comes is timing.
    early = next_data_or_none(flow, within=0.5, why="anything sent into the shrunk window",
                              observed=False)
    flow.rcv_nxt = 1 + MSS
    flow.send("A", why="window update: open again")
    segments = receive_stream(flow, len(written), within=3.0)
    received = data_of(flight + ([early] if early else []) + segments, flow)
    assert received[: len(written)] == written, "the data arrived damaged"


# A retransmission timeout may fire while the window is shrunk: its effects are awaited.
SHRUNK_WATCH_S = 1.0


@requirement("RFC9293-3.8.6c")
def test_no_new_data_beyond_a_shrunk_window(dut: Dut, tb: Testbench) -> None:
    """While the window is shrunk, the DUT sends no new data: no segment, up to a barrier
    after 1 s (a retransmission timeout included), carries octets beyond the old
    SND.NXT. Retransmissions of data already sent are allowed (RFC 9293 3.8.6: MAY)."""
    # New data may leave with the write, before the agent's answer: frames are judged
    # from the first one after the flight.
    connection, flight, written, start = shrunk_window(dut, tb, 43506)
    if len(written) == 4 * MSS:
        pytest.skip("the DUT's send buffer took no data beyond the four segments in flight: "
                    "no new data waits")
    flow = connection.flow
    snd_nxt = max(flow.relative_seq(segment) + len(payload(segment)) for segment in flight)

    def beyond(stop: int | None = None) -> Received | None:
        for frame in tb.capture.frames[start:stop]:
            packet = Ether(frame.data)
            if frame.sender == "dut" and matches(flow.template(), packet):
                segment = Received(frame, packet)
                if flow.relative_seq(segment) + len(payload(segment)) > snd_nxt:
                    return segment
        return None

    deadline = time.monotonic_ns() + int(SHRUNK_WATCH_S * 1e9)
    tb.capture.wait(lambda: beyond() is not None, deadline)
    answer = tb.pass_barrier(tb.echo_barrier(flow.template()),
                             "no new data while the window is shrunk")
    offending = beyond(tb.barrier_end(answer, lambda: beyond() is not None))
    tb.observe("new_data_while_shrunk", "none" if offending is None else {
        "seq": flow.relative_seq(offending), "octets": len(payload(offending))})
    if offending is not None:
        raise ExpectationFailed(
            f"frame {offending.frame.number}: octets {flow.relative_seq(offending)}-"
            f"{flow.relative_seq(offending) + len(payload(offending)) - 1} sent while the "
            f"window was shrunk, beyond the old SND.NXT {snd_nxt}")
