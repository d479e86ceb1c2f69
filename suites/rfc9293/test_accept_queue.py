"""A listener whose accept queue overflows (RFC 9293 3.10.7, RFC 1122 4.2.3.1).

The DUT listens with a small backlog and does not accept. The tester opens more
connections than the queue holds: every SYN first, then every final ACK with a little
data. What the DUT does beyond the queue is its own choice (recorded); what it has
acknowledged it must hand over.
"""

import itertools

from scapy.layers.inet import IP, TCP

from conformance.case import Errno, TcpFlow, requirement, tcp_segment_choices
from conformance.targets.dut import Dut
from conformance.testbench.bench import ANSWER_S, Received, Testbench
from conformance.testbench.scenarios import listen

pytestmark = tcp_segment_choices

PORT = 5002
BACKLOG = 2
CONNECTIONS = 6
# RFC 1122 4.2.3.2: an ACK may be delayed, by less than 0.5 s; the window for it
DELAYED_ACK_S = 0.5


def listen_without_accepting(dut: Dut, backlog: int) -> int:
    return listen(dut, PORT, backlog, reuseaddr=False)


def answer_to(flow: TcpFlow, *, within: float) -> Received | None:
    """The DUT's answer to everything the tester sent on this connection: an ACK of it
    all, or a reset; None after `within` seconds (SYN-ACK retransmissions are no answer)."""
    answers = [flow.template("A", ack=flow.snd_nxt), flow.template("R"), flow.template("RA")]
    return flow.tb.expect_or_none(answers, within=within, why="the DUT's answer")


def outcome_of(answer: Received | None) -> str:
    if answer is None:
        return "dropped"
    return "reset" if answer[TCP].flags.R else "acknowledged"


@requirement("RFC9293-3.10.7.4a", "RFC9293-3.10.7.2")
def test_overflowing_accept_queue_hands_over_every_acknowledged_connection(
    dut: Dut, tb: Testbench
) -> None:
    """Beyond a full accept queue, every connection whose data the DUT acknowledged is
    later accepted with that data intact; the overflow policy is recorded."""
    listener = listen_without_accepting(dut, BACKLOG)
    flows = [TcpFlow(tb, tb.host, sport=41000 + n, dport=PORT) for n in range(CONNECTIONS)]
    for flow in flows:
        flow.send("S", options=[("MSS", 1460)], why=f"SYN from port {flow.sport}")
    first_syn = next(frame for frame in tb.capture.frames if frame.sender == "tester")
    for flow in flows:
        # In any order: netstack answers SYNs on several goroutines.
        flow.expect_synack(within=ANSWER_S, since=first_syn)
    # Final ACKs in reverse order: the first SYNs are the ones a stack is most likely to
    # hold state for (Linux answers later ones with SYN cookies), and those overflow.
    acknowledged: dict[int, bytes] = {}
    outcomes = {}
    last_synack = tb.capture.frames[-1]
    for flow in reversed(flows):
        payload = f"hello from {flow.sport}".encode()
        flow.send("A", why="ACK completing the handshake")
        flow.send("PA", payload, why="data right after the handshake")
        outcome = outcome_of(answer_to(flow, within=DELAYED_ACK_S))
        outcomes[flow.sport] = outcome
        if outcome == "acknowledged":
            acknowledged[flow.sport] = payload
    # Dropping or resetting what does not fit is the implementation's choice (RFC 9293
    # 3.10.7.2 leaves the queue to it); only the handover of what was acknowledged is judged.
    tb.observe("outcomes", outcomes, choice=True)
    tb.observe("connections_acknowledged", len(acknowledged), choice=True)
    if "dropped" in outcomes.values():
        # One connection, the lowest port: of several, which one's SYN-ACK comes first
        # is the DUT's timing (netstack's goroutines), and the frame is recorded.
        dropped = min(port for port, outcome in outcomes.items() if outcome == "dropped")
        retransmission = tb.expect_or_none(
            IP(src=dut.ip) / TCP(sport=PORT, dport=dropped, flags="SA"),
            within=2.0, since=last_synack,
            why=f"a SYN-ACK retransmitted for port {dropped}, whose final ACK was dropped",
        )
        tb.observe("synack_retransmitted_after_drop", retransmission is not None, choice=True)
    extra = TcpFlow(tb, tb.host, sport=41000 + CONNECTIONS, dport=PORT)
    extra.send("S", options=[("MSS", 1460)], why="one more SYN while the queue is full")
    synack = extra.template("SA", ack=1)
    tb.observe("syn_while_full", "syn-ack" if tb.expect_or_none(
        [synack, extra.template("R"), extra.template("RA")],
        why="the DUT's answer to a SYN while the queue is full") else "dropped", choice=True)

    dut.set_nonblocking(listener)
    handed_over: dict[int, bytes] = {}
    for _ in range(CONNECTIONS + 1):
        accepted = dut.accept(listener)
        if accepted == Errno("EAGAIN"):
            break
        assert not isinstance(accepted, Errno), f"accept failed: {accepted}"
        connection, (_, port) = accepted
        received = dut.recv(connection, 100, ["MSG_DONTWAIT"])
        handed_over[port] = received if isinstance(received, bytes) else b""
    tb.observe("connections_accepted", sorted(handed_over), choice=True)
    assert acknowledged, "the DUT acknowledged no connection at all"
    for port, payload in acknowledged.items():
        assert port in handed_over, f"port {port}: acknowledged, but never accepted"
        assert handed_over[port] == payload, f"port {port}: data {handed_over[port]!r}"


@requirement("RFC1122-4.2.3.1")
def test_unanswered_synack_is_retransmitted_with_backoff(dut: Dut, tb: Testbench) -> None:
    """A SYN-ACK that gets no ACK is retransmitted with exponential backoff: the second
    interval is at least 1.5 times the first."""
    listen_without_accepting(dut, 8)
    # Resolved first, the tester's address holds up the first SYN-ACK no more than the
    # retransmissions: the intervals are the DUT's timer's alone.
    tb.pass_barrier(tb.echo_barrier(), "the DUT has resolved the tester's address")
    flow = TcpFlow(tb, tb.host, sport=41100, dport=PORT)
    flow.send("S", options=[("MSS", 1460)], why="a SYN the tester will never complete")
    times = [flow.expect_synack(within=ANSWER_S).time_s]
    for attempt, within in ((1, 4.0), (2, 8.0)):
        again = flow.expect("SA", within=within, why=f"SYN-ACK retransmission {attempt}")
        times.append(again.time_s)
    intervals = [round(later - earlier, 3) for earlier, later in itertools.pairwise(times)]
    tb.observe("synack_intervals_s", intervals)
    assert intervals[1] >= 1.5 * intervals[0], f"no backoff: intervals {intervals} s"
