"""Reset generation and processing outside the synchronized states (RFC 9293 3.5.2,
3.5.3, 3.10.7.1-2) and RSTs that carry data or meet a zero window (3.4, 3.5.3)."""

from scapy.layers.inet import TCP

from conformance.case import Errno, choices, requirement, tcp_segment_choices
from conformance.targets.dut import Dut
from conformance.testbench.bench import ANSWER_S, Testbench
from conformance.testbench.scenarios import enter_state, listen
from conformance.testbench.tcp import TcpFlow
from conformance.testbench.tcp_sequence import MOD
from conformance.testbench.tcp_stream import recv_woken_by

pytestmark = tcp_segment_choices

PORT = 5030
CLOSED_PORT = 5039  # nothing listens there
# RFC 9293 3.5.2: the reset for a segment with ACK is <SEQ=SEG.ACK><CTL=RST>; its SEQ makes
# it acceptable, and an ACK bit beside it (lwIP's tcp_rst sends RST,ACK) is the sender's.
RESET_FOR_AN_ACK = ("R", "RA")


@requirement("RFC9293-3.5.2a")
@choices("frame.rst_ack")
def test_segment_with_ack_to_a_closed_port_draws_rst(dut: Dut, tb: Testbench) -> None:
    """An ACK-bearing segment to a closed port draws <SEQ=SEG.ACK><CTL=RST>."""
    flow = TcpFlow(tb, tb.host, sport=43100, dport=CLOSED_PORT, dut_isn=7_000_000)
    flow.send("PA", b"hello", why="data with ACK to a closed port")
    reset = tb.expect(flow.template(), within=ANSWER_S, why="the reset")
    tb.observe("reset_flags", str(reset[TCP].flags), choice=True)
    assert str(reset[TCP].flags) in RESET_FOR_AN_ACK, f"flags {reset[TCP].flags}, not RST"
    assert reset[TCP].seq == 7_000_000, "the RST's SEQ is not SEG.ACK"
    assert len(reset[TCP].payload) == 0


@requirement("RFC9293-3.5.2a")
def test_segment_without_ack_to_a_closed_port_draws_rst_ack(dut: Dut, tb: Testbench) -> None:
    """A SYN with data and FIN (SEG.LEN = 1 + 5 + 1) to a closed port draws
    <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>."""
    flow = TcpFlow(tb, tb.host, sport=43101, dport=CLOSED_PORT)
    flow.send("SF", b"hello", why="SYN with data and FIN to a closed port")
    reset = tb.expect(flow.template(), within=ANSWER_S, why="the reset")
    assert str(reset[TCP].flags) == "RA", f"flags {reset[TCP].flags}, not RST,ACK"
    assert reset[TCP].seq == 0, "the RST's SEQ is not zero"
    assert reset[TCP].ack == (flow.isn + 7) % MOD, "the RST's ACK is not SEG.SEQ+SEG.LEN"


@requirement("RFC9293-3.5.2b")
def test_rst_to_a_closed_port_is_not_answered(dut: Dut, tb: Testbench) -> None:
    """A reset to a closed port draws nothing."""
    flow = TcpFlow(tb, tb.host, sport=43102, dport=CLOSED_PORT, dut_isn=7_000_000)
    flow.send("RA", why="an RST,ACK for no connection")
    flow.send("R", seq=5, why="an RST for no connection")
    flow.expect_none(why="a reset is never answered")


@requirement("RFC9293-3.5.3c")
def test_listener_ignores_rst(dut: Dut, tb: Testbench) -> None:
    """An RST to a listener is ignored: no answer, and the listener still accepts."""
    listener = listen(dut, PORT)
    stray = TcpFlow(tb, tb.host, sport=43103, dport=PORT, dut_isn=7_000_000)
    stray.send("R", why="an RST to the listener")
    stray.expect_none(why="nothing answers the RST")
    TcpFlow(tb, tb.host, sport=43104, dport=PORT).connect(within=ANSWER_S)
    assert isinstance(dut.accept(listener), tuple)


@requirement("RFC9293-3.10.7.2a", "RFC9293-3.5.2c")
@choices("frame.rst_ack")
def test_listener_answers_ack_with_rst(dut: Dut, tb: Testbench) -> None:
    """An ACK-bearing segment to a listener draws <SEQ=SEG.ACK><CTL=RST>; the listener
    keeps listening."""
    listener = listen(dut, PORT)
    stray = TcpFlow(tb, tb.host, sport=43105, dport=PORT, dut_isn=7_000_000)
    stray.send("A", ack=123, why="an ACK for a connection the listener never had")
    reset = tb.expect(stray.template(), within=ANSWER_S, why="the reset")
    tb.observe("reset_flags", str(reset[TCP].flags), choice=True)
    assert str(reset[TCP].flags) in RESET_FOR_AN_ACK, f"flags {reset[TCP].flags}, not RST"
    assert reset[TCP].seq == 7_000_123, "the RST's SEQ is not SEG.ACK"
    TcpFlow(tb, tb.host, sport=43106, dport=PORT).connect(within=ANSWER_S)
    assert isinstance(dut.accept(listener), tuple)


@requirement("RFC9293-3.5.3b", "RFC1122-4.2.2.12")
def test_rst_carrying_data_resets(dut: Dut, tb: Testbench) -> None:
    """An RST with data in it (a diagnostic text) resets the connection all the same."""
    connection = enter_state(dut, tb, "ESTABLISHED", PORT)
    connection.flow.send("R", b"diagnostic: going away", why="an RST at RCV.NXT with data")
    receiving = dut.start("recv", sock=connection.sock, size=100, flags=[])
    assert receiving.wait(ANSWER_S), "recv still waiting: the RST with data was not acted on"
    received = receiving.result(timeout=ANSWER_S)
    tb.observe("recv_after_rst_with_data", str(received))
    assert received == Errno("ECONNRESET"), f"recv: {received!r}"


@requirement("RFC9293-3.6a", "RFC1122-4.2.2.13f")
def test_rst_is_reported_to_a_blocked_recv(dut: Dut, tb: Testbench) -> None:
    """A recv waiting on the connection returns ECONNRESET when the RST arrives."""
    connection = enter_state(dut, tb, "ESTABLISHED", PORT)
    answer = recv_woken_by(dut, connection, "R", why="an RST at RCV.NXT", what="the reset")
    assert answer == Errno("ECONNRESET")


RCVBUF = 2048


@requirement("RFC9293-3.4a")
@choices("frame.rst_ack")
def test_rst_is_processed_with_a_zero_window(dut: Dut, tb: Testbench) -> None:
    """With its receive window full (the application reads nothing), the DUT still
    acts on an RST at RCV.NXT."""
    # SO_RCVBUF (inherited by the accepted socket) makes the window small where it sizes
    # the window (Linux); lwIP takes it and leaves TCP's window at TCP_WND, which is then
    # filled in the same way.
    listener = listen(dut, PORT, reuseaddr=False, rcvbuf=RCVBUF)
    flow = TcpFlow(tb, tb.host, sport=43107, dport=PORT)
    flow.connect(within=ANSWER_S)
    connection, _ = dut.accept(listener)
    window = flow.snd_wnd
    for _ in range(64):  # fill the window it offers; each ACK tells how much room is left
        while flow.usable_window() > 0:
            size = min(flow.dut_mss, flow.usable_window())
            flow.send("PA", b"x" * size, why="data the application does not read")
        ack = flow.expect("A", ack=flow.snd_nxt, within=ANSWER_S,
                          why="the ACK of all of it, with the window left")
        window = int(ack[TCP].window)
        if window == 0:
            break
    tb.observe("window_closed", window == 0)
    assert window == 0, "the receive window never closed"
    flow.send("R", why="an RST at RCV.NXT while the window is zero")
    flow.send("PA", b"probe", seq=flow.snd_nxt + (1 << 20), why="a probe")
    probe = tb.expect([*(flow.template(flags) for flags in RESET_FOR_AN_ACK),
                       flow.template("A")], within=ANSWER_S, why="a reset: the connection is gone")
    assert probe[TCP].flags.R, "the RST was ignored while the window was zero"
    assert dut.getsockopt(connection, "SO_ERROR") == "ECONNRESET"
