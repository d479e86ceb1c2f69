"""TIME-WAIT (RFC 9293 3.10.7.4, RFC 1122 4.2.2.13, RFC 1337).

The DUT serves a connection from the tester and closes first, so it is the one in
TIME-WAIT, with its listener still open: a SYN that reopens the connection has a
listener to reach. Bringing it there is a step (scenarios.enter_state): a DUT that
never gets there fails that step, whatever the case observes.
"""

import threading
import time

import pytest
from scapy.layers.inet import TCP

from conformance.case import Errno, TcpFlow, requirement, slow, tcp_segment_choices
from conformance.targets.dut import Dut
from conformance.testbench.bench import ANSWER_S, Received, Testbench, step
from conformance.testbench.scenarios import enter_state
from conformance.testbench.tcp_sequence import MOD

pytestmark = tcp_segment_choices

PORT = 5003
HALF_SEQUENCE_SPACE = 1 << 31
TIME_WAIT_ACKS_FIN = "RFC9293-3.10.7.4b"


def retransmit_fin(flow: TcpFlow, why: str) -> None:
    flow.send("FA", seq=flow.snd_nxt - 1, why=why)


def new_syn(flow: TcpFlow, seq: int, why: str) -> None:
    flow.send("S", seq=seq, options=[("MSS", 1460)], why=why)


def reopen_answer(flow: TcpFlow, tb: Testbench) -> Received | None:
    """What the DUT sends after a SYN in TIME-WAIT, before it answers a barrier: SYN-ACK,
    ACK or RST (or nothing)."""
    return tb.expect_or_none(flow.template(), why="the DUT's answer to the SYN")


def observe_reopened_isn(tb: Testbench, synack: Received, old_snd_nxt: int) -> bool:
    """Record and return whether the reopened connection's ISN lies above the old SND.NXT
    (RFC 9293 3.6.1, RFC 6191: above the old sequence space); how far is the ISN's own."""
    distance = int(synack[TCP].seq - old_snd_nxt) % MOD
    above = 0 < distance < HALF_SEQUENCE_SPACE
    tb.observe("reopen_isn_above_old_snd_nxt", above)
    return above


def describe_answer(answer: Received | None) -> str:
    if answer is None:
        return "nothing"
    flags = answer[TCP].flags
    return "syn-ack" if flags.S else "reset" if flags.R else "ack"


@requirement("RFC9293-3.10.7.4b")
def test_time_wait_acknowledges_a_retransmitted_fin(dut: Dut, tb: Testbench) -> None:
    """In TIME-WAIT, the DUT acknowledges a retransmission of the peer's FIN."""
    flow = enter_state(dut, tb, "TIME-WAIT", PORT, close_socket=True).flow
    retransmit_fin(flow, "the tester's FIN again, as if the last ACK were lost")
    flow.expect("A", ack=flow.snd_nxt, within=ANSWER_S, why="the FIN acknowledged again")


@requirement("RFC1122-4.2.2.13b", "RFC9293-3.6e")
def test_new_syn_above_the_old_sequence_space_may_reopen(dut: Dut, tb: Testbench) -> None:
    """A SYN above the old connection's sequence space may reopen it from TIME-WAIT."""
    flow = enter_state(dut, tb, "TIME-WAIT", PORT, close_socket=True).flow
    last_ack = flow.received[-1]  # the DUT's last ACK
    new_syn(flow, flow.snd_nxt + 100_000, "a new SYN, far above the old sequence space")
    answer = reopen_answer(flow, tb)
    tb.observe("answer_to_new_syn", describe_answer(answer), choice=True)  # RFC 1122 4.2.2.13
    assert answer is not None and answer[TCP].flags.S, "the connection was not reopened"
    observe_reopened_isn(tb, answer, last_ack[TCP].seq)  # judged by the case below


@requirement("RFC1122-4.2.2.13c")
def test_reopened_connection_starts_above_the_old_sequence_space(
    dut: Dut, tb: Testbench
) -> None:
    """A connection reopened from TIME-WAIT starts above the old incarnation's sequence."""
    flow = enter_state(dut, tb, "TIME-WAIT", PORT, close_socket=True).flow
    last_ack = flow.received[-1]  # the DUT's last ACK
    old_snd_nxt = last_ack[TCP].seq  # the DUT's last ACK carries its final SND.NXT
    new_syn(flow, flow.snd_nxt + 100_000, "a new SYN, far above the old sequence space")
    answer = reopen_answer(flow, tb)
    if answer is None or not answer[TCP].flags.S:
        pytest.skip("the DUT does not reopen connections from TIME-WAIT")
    assert observe_reopened_isn(tb, answer, old_snd_nxt), (
        f"new ISN {answer[TCP].seq} is not above the old SND.NXT {old_snd_nxt}"
    )


@requirement("RFC1122-4.2.2.13d")
def test_old_duplicate_syn_does_not_reopen(dut: Dut, tb: Testbench) -> None:
    """An old duplicate SYN (the first connection's own) does not open a new connection:
    no SYN-ACK before the DUT answers a barrier."""
    flow = enter_state(dut, tb, "TIME-WAIT", PORT, close_socket=True).flow
    new_syn(flow, 0, "the first SYN again: an old duplicate")
    answer = reopen_answer(flow, tb)
    tb.observe("answer_to_old_syn", describe_answer(answer))
    assert answer is None or not answer[TCP].flags.S, "an old duplicate SYN reopened it"


@requirement("RFC9293-3.10.7.4c")
def test_rst_in_time_wait(dut: Dut, tb: Testbench) -> None:
    """An in-window RST in TIME-WAIT either closes it (RFC 9293) or is ignored (RFC 1337)."""
    flow = enter_state(dut, tb, "TIME-WAIT", PORT, close_socket=True).flow
    flow.send("R", why="an in-window RST, as a stray old segment could be")
    retransmit_fin(flow, "the tester's FIN again, to see whether TIME-WAIT survived")
    # Either way the FIN must be answered: by TIME-WAIT's ACK (3.10.7.4) or, the
    # connection gone, by the listener's reset of an ACK-bearing segment (3.10.7.2).
    with step(TIME_WAIT_ACKS_FIN, "the FIN is acknowledged, or reset by the listener"):
        answer = tb.expect([flow.template("A", ack=flow.snd_nxt), flow.template("R"),
                            flow.template("RA")], within=ANSWER_S,
                           why="TIME-WAIT's ACK, or a reset if it is gone")
    tb.observe("rst_in_time_wait", "closed" if answer[TCP].flags.R else "ignored",
               choice=True)  # RFC 1337 leaves it open


@requirement("RFC1122-4.2.2.13e")
def test_bind_to_a_time_wait_address(dut: Dut, tb: Testbench) -> None:
    """Binding the address of a TIME-WAIT connection fails with EADDRINUSE unless
    SO_REUSEADDR is set."""
    connection = enter_state(dut, tb, "TIME-WAIT", PORT, close_socket=True)
    assert connection.listener is not None
    dut.close(connection.listener)
    plain = dut.socket("tcp")
    without_reuse = dut.bind(plain, dut.ip, PORT)
    reusing = dut.socket("tcp")
    dut.setsockopt(reusing, "SO_REUSEADDR", 1)
    with_reuse = dut.bind(reusing, dut.ip, PORT)
    # RFC 1122 4.2.2.13 (MAY): binding a TIME-WAIT address is the socket API's choice.
    tb.observe("bind_without_reuseaddr", str(without_reuse), choice=True)
    tb.observe("bind_with_reuseaddr", str(with_reuse), choice=True)
    assert without_reuse == Errno("EADDRINUSE")
    assert with_reuse is None, f"bind with SO_REUSEADDR: {with_reuse}"


PROBE_INTERVAL_S = 0.5


@slow
@requirement("RFC1122-4.2.2.13a", "RFC9293-3.6d")
def test_time_wait_lasts_two_msl(dut: Dut, tb: Testbench, msl: float) -> None:
    """TIME-WAIT lasts at least 2 x MSL (MSL from --msl). Measured without touching the
    wire, which would restart the timer: bind() is retried until the address is free."""
    connection = enter_state(dut, tb, "TIME-WAIT", PORT, close_socket=True)
    assert connection.listener is not None
    dut.close(connection.listener)
    last_ack = connection.flow.received[-1]  # the DUT's last ACK
    probe = dut.socket("tcp")
    deadline = time.monotonic() + 4 * msl + 60
    pause = threading.Event()  # never set: a bounded pause between probes
    while dut.bind(probe, dut.ip, PORT) == Errno("EADDRINUSE"):
        assert time.monotonic() < deadline, "TIME-WAIT did not end"
        pause.wait(PROBE_INTERVAL_S)
    lasted = time.monotonic() - last_ack.time_s
    tb.observe("time_wait_s", round(lasted, 1))
    assert lasted >= 2 * msl - PROBE_INTERVAL_S, f"TIME-WAIT lasted {lasted:.1f}s < 2 x {msl}s"
