"""Retransmission and congestion control (RFC 9293 3.8.1-3.8.3 with RFC 6298 and RFC 5681;
RFC 1122 4.2.3.1, 4.2.3.5).

The tester withholds ACKs and reads the times of the DUT's retransmissions off the
capture. Tolerances are stated next to each judgement; timers on a loaded 2-core machine
run late rather than early, so lower bounds are tight and upper bounds generous.
"""

import itertools
import time

from scapy.layers.inet import IP, TCP

from conformance.case import Errno, requirement, slow, tcp_segment_choices
from conformance.targets.dut import Dut, PendingCall
from conformance.testbench.bench import ANSWER_S, Received, Testbench, step
from conformance.testbench.scenarios import HANDSHAKE, Connection, knows_the_tester, open_passive
from conformance.testbench.tcp import TcpFlow
from conformance.testbench.tcp_stream import next_data, next_data_or_none, payload

pytestmark = tcp_segment_choices

PORT = 5120
SILENT_PORT = 5121  # the tester never answers SYNs to it


def unanswered_syns(dut: Dut, tb: Testbench, count: int) -> tuple[list[Received], PendingCall]:
    """A connect() whose SYN the tester ignores: the first SYN and `count` retransmissions."""
    sock = dut.socket("tcp")
    knows_the_tester(tb)
    connecting = dut.start("connect", sock=sock, addr=tb.ip, port=SILENT_PORT)
    template = IP(src=dut.ip, dst=tb.ip) / TCP(dport=SILENT_PORT, flags="S")
    with step(HANDSHAKE, "connect() sends a SYN"):
        syns = [tb.expect(template, within=ANSWER_S, why="the DUT's SYN")]
    for attempt in range(1, count + 1):
        syns.append(tb.expect(template, within=4.0 * 2 ** attempt,
                              why=f"SYN retransmission {attempt}"))
    return syns, connecting


def intervals(segments: list[Received]) -> list[float]:
    return [round(later.time_s - earlier.time_s, 3)
            for earlier, later in itertools.pairwise(segments)]


@requirement("RFC9293-3.8.3g", "RFC1122-4.2.3.1", "RFC1122-4.2.3.1c")
def test_unanswered_syn_is_retransmitted_with_backoff(dut: Dut, tb: Testbench) -> None:
    """An unanswered SYN is sent again, same sequence number, each interval at least 1.5
    times the one before (exponential backoff)."""
    syns, _ = unanswered_syns(dut, tb, 3)
    gaps = intervals(syns)
    tb.observe("syn_intervals_s", gaps)
    assert len({syn[TCP].seq for syn in syns}) == 1, "the retransmitted SYNs differ in sequence"
    for earlier, later in itertools.pairwise(gaps):
        assert later >= 1.5 * earlier, f"no exponential backoff: intervals {gaps} s"


@requirement("RFC1122-4.2.3.1d")
def test_initial_rto_is_about_one_second(dut: Dut, tb: Testbench) -> None:
    """The first SYN retransmission comes no sooner than about 1 s after the SYN (RFC
    6298 2.1: an initial RTO of 1 s, or "any other value > 1 second", such as the 3 s of
    RFC 1122), judged from 0.9 s; the value is recorded."""
    syns, _ = unanswered_syns(dut, tb, 1)
    first = round(syns[1].time_s - syns[0].time_s, 3)
    tb.observe("initial_rto_s", first, choice=True)
    assert first >= 0.9, f"first SYN retransmission after {first} s, sooner than 1 s"


DATA = bytes(range(256)) * 40  # 10240 octets


def unacknowledged_data(dut: Dut, tb: Testbench, sport: int, size: int = 100,
                        mss: int = 1460) -> tuple[Connection, Received]:
    connection = open_passive(dut, tb, PORT, sport=sport, mss=mss)
    assert dut.send(connection.sock, DATA[:size]) == size
    first = next_data(connection.flow, within=ANSWER_S, why="the data the tester will not ACK")
    return connection, first


@requirement("RFC9293-3.8.1a", "RFC9293-3.8.2a", "RFC1122-4.2.3.1", "RFC1122-4.2.3.1b",
             "RFC9293-3.8.1b")
def test_unacknowledged_data_is_retransmitted_with_backoff(dut: Dut, tb: Testbench) -> None:
    """Data the peer never acknowledges is sent again after the RTO, and again after
    intervals that grow at least 1.5 times each (RFC 6298 5.5)."""
    connection, first = unacknowledged_data(dut, tb, 43200)
    flow, start = connection.flow, connection.flow.relative_seq(first)
    sent = [first]
    for attempt in range(1, 4):
        again = flow.expect(seq=start, within=4.0 * 2 ** attempt,
                            why=f"retransmission {attempt} of the unacknowledged data")
        assert payload(again)[:1] == payload(first)[:1], "the retransmission carries other data"
        sent.append(again)
    gaps = intervals(sent)
    tb.observe("rto_s", gaps[0])
    tb.observe("retransmission_intervals_s", gaps)
    tb.observe("same_ip_id", sent[1][IP].id == first[IP].id)
    for earlier, later in itertools.pairwise(gaps):
        assert later >= 1.5 * earlier, f"no exponential backoff: intervals {gaps} s"


# RFC 3465 2.2: in slow start one ACK grows cwnd by at most L = 2 * SMSS (RFC 5681 3.1:
# by at most SMSS, min(N, SMSS) recommended); the bound takes the larger.
ABC_LIMIT_SEGMENTS = 2


@requirement("RFC9293-3.8.2e", "RFC9293-3.8.2a")
def test_first_flight_is_within_the_initial_window(dut: Dut, tb: Testbench) -> None:
    """With up to 50 segments' worth of data and a 65535-octet window, the DUT sends at most
    the initial window (RFC 6928: min(10 MSS, max(2 MSS, 14600))) before an ACK comes.
    The tester then acknowledges it as a receiver does, an ACK for every second segment
    (RFC 5681 4.2), back to back; the next flight is not empty, and no larger than slow
    start allows: the first flight plus, for each ACK, min(octets it acknowledged,
    2 SMSS) (RFC 5681 3.1, RFC 3465 with L = 2 SMSS)."""
    mss = 1000
    connection = open_passive(dut, tb, PORT, sport=43201, mss=mss)
    flow = connection.flow
    # As much as the send buffer takes at once: more than the initial window, for sure.
    accepted = dut.send(connection.sock, DATA * 5, ["MSG_DONTWAIT"])
    tb.observe("octets_accepted", accepted)
    initial_window = min(10 * mss, max(2 * mss, 14600))
    assert isinstance(accepted, int) and accepted > initial_window, f"send took {accepted}"
    flight = flight_until_quiet(flow)
    first_flight = sum(len(payload(segment)) for segment in flight)
    tb.observe("first_flight_octets", first_flight)
    assert 0 < first_flight <= initial_window, (
        f"{first_flight} octets in the first flight, initial window {initial_window}")
    growth, acked = 0, flow.relative_seq(flight[0])
    for n in range(1, len(flight) + 1, 2):
        last = flight[min(n, len(flight) - 1)]
        end = flow.relative_seq(last) + len(payload(last))
        growth += min(end - acked, ABC_LIMIT_SEGMENTS * mss)
        acked = flow.rcv_nxt = end
        flow.send("A", why=f"ACK of the first flight up to {end}")
    bound = first_flight + growth
    second_flight = sum(len(payload(segment)) for segment in flight_until_quiet(flow))
    # What is judged: a second flight within the bound (its size within it is the
    # DUT's, and varies with when the ACKs reach it).
    tb.observe("second_flight_within_slow_start", 0 < second_flight <= bound)
    tb.observe("second_flight_bound", bound)
    assert second_flight > 0, "nothing more was sent after the first flight was acknowledged"
    assert second_flight <= bound, (
        f"{second_flight} octets after the ACKs of {first_flight}: more than slow start "
        f"allows ({bound})")


def flight_until_quiet(flow: TcpFlow, quiet: float = 0.15) -> list[Received]:
    """Data segments of one flight: the first within ANSWER_S, then each until none has
    come for `quiet` seconds (retransmissions excluded: the RTO is longer than the window,
    and a segment below the highest seen ends it)."""
    segments: list[Received] = []
    highest = -1
    while True:
        # Not observed frame by frame: where PSH goes in a flight varies from run to run.
        segment = next_data_or_none(flow, within=quiet if segments else ANSWER_S,
                                    why="the flight", observed=False)
        if segment is None:
            return segments
        start = flow.relative_seq(segment)
        if start <= highest:
            return segments
        highest = start
        segments.append(segment)


@requirement("RFC9293-3.8.2d")
def test_third_duplicate_ack_triggers_fast_retransmit(dut: Dut, tb: Testbench) -> None:
    """Of five segments written, the first is acknowledged and the second "lost": three
    duplicate ACKs for it bring its retransmission within 0.1 s, well before the RTO (RFC
    5681 3.2). Data is acknowledged first because a NewReno sender enters fast retransmit
    only when the ACK covers more than `recover`, which starts at the ISN (RFC 6582 3.2
    step 2): duplicate ACKs of the SYN alone need not trigger it."""
    mss = 1000
    written = 5 * mss
    connection = open_passive(dut, tb, PORT, sport=43202, mss=mss)
    flow = connection.flow
    assert dut.send(connection.sock, DATA[:written]) == written
    # Any initial window holds two segments of 1000 octets (RFC 5681 3.1).
    first_flight = flight_until_quiet(flow)
    assert len(first_flight) >= 2, (
        f"the first flight held {len(first_flight)} segment(s) of the {written} octets")
    acked, lost = first_flight[0], first_flight[1]
    flow.rcv_nxt = flow.relative_seq(lost)
    flow.send("A", why="ACK of segment 1 (new data acknowledged)")
    last = first_flight[-1]
    if flow.relative_seq(last) + len(payload(last)) - flow.relative_seq(acked) < written:
        flight_until_quiet(flow)  # what the window opened by the ACK lets out
    for n in range(3):
        flow.send("A", why=f"duplicate ACK {n + 1} (segment 2 missing)")
    third = tb.last_sent
    again = flow.expect(seq=flow.relative_seq(lost), within=ANSWER_S,
                        why="segment 2 again: fast retransmit")
    delay = round(again.time_s - third.time_s, 3)
    tb.observe("fast_retransmit_delay_s", delay)
    assert delay <= 0.1, (
        f"segment 2 came again late: {delay} s after the third duplicate ACK, the bound "
        "is 0.1 s")


USER_TIMEOUT_MS = 2000


@requirement("RFC9293-3.8.3a", "RFC9293-3.8.3c", "RFC1122-4.2.3.5a", "RFC1122-4.2.3.5b",
             "RFC9293-3.9.1.8a")
def test_user_timeout_aborts_a_connection_with_etimedout(dut: Dut, tb: Testbench) -> None:
    """With R2 set to 2 s (TCP_USER_TIMEOUT), data never acknowledged ends the connection
    with ETIMEDOUT, 2-8 s after the write (retransmissions on the way are recorded)."""
    connection = open_passive(dut, tb, PORT, sport=43203)
    dut.setsockopt(connection.sock, "TCP_USER_TIMEOUT", USER_TIMEOUT_MS)
    flow = connection.flow
    # The first transmission follows the write: R2 counted from the write is a lower
    # bound that a DUT whose frames reach the wire late does not fall under.
    written = time.monotonic()
    assert dut.send(connection.sock, b"x" * 100) == 100
    first = next_data(flow, within=ANSWER_S, why="data the tester will never ACK")
    reading = dut.start("recv", sock=connection.sock, size=100, flags=[])
    assert reading.wait(8.0), "the connection was not aborted within 8 s"
    ended = time.monotonic()
    result = reading.result(timeout=1.0)
    tb.observe("recv_result", str(result))
    assert result == Errno("ETIMEDOUT"), f"recv returned {result}"
    lasted = ended - written
    tb.observe("lasted_s", round(lasted, 1))
    assert lasted >= USER_TIMEOUT_MS / 1000 - 0.1, f"aborted after {lasted:.1f} s"
    # Whether the data was sent again first depends on the RTO, which may exceed R2 (a
    # slow path): recorded. Retransmission itself is judged in the case above.
    again = tb.expect_or_none(flow.template(seq=flow.relative_seq(first)), since=first.frame,
                              why="a retransmission of the data before the abort")
    tb.observe("retransmitted_before_the_abort", again is not None)


@slow
@requirement("RFC9293-3.8.3f", "RFC1122-4.2.3.5d")
def test_r2_is_at_least_100_seconds(dut: Dut, tb: Testbench) -> None:
    """Data never acknowledged does not end the connection within 100 s (default R2)."""
    connection, first = unacknowledged_data(dut, tb, 43204)
    pause = max(0.0, first.time_s + 100 - time.monotonic())
    # Wait on the DUT itself: a poll for an error that must not come within the window.
    events = dut.call("poll", sock=connection.sock, events=["POLLIN"],
                      timeout_ms=int(pause * 1000), timeout=pause + 10)
    tb.observe("poll_during_100_s", events)
    assert "POLLERR" not in events, f"the connection failed within 100 s: {events}"


@slow
@requirement("RFC9293-3.8.3h", "RFC1122-4.2.3.5e")
def test_syn_retransmissions_last_at_least_3_minutes(dut: Dut, tb: Testbench) -> None:
    """connect() to a host that never answers keeps trying for at least 3 minutes."""
    sock = dut.socket("tcp")
    connecting = dut.start("connect", sock=sock, addr=tb.ip, port=SILENT_PORT)
    with step(HANDSHAKE, "connect() sends a SYN"):
        syn = tb.expect(IP(src=dut.ip, dst=tb.ip) / TCP(dport=SILENT_PORT, flags="S"),
                        within=ANSWER_S, why="the DUT's SYN")
    gave_up = connecting.wait(200.0)
    lasted = time.monotonic() - syn.time_s
    tb.observe("gave_up", gave_up)
    if gave_up:
        tb.observe("connect_result", str(connecting.result(timeout=1.0)))
        tb.observe("lasted_s", round(lasted))
    assert not gave_up or lasted >= 180, f"connect() gave up after {lasted:.0f} s"
