"""Segment arrival in the synchronized states (RFC 9293 3.10.7.4, 3.5.2, 3.5.3).

Each case brings a connection the DUT accepted into one state (scenarios.enter_state:
the DUT half-closes with shutdown(SHUT_WR), so its socket stays usable) and sends one
segment: out of window, an RST in or out of the window, a SYN, a FIN. A connection that
is gone answers an ACK-bearing segment with a reset (3.10.7.1, or 3.10.7.2 as its
listener is still there); one that lives answers an unacceptable one with an ACK.
"""

import pytest
from scapy.layers.inet import TCP

from conformance.case import Errno, requirement, tcp_segment_choices
from conformance.targets.dut import Dut
from conformance.testbench.bench import ANSWER_S, Testbench
from conformance.testbench.scenarios import SYNCHRONIZED_STATES, enter_state
from conformance.testbench.tcp_segments import FAR_AHEAD, empty_ack_template, far_ahead_segment

pytestmark = tcp_segment_choices

PORT = 5010
# States in which the application still holds an open socket that RFC 9293 3.10.7.4 says
# must hear of a reset ("connection reset" to RECEIVEs and SENDs).
USER_INFORMED = ("ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT")
STATES_BUT_TIME_WAIT = [state for state in SYNCHRONIZED_STATES if state != "TIME-WAIT"]
# States in which the DUT's FIN is still unacknowledged by the tester.
FIN_UNACKNOWLEDGED = ("FIN-WAIT-1", "CLOSING", "LAST-ACK")


@pytest.mark.parametrize("state", SYNCHRONIZED_STATES)
@requirement("RFC9293-3.5.2d")
def test_unacceptable_segment_is_acknowledged(dut: Dut, tb: Testbench, state: str) -> None:
    """Data far beyond the receive window is answered with an empty ACK carrying
    SND.NXT and RCV.NXT, and is not delivered (RFC 9293 3.5.2 case 3, 3.10.7.4 first)."""
    connection = enter_state(dut, tb, state, PORT)
    flow = connection.flow
    far_ahead_segment(flow, "data far beyond the DUT's receive window")
    answer = tb.expect([empty_ack_template(flow), flow.template("R"), flow.template("RA")],
                       within=ANSWER_S, why="an ACK of SND.NXT / RCV.NXT, nothing else")
    assert not answer[TCP].flags.R, "the DUT reset the connection"
    assert len(answer[TCP].payload) == 0, "the ACK carries data"
    received = dut.recv(connection.sock, 100, ["MSG_DONTWAIT"])
    tb.observe("recv_after_unacceptable_data", str(received))
    assert received != b"out of window", "the unacceptable data was delivered"


@pytest.mark.parametrize("state", STATES_BUT_TIME_WAIT)
@requirement("RFC9293-3.5.3a", "RFC9293-3.6a", "RFC1122-4.2.2.13f")
def test_rst_in_window_aborts_the_connection(dut: Dut, tb: Testbench, state: str) -> None:
    """An RST at RCV.NXT aborts the connection (RFC 9293 3.10.7.4 second): it answers the
    next segment with a reset, and an open socket reports an error."""
    connection = enter_state(dut, tb, state, PORT)
    flow = connection.flow
    flow.send("R", why="an RST exactly at RCV.NXT")
    far_ahead_segment(flow, "a probe: does the connection still exist?")
    probe = flow.tb.expect([flow.template("R"), flow.template("RA"), empty_ack_template(flow)],
                           within=ANSWER_S, why="a reset (the connection is gone) or an ACK")
    assert probe[TCP].flags.R, "the connection survived an RST at RCV.NXT"
    error = dut.getsockopt(connection.sock, "SO_ERROR")
    tb.observe("so_error_after_rst", error)
    if state in USER_INFORMED:  # 3.6 MUST-12: the user learns it was aborted
        assert error is not None, "the socket reports no error after the reset"


@pytest.mark.parametrize("state", STATES_BUT_TIME_WAIT)
@requirement("RFC9293-3.5.3a")
def test_rst_out_of_window_is_ignored(dut: Dut, tb: Testbench, state: str) -> None:
    """An RST whose sequence number is outside the receive window is dropped: the
    connection lives on (RFC 9293 3.5.3, 3.10.7.4 first)."""
    connection = enter_state(dut, tb, state, PORT)
    flow = connection.flow
    flow.send("R", seq=flow.snd_nxt + FAR_AHEAD, why="an RST far outside the window")
    tb.expect_none(flow.template("R"), why="no reset answers a reset")
    # The probe leaves the DUT's FIN unacknowledged: a stack that takes the ACK of an
    # unacceptable segment (lwIP) would otherwise end LAST-ACK on the probe itself, a
    # deviation test_unacceptable_segment_is_acknowledged judges, not this case.
    far_ahead_segment(flow, "a probe: does the connection still exist?",
                      ack=flow.rcv_nxt - 1 if state in FIN_UNACKNOWLEDGED else None)
    probe = tb.expect([empty_ack_template(flow), flow.template("R"), flow.template("RA")],
                      within=ANSWER_S, why="an ACK: the connection is still there")
    assert not probe[TCP].flags.R, "an out-of-window RST aborted the connection"
    assert dut.getsockopt(connection.sock, "SO_ERROR") is None


@requirement("RFC9293-3.10.7.4i")
def test_rst_in_window_but_not_at_rcv_nxt(dut: Dut, tb: Testbench) -> None:
    """An RST inside the window but not at RCV.NXT: RFC 5961 answers a challenge ACK and
    keeps the connection, RFC 793 resets it; which one is recorded."""
    connection = enter_state(dut, tb, "ESTABLISHED", PORT)
    flow = connection.flow
    flow.send("R", seq=flow.snd_nxt + 100, why="an RST 100 octets into the window")
    answer = tb.expect_or_none(empty_ack_template(flow),
                               why="a challenge ACK (RFC 5961)")
    error = dut.getsockopt(connection.sock, "SO_ERROR")
    # RFC 9293 3.10.7.4 first (RFC 5961 3.2): a challenge ACK MAY answer it.
    tb.observe("rst_not_at_rcv_nxt", "challenge-ack" if answer is not None
               else "reset" if error is not None else "ignored", choice=True)


@pytest.mark.parametrize("state", STATES_BUT_TIME_WAIT)
@requirement("RFC9293-3.10.7.4d")
def test_syn_in_synchronized_state(dut: Dut, tb: Testbench, state: str) -> None:
    """A SYN inside the window of a synchronized connection draws a challenge ACK
    (RFC 5961) or a reset (RFC 793), never a SYN-ACK (RFC 9293 3.10.7.4 fourth)."""
    connection = enter_state(dut, tb, state, PORT)
    flow = connection.flow
    # A slow DUT may have retransmitted its SYN-ACK while the handshake's ACK was on the
    # way; such a duplicate, sent before the SYN, answers nothing.
    duplicate = tb.expect_or_none(flow.template("SA", seq=0),
                                  why="a handshake SYN-ACK retransmitted before the SYN")
    tb.observe("synack_retransmitted_during_the_handshake", duplicate is not None)
    flow.send("S", seq=flow.snd_nxt, options=[("MSS", 1460)], why="a SYN inside the window")
    answer = tb.expect([empty_ack_template(flow), flow.template("R"), flow.template("RA"),
                        flow.template("SA")], within=ANSWER_S, why="challenge ACK or reset")
    # RFC 9293 3.10.7.4 fourth: a challenge ACK (RFC 5961 4) or a reset (RFC 793) will do.
    tb.observe("answer_to_syn", "reset" if answer[TCP].flags.R else
               "syn-ack" if answer[TCP].flags.S else "challenge-ack", choice=True)
    assert not answer[TCP].flags.S, "a SYN-ACK: the SYN was taken for a new connection"


FIN_STATES = ("ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK")


@pytest.mark.parametrize("state", FIN_STATES)
@requirement("RFC9293-3.10.7.4j")
def test_fin_is_acknowledged(dut: Dut, tb: Testbench, state: str) -> None:
    """A FIN (or a retransmitted one, where the tester has sent its FIN already) is
    acknowledged: RCV.NXT moves past it once (RFC 9293 3.10.7.4 eighth)."""
    connection = enter_state(dut, tb, state, PORT)
    flow = connection.flow
    if state in ("CLOSE-WAIT", "CLOSING", "LAST-ACK"):
        flow.send("FA", seq=flow.snd_nxt - 1, ack=flow.rcv_nxt - (state in ("CLOSING", "LAST-ACK")),
                  why="the tester's FIN again, as if the ACK were lost")
    else:
        flow.send("FA", why="the tester's FIN")
    flow.expect("A", ack=flow.snd_nxt, within=ANSWER_S, why="the FIN acknowledged")
    if state in ("ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2"):
        eof = dut.recv(connection.sock, 100, ["MSG_DONTWAIT"])
        tb.observe("recv_after_fin", str(eof))
        assert eof == b"", f"recv after the FIN: {eof!r}, not end of file"  # 3.6 MUST-12


@requirement("RFC9293-3.10.7.4k")
def test_ack_of_unsent_data_is_dropped(dut: Dut, tb: Testbench) -> None:
    """A segment acknowledging data the DUT never sent is dropped, its data undelivered,
    and answered with an ACK (RFC 9293 3.10.7.4 fifth, ESTABLISHED)."""
    connection = enter_state(dut, tb, "ESTABLISHED", PORT)
    flow = connection.flow
    flow.send("PA", b"acks the future", ack=flow.rcv_nxt + 1000, advance=False,
              why="data whose ACK field is 1000 octets beyond SND.NXT")
    answer = tb.expect_or_none(empty_ack_template(flow),
                               why="an ACK of what the DUT really has")
    tb.observe("ack_for_unsent_ack", answer is not None)
    received = dut.recv(connection.sock, 100, ["MSG_DONTWAIT"])
    tb.observe("recv_after_bad_ack", str(received))
    assert received == Errno("EAGAIN"), f"the segment's data was delivered: {received!r}"
    assert answer is not None, "no ACK answered the segment acknowledging unsent data"


@requirement("RFC9293-3.10.7.4e", "RFC9293-3.10.7.4f", "RFC9293-3.10.7.4g",
             "RFC1122-4.2.2.20a", "RFC1122-4.2.2.20b", "RFC1122-4.2.2.20c")
def test_queued_segments_are_acknowledged_once(dut: Dut, tb: Testbench) -> None:
    """Three segments beyond a gap are held; the one filling the gap draws a single ACK
    of all four (MUST-58/59), and the data reads in order. ACKs for the out-of-order
    segments themselves (MAY-13) are counted."""
    connection = enter_state(dut, tb, "ESTABLISHED", PORT)
    flow = connection.flow
    start = flow.snd_nxt
    for index in (1, 2, 3):
        flow.send("PA", bytes([65 + index]) * 100, seq=start + 100 * index,
                  why=f"segment {index + 1} of 4, beyond the gap")
    duplicate_acks = 0
    while tb.expect_or_none(flow.template("A", ack=start),
                            why="a duplicate ACK for the gap") is not None:
        duplicate_acks += 1
    tb.observe("acks_for_out_of_order_segments", duplicate_acks)
    flow.send("PA", b"A" * 100, seq=start, why="segment 1 of 4, filling the gap")
    flow.snd_nxt = start + 400
    answer = tb.expect(flow.template("A"), within=ANSWER_S, why="the ACK after the gap is filled")
    assert flow.relative_ack(answer) == start + 400, (
        f"ACK of {flow.relative_ack(answer)}, not of all four segments ({start + 400})")
    tb.expect_none(flow.template("A"), why="one ACK, not one per segment")
    received = b""
    while len(received) < 400:
        chunk = dut.recv(connection.sock, 400)
        assert isinstance(chunk, bytes) and chunk, f"recv: {chunk!r}"
        received += chunk
    assert received == b"A" * 100 + b"B" * 100 + b"C" * 100 + b"D" * 100
