"""When to send an ACK and when to send data (RFC 9293 3.7.4, 3.8.6.3; RFC 1122 4.2.3.2,
4.2.3.4): delayed ACKs, an ACK for every second full segment, Nagle and TCP_NODELAY.

ACK delays are measured from the capture timestamp of the tester's segment to that of
the DUT's ACK.
"""

import pytest
from scapy.layers.inet import TCP
from scapy.layers.l2 import Ether

from conformance.case import Unsupported, requirement, tcp_segment_choices
from conformance.targets.dut import Dut
from conformance.testbench.bench import ANSWER_S, ExpectationFailed, Received, Testbench
from conformance.testbench.scenarios import Connection, open_passive
from conformance.testbench.tcp import TcpFlow
from conformance.testbench.tcp_stream import next_data
from conformance.testbench.templates import matches

pytestmark = tcp_segment_choices

PORT = 5130
ACK_DEADLINE_S = 0.5  # RFC 9293 MUST-40: an ACK is delayed by less than 0.5 s
PROMPT_S = 0.1


def ack_of(flow: TcpFlow, *, within: float, why: str, observed: bool = True) -> Received:
    """The DUT's first segment acknowledging everything the tester sent; `observed` as
    for Testbench.expect."""
    return flow.expect(ack=flow.snd_nxt, within=within, why=why, observed=observed)


def small_segment_delays(connection: Connection, rounds: int) -> list[float]:
    """Send small segments one at a time, each after the ACK of the previous one; the
    delay of each ACK in seconds."""
    flow, delays = connection.flow, []
    for n in range(rounds):
        flow.send("PA", b"%02d" % n, why=f"small segment {n + 1}")
        frame = flow.tb.last_sent
        ack = ack_of(flow, within=ANSWER_S, why=f"ACK of small segment {n + 1}")
        delays.append(round(ack.time_s - frame.time_s, 4))
    return delays


@requirement("RFC9293-3.8.6.3b", "RFC1122-4.2.3.2b")
def test_ack_is_delayed_by_less_than_half_a_second(dut: Dut, tb: Testbench) -> None:
    """Each of 20 small segments sent one at a time is acknowledged within 0.5 s."""
    connection = open_passive(dut, tb, PORT, sport=43300)
    delays = small_segment_delays(connection, 20)
    tb.observe("longest_ack_delay_s", max(delays))
    assert max(delays) < ACK_DEADLINE_S, (
        f"ACKs came late: up to {max(delays)} s after the segment, the bound is "
        f"{ACK_DEADLINE_S} s")


DELAY_EVIDENCE_ROUNDS = 3
HELD_S = 0.02  # below any delayed-ACK timer (Linux's shortest is 40 ms)


@requirement("RFC9293-3.8.6.3a", "RFC1122-4.2.3.2a")
def test_small_segments_share_a_delayed_ack(dut: Dut, tb: Testbench) -> None:
    """Rounds of two small segments, the second sent only when no ACK of the first has come
    within 20 ms: once past any quick-ACK start (up to 16 rounds), the ACK is delayed. In
    three rounds one ACK covers both segments. A stack that acknowledges every segment as
    it processes it answers the first within the 20 ms of every round."""
    connection = open_passive(dut, tb, PORT, sport=43301)
    flow = connection.flow
    rounds: list[str] = []
    for n in range(30):
        flow.send("PA", b"a%02d" % n, why=f"round {n + 1}: first small segment")
        first_end = flow.snd_nxt
        try:
            # A pure ACK: not a SYN-ACK retransmitted while the handshake's ACK was on its
            # way.
            flow.expect("A", ack=first_end, within=HELD_S, observed=False,
                        why=f"round {n + 1}: an ACK of the first segment at once")
            rounds.append("acked at once")
            continue
        except ExpectationFailed:
            pass
        flow.send("PA", b"b%02d" % n, why=f"round {n + 1}: second small segment, the first "
                  "still unacknowledged")
        ack = flow.expect("A", within=ANSWER_S, observed=False,
                          why=f"round {n + 1}: the next ACK")
        if flow.relative_ack(ack) == flow.snd_nxt:
            rounds.append("one ACK for both")
        else:
            rounds.append("acked on its own")
            flow.expect("A", ack=flow.snd_nxt, within=ANSWER_S, observed=False,
                        why=f"round {n + 1}: ACK of the second segment")
        if rounds.count("one ACK for both") == DELAY_EVIDENCE_ROUNDS:
            break
    # Which round an ACK falls in follows the DUT's timers against the tester's 20 ms (a
    # quick-ACK start, a delayed-ACK timer that fires near them): the rounds are in the
    # capture and the message; what is judged is observed.
    shared = rounds.count("one ACK for both")
    tb.observe("rounds_with_one_ack_for_both", shared)
    assert shared == DELAY_EVIDENCE_ROUNDS, (
        f"the ACK was not delayed: in {len(rounds)} rounds, {shared} ACK(s) covered two "
        f"small segments sent {HELD_S * 1000:.0f} ms apart (rounds: {', '.join(rounds)})")


def ack_lags(flow: TcpFlow, since: int, mss: int) -> list[float]:
    """For every moment from frame `since` on when the DUT held at least two full-sized
    segments of the tester's data unacknowledged: how long until an ACK left it less."""
    received_end, acked = 0, flow.snd_nxt
    pending: float | None = None  # since when two full segments have waited
    lags = []
    for frame in flow.tb.capture.frames[since:]:
        packet = Ether(frame.data)
        if TCP not in packet or {packet[TCP].sport, packet[TCP].dport} != {flow.sport,
                                                                           flow.dport}:
            continue
        if frame.sender == "dut":
            acked = flow.relative_ack(Received(frame, packet))
            if pending is not None and received_end - acked < 2 * mss:
                lags.append(round(frame.time_s - pending, 4))
                pending = None
        elif len(packet[TCP].payload):
            received_end = (packet[TCP].seq - flow.isn) % (1 << 32) + len(packet[TCP].payload)
            if pending is None and received_end - acked >= 2 * mss:
                pending = frame.time_s
    if pending is not None:
        lags.append(float("inf"))
    return lags


def waitall_supported(dut: Dut, sock: int) -> bool:
    """Whether recv takes MSG_WAITALL (a non-blocking read of nothing tells)."""
    try:
        dut.recv(sock, 1, ["MSG_WAITALL", "MSG_DONTWAIT"])
    except Unsupported:
        return False
    return True


@requirement("RFC9293-3.8.6.3c", "RFC1122-4.2.3.2c")
def test_every_second_full_segment_is_acknowledged_without_delay(
    dut: Dut, tb: Testbench
) -> None:
    """Whenever two full-sized segments (the DUT's MSS), read by the application as they
    come, are unacknowledged, an ACK follows at once, not on the delayed-ACK timer: within
    half the delay the DUT takes for a lone small segment (or 20 ms, whichever is longer),
    in every wait of five pairs but the longest."""
    connection = open_passive(dut, tb, PORT, sport=43302)
    flow = connection.flow
    mss = flow.dut_mss
    tb.observe("dut_mss", mss)
    lone = small_segment_delays(connection, 20)[-1]
    if flow.max_snd_wnd < 2 * mss:
        # Two full-sized segments never fit the window: the case cannot arise.
        pytest.skip(f"the DUT's window (at most {flow.max_snd_wnd}) holds less than two "
                    f"full-sized segments ({mss})")
    tb.observe("lone_small_segment_delay_s", lone)
    assert dut.recv(connection.sock, 1000, ["MSG_DONTWAIT"]) == b"".join(
        b"%02d" % n for n in range(20)), "the small segments were not delivered"
    # The application reads as the data comes, so the window can advance: a receiver
    # that is not read from may hold its ACK until the window can move. MSG_WAITALL
    # keeps one read pending for the pair; without it (lwIP 2.1.3 lacks it) a plain read
    # is pending when the pair comes, and the rest is read after the ACK.
    waitall = waitall_supported(dut, connection.sock)
    tb.observe("reader", "MSG_WAITALL" if waitall else "recv")
    start = len(tb.capture.frames)
    # How a pair splits over reads is the DUT's timing: the reads are not observations,
    # the pairs read intact are.
    for n in range(5):
        reading = dut.start("recv", sock=connection.sock, size=2 * mss,
                            flags=["MSG_WAITALL"] if waitall else [], observed=False)
        flow.wait_for_window(2 * mss, within=ANSWER_S, why=f"room for pair {n + 1}")
        flow.send("A", b"x" * mss, why=f"pair {n + 1}: full segment 1")
        flow.send("A", b"y" * mss, why=f"pair {n + 1}: full segment 2")
        # Its window depends on whether the read came first: what is judged is its
        # timing (the lags below).
        ack_of(flow, within=ANSWER_S, why=f"ACK of pair {n + 1}", observed=False)
        received = reading.result(timeout=ANSWER_S)
        while isinstance(received, bytes) and 0 < len(received) < 2 * mss:
            more = dut.recv(connection.sock, 2 * mss - len(received), [], observed=False)
            assert isinstance(more, bytes) and more, f"recv of the rest of pair {n + 1}: {more!r}"
            received += more
        assert received == b"x" * mss + b"y" * mss, f"pair {n + 1} read damaged"
    tb.observe("pairs_read_intact", 5)
    lags = sorted(ack_lags(flow, start, mss), reverse=True)
    # 20 ms: half the shortest delayed-ACK timer in use (Linux's 40 ms TCP_DELACK_MIN),
    # so a DUT that waits for its timer is caught even when it delays no lone segment;
    # above what a DUT that answers at once takes on a CPU the tester shares (seen with
    # gVisor beside the project's tests: 12.7, 10.7 and 6.4 ms).
    limit = max(0.020, lone / 2)
    # No lag at all: the DUT acknowledged every segment before the next one came. How
    # many pairs waited at all is the DUT's timing. Every wait but the longest is judged:
    # one may hold a scheduling delay of the DUT's process or its application's read
    # (Linux acknowledges when the application reads) on a CPU the tester shares (seen:
    # 22 ms against a 20 ms bound under load); a DUT that waits for its timer waits in
    # every pair.
    judged = lags[1] if len(lags) > 1 else 0.0
    tb.observe("second_longest_two_segment_ack_lag_s", judged)
    assert judged <= limit, (
        f"the ACK came late: two full segments waited {', '.join(map(str, lags))} s for "
        f"it, the bound is {limit} s (a lone small segment {lone} s) for all but one wait")


def small_write_unacknowledged(dut: Dut, tb: Testbench, sport: int, *,
                               nodelay: bool) -> tuple[Connection, Received]:
    connection = open_passive(dut, tb, PORT, sport=sport)
    if nodelay:
        dut.setsockopt(connection.sock, "TCP_NODELAY", 1)
    assert dut.send(connection.sock, b"first") == 5
    first = next_data(connection.flow, within=ANSWER_S, why="the first small write")
    assert dut.send(connection.sock, b"second") == 6
    return connection, first


@requirement("RFC9293-3.7.4a", "RFC1122-4.2.3.4b")
def test_nagle_holds_a_small_write_while_data_is_unacknowledged(
    dut: Dut, tb: Testbench
) -> None:
    """With Nagle on (the default), a second small write waits while the first is
    unacknowledged, and goes out as soon as the ACK comes."""
    connection, _ = small_write_unacknowledged(dut, tb, 43303, nodelay=False)
    flow = connection.flow
    tb.expect_none(flow.template(seq=6), why="Nagle: the second small write is held")
    flow.send("A", why="ACK of the first write")
    ack_frame = tb.last_sent
    second = flow.expect(seq=6, within=ANSWER_S, why="the second write, released by the ACK")
    delay = round(second.time_s - ack_frame.time_s, 4)
    tb.observe("released_after_s", delay)
    assert delay <= PROMPT_S, (
        f"the held data came late: {delay} s after the ACK, the bound is {PROMPT_S} s")


@requirement("RFC9293-3.7.4b", "RFC1122-4.2.3.4c")
def test_nodelay_sends_a_small_write_at_once(dut: Dut, tb: Testbench) -> None:
    """With TCP_NODELAY, a second small write goes out on its own although the first is
    still unacknowledged: not held until the first is acknowledged or sent again (Nagle
    would hold it; the tester never acknowledges)."""
    connection, first = small_write_unacknowledged(dut, tb, 43304, nodelay=True)
    flow = connection.flow
    second = flow.expect(seq=6, within=ANSWER_S, why="the second write, not held")
    tb.observe("second_write_after_s", round(second.time_s - first.time_s, 4))
    between = tb.capture.frames[first.frame.number:second.frame.number - 1]
    again = [frame.number for frame in between if frame.sender == "dut"
             and matches(flow.template(seq=1), Ether(frame.data))]
    tb.observe("first_write_sent_again_before", bool(again))
    assert not again, (
        f"with TCP_NODELAY the second write waited until the first was sent again "
        f"(frame {again[0]})")
