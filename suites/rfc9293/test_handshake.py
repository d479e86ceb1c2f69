"""Opening connections (RFC 9293 3.4, 3.5, 3.10.7.2-3; RFC 1122 4.2.2.6-4.2.2.11).

Passive opens have the tester connect to a DUT listener; active opens have the DUT
connect to the tester, which plays the server (or another client, for simultaneous open).
Every segment the DUT sends in a handshake is checked for a correct checksum and
well-formed options.
"""

import itertools
import threading

import pytest
from scapy.layers.inet import IP, TCP

from conformance.case import Errno, Received, choices, requirement, tcp_segment_choices
from conformance.targets.dut import Dut
from conformance.testbench.bench import ANSWER_S, Testbench, step
from conformance.testbench.scenarios import (
    HANDSHAKE,
    expect_dut_syn,
    flow_for_syn,
    listen,
    open_active,
    open_passive,
)
from conformance.testbench.tcp import TcpFlow
from conformance.testbench.tcp_segments import checksum_is_valid, option_problems
from conformance.testbench.tcp_sequence import MOD

pytestmark = tcp_segment_choices

PORT = 5020
HALF = 1 << 31
SIMULTANEOUS_OPEN = "RFC9293-3.5a"
LISTENER_RESETS_ACK = "RFC9293-3.10.7.2a"
# RFC 6298 2.1: the initial RTO is 1 s (a SYN-ACK unanswered is sent again after it).
INITIAL_RTO_S = 1.0


def well_formed(received: Received) -> None:
    """RFC 9293 3.1: MUST-2 (checksum), MUST-68/69 and 3.2 MUST-65 (options)."""
    assert checksum_is_valid(received), f"bad checksum on frame {received.frame.number}"
    problems = option_problems(received)
    assert not problems, f"frame {received.frame.number}: {problems}"


def mss_of(received: Received) -> int | None:
    return next((int(value) for name, value in received[TCP].options if name == "MSS"), None)


@requirement("RFC9293-3.5c", "RFC9293-3.1c", "RFC9293-3.1e", "RFC9293-3.1i",
             "RFC1122-4.2.2.6a", "RFC1122-4.2.2.6b", "RFC1122-4.2.2.6c", "RFC1122-4.2.2.7a",
             "RFC9293-3.10.6a")
def test_passive_open(dut: Dut, tb: Testbench) -> None:
    """A SYN to a listener draws a SYN-ACK acknowledging ISN+1 with an MSS option; the
    final ACK completes the connection, which accept hands over with the peer's socket."""
    listener = listen(dut, PORT)
    accepting = dut.start("accept", sock=listener)
    flow = TcpFlow(tb, tb.host, sport=43001, dport=PORT)
    synack = flow.connect(within=ANSWER_S)
    well_formed(synack)
    tb.observe("synack_mss", mss_of(synack))
    assert mss_of(synack) is not None, "the SYN-ACK carries no MSS option"
    accepted = accepting.result(timeout=ANSWER_S)
    assert isinstance(accepted, tuple), f"accept: {accepted}"
    assert accepted[1] == (tb.ip, 43001), f"accept names the peer {accepted[1]}"
    assert dut.getpeername(accepted[0]) == (tb.ip, 43001)  # STATUS: the remote socket
    assert dut.getsockname(accepted[0]) == (dut.ip, PORT)


@requirement("RFC9293-3.5c", "RFC9293-3.1c", "RFC9293-3.1i", "RFC9293-3.9.1.1d",
             "RFC9293-3.9.1.1e", "RFC1122-4.2.2.6a", "RFC1122-4.2.2.7a")
def test_active_open(dut: Dut, tb: Testbench) -> None:
    """connect() sends a SYN with an MSS option from the host's own address, and
    acknowledges the SYN-ACK's ISN+1; later segments keep that source address."""
    connection = open_active(dut, tb, PORT)
    flow = connection.flow
    dut.send(connection.sock, b"hello")
    data = flow.expect("PA", seq=1, within=ANSWER_S, why="the DUT's data")
    assert bytes(data[TCP].payload) == b"hello"
    final_ack = flow.received[0]
    assert final_ack[TCP].ack == (flow.isn + 1) % MOD, "the ACK does not acknowledge ISN+1"
    for received in flow.received:
        well_formed(received)
        assert received.packet[IP].src == dut.ip  # MUST-44/45: one local address


@requirement("RFC9293-3.5c", "RFC1122-4.2.2.6a")
def test_active_open_syn_carries_mss(dut: Dut, tb: Testbench) -> None:
    """The DUT's SYN carries an MSS option no larger than its link allows (1460)."""
    sock = dut.socket("tcp")
    dut.start("connect", sock=sock, addr=tb.ip, port=PORT)
    syn = expect_dut_syn(tb, PORT)
    well_formed(syn)
    mss = mss_of(syn)
    tb.observe("syn_mss", mss)
    assert mss is not None, "the SYN carries no MSS option"
    assert mss <= 1460, f"MSS {mss} exceeds what a 1500-octet link carries"


@requirement("RFC9293-3.5a", "RFC1122-4.2.2.10")
def test_simultaneous_open(dut: Dut, tb: Testbench) -> None:
    """The DUT connects; the tester's SYN crosses the DUT's: the DUT answers a SYN-ACK
    (SYN-RECEIVED), and the tester's SYN-ACK establishes the connection, or, if the DUT
    acknowledges and drops it, the tester's ACK of the DUT's SYN-ACK does."""
    sock = dut.socket("tcp")
    connecting = dut.start("connect", sock=sock, addr=tb.ip, port=PORT)
    flow = flow_for_syn(tb, expect_dut_syn(tb, PORT))
    flow.send("S", options=[("MSS", 1460)], why="the tester's own SYN, crossing the DUT's")
    synack = flow.expect("SA", seq=0, ack=1, within=ANSWER_S,
                         why="SYN-ACK: the DUT's ISN again, acknowledging the crossing SYN")
    well_formed(synack)
    flow.send("SA", seq=0, options=[("MSS", 1460)], why="the tester's SYN-ACK")
    if connecting.wait(ANSWER_S):
        tb.observe("syn_ack_in_syn_received", "established")
    else:
        # RFC 9293 3.10.7.4, first check: the SYN-ACK's SEG.SEQ is the tester's ISN, below
        # RCV.NXT, so by the text it is unacceptable: acknowledged and dropped (Figure 7
        # shows it establishing). A peer following the text drops the DUT's SYN-ACK the
        # same way and sends the ACK that completes the open: so does the tester.
        acked = tb.expect_or_none(flow.template("A", seq=1, ack=1),
                                  why="the DUT's ACK of the unacceptable SYN-ACK")
        tb.observe("syn_ack_in_syn_received",
                   "acknowledged and dropped" if acked is not None else "dropped")
        flow.send("A", why="ACK of the DUT's SYN-ACK")
        assert connecting.wait(ANSWER_S), (
            "connect still pending after the tester's SYN-ACK and its ACK of the DUT's")
    assert connecting.result(timeout=ANSWER_S) is None, "connect did not succeed"
    dut.send(sock, b"simultaneous")
    data = flow.expect("PA", seq=1, ack=1, within=ANSWER_S, why="data on the new connection")
    assert bytes(data[TCP].payload) == b"simultaneous"


@requirement("RFC9293-3.5b", "RFC1122-4.2.2.11")
def test_rst_in_active_syn_received_refuses(dut: Dut, tb: Testbench) -> None:
    """An RST in a SYN-RECEIVED reached by simultaneous open fails the connect (RFC 9293
    3.10.7.4: "connection refused"; the errno is recorded) instead of listening."""
    sock = dut.socket("tcp")
    connecting = dut.start("connect", sock=sock, addr=tb.ip, port=PORT)
    with step(SIMULTANEOUS_OPEN, "a crossing SYN brings the DUT into SYN-RECEIVED"):
        flow = flow_for_syn(tb, expect_dut_syn(tb, PORT))
        flow.send("S", options=[("MSS", 1460)], why="a crossing SYN: SYN-RECEIVED")
        flow.expect("SA", seq=0, ack=1, within=ANSWER_S, why="the DUT's SYN-ACK")
    flow.send("R", why="an RST in the window")
    assert connecting.wait(ANSWER_S), "connect still pending after the RST"
    result = connecting.result(timeout=ANSWER_S)
    tb.observe("connect_after_rst", str(result))
    assert isinstance(result, Errno), f"connect: {result}, not an error"


@requirement("RFC9293-3.5b", "RFC1122-4.2.2.11")
@choices("frame.rst_ack")
def test_rst_in_passive_syn_received_returns_to_listen(dut: Dut, tb: Testbench) -> None:
    """An RST in a SYN-RECEIVED reached from LISTEN sends it back to LISTEN, silently:
    the embryonic connection is gone (no SYN-ACK is retransmitted after the initial RTO,
    and its final ACK meets the listener's RST), it is never accepted, the next one is."""
    listener = listen(dut, PORT)
    # Resolved first, the tester's address holds up no SYN-ACK: one that a slow ARP kept
    # back past the DUT's retransmission timer is retransmitted before the RST arrives.
    tb.pass_barrier(tb.echo_barrier(), "the DUT has resolved the tester's address")
    first = TcpFlow(tb, tb.host, sport=43002, dport=PORT)
    with step(HANDSHAKE, "a SYN brings the DUT into SYN-RECEIVED"):
        first.send("S", options=[("MSS", 1460)], why="a SYN: SYN-RECEIVED")
        first.expect_synack(within=ANSWER_S)
    first.send("R", why="an RST in the window: back to LISTEN")
    # A retransmission would come from the DUT's retransmission timer: wait it out.
    first.expect_none("SA", within=INITIAL_RTO_S * 1.5,
                      why="no SYN-ACK retransmitted for the reset connection")
    first.send("A", why="the reset connection's final ACK: only a listener hears it")
    # An ACK bit beside the RST (lwIP's RST,ACK) is the sender's (RFC 9293 3.5.2).
    tb.expect([first.template("R", seq=1), first.template("RA", seq=1)], within=ANSWER_S,
              why="<SEQ=SEG.ACK><CTL=RST> from the listener: no connection is left")
    second = TcpFlow(tb, tb.host, sport=43003, dport=PORT)
    with step(HANDSHAKE, "the next connection"):
        second.connect(within=ANSWER_S)
    accepted = dut.accept(listener)
    assert isinstance(accepted, tuple), f"accept: {accepted}"
    assert accepted[1] == (tb.ip, 43003), f"accepted {accepted[1]}, not the second"
    dut.set_nonblocking(listener)
    assert dut.accept(listener) == Errno("EAGAIN"), "the reset connection was accepted"


@requirement("RFC9293-3.5.3d", "RFC9293-3.6a", "RFC1122-4.2.2.13f")
def test_connect_refused_by_rst(dut: Dut, tb: Testbench) -> None:
    """An RST acknowledging the SYN (a closed port) makes connect fail with an error."""
    sock = dut.socket("tcp")
    connecting = dut.start("connect", sock=sock, addr=tb.ip, port=PORT)
    flow = flow_for_syn(tb, expect_dut_syn(tb, PORT))
    flow.send("RA", seq=0, ack=1, why="RST,ACK acknowledging the SYN: nothing listens")
    assert connecting.wait(ANSWER_S), "connect still pending after the RST"
    result = connecting.result(timeout=ANSWER_S)
    # RFC 9293 3.10.7.3 says "error: connection reset", 3.5.3 "connection refused": the
    # errno is the API's (Linux ECONNREFUSED, lwIP ECONNRESET).
    dut.last_result_is_a_choice()
    tb.observe("connect_after_rst", str(result), choice=True)
    assert isinstance(result, Errno), f"connect: {result}, not an error"


@requirement("RFC9293-3.5.3d")
def test_rst_not_acknowledging_the_syn_is_ignored(dut: Dut, tb: Testbench) -> None:
    """In SYN-SENT an RST whose ACK does not acknowledge the SYN is dropped, unanswered:
    connect goes on, and the real SYN-ACK opens the connection."""
    sock = dut.socket("tcp")
    connecting = dut.start("connect", sock=sock, addr=tb.ip, port=PORT)
    flow = flow_for_syn(tb, expect_dut_syn(tb, PORT))
    flow.send("RA", seq=0, ack=1000, why="RST,ACK whose ACK is not ISN+1")
    flow.expect_none("R", why="a reset is never answered with a reset")
    # The barrier's answer came after the RST was processed: connect must still wait.
    assert not connecting.done(), f"connect ended: {connecting.result(ANSWER_S)}"
    flow.send("SA", options=[("MSS", 1460)], why="the real SYN-ACK")
    assert connecting.result(timeout=ANSWER_S) is None, "connect did not succeed"


@requirement("RFC9293-3.10.7.3a", "RFC9293-3.5.2c")
@choices("frame.rst_ack")
def test_synack_with_bad_ack_draws_reset(dut: Dut, tb: Testbench) -> None:
    """In SYN-SENT a SYN-ACK acknowledging the wrong number draws <SEQ=SEG.ACK><CTL=RST>
    and the connect goes on."""
    sock = dut.socket("tcp")
    connecting = dut.start("connect", sock=sock, addr=tb.ip, port=PORT)
    syn = expect_dut_syn(tb, PORT)
    flow = flow_for_syn(tb, syn)
    flow.send("SA", ack=1000, options=[("MSS", 1460)], why="SYN-ACK acknowledging ISN+1000")
    # <SEQ=SEG.ACK><CTL=RST>; an ACK bit beside it (lwIP's RST,ACK) is the sender's.
    reset = tb.expect([flow.template("R"), flow.template("RA")], within=ANSWER_S,
                      why="a reset for the bad ACK")
    tb.observe("reset_flags", str(reset[TCP].flags), choice=True)
    assert reset[TCP].seq == (syn[TCP].seq + 1000) % MOD, "the RST's SEQ is not SEG.ACK"
    assert not connecting.done(), "connect ended on a bad SYN-ACK"
    flow.send("SA", options=[("MSS", 1460)], why="the real SYN-ACK")
    assert connecting.result(timeout=ANSWER_S) is None


ISN_SAMPLES = 3
# Pauses between the incarnations of one 4-tuple: unequal, so that a clock's steps grow
# with the time between them and a per-connection counter's equal steps show.
ISN_GAPS_S = (0.2, 1.6)
# How far apart the rates of a clock may seem (ISN steps over the time between the
# SYN-ACKs): the DUT picks the ISN a little before it sends the SYN-ACK, and how much
# before varies. A counter's rates differ by the ratio of the times between the
# incarnations (a gap plus a handshake): 8 on a fast DUT, 2.75 on one that answers
# 0.6 s late.
CLOCK_RATE_AGREEMENT = 1.6


def isn_of_passive_open(tb: Testbench, sport: int, incarnation: int = 0) -> Received:
    """The SYN-ACK of a connection the tester opens and resets at once. Each incarnation
    of a 4-tuple starts above the last one's sequence space on the tester's side too, so
    a SYN-ACK the DUT retransmitted for an earlier one is not taken for this one's."""
    flow = TcpFlow(tb, tb.host, sport=sport, dport=PORT, isn=1_000_000 + incarnation * 100_000)
    with step(HANDSHAKE, f"a connection from port {sport}"):
        synack = flow.connect(within=ANSWER_S)
    flow.send("R", why="reset: the next connection may reuse the 4-tuple")
    return synack


@requirement("RFC9293-3.4b", "RFC1122-4.2.2.9")
def test_isn_follows_a_clock(dut: Dut, tb: Testbench) -> None:
    """Successive incarnations of one 4-tuple get ISNs that grow with the time between
    them, as a clock does (RFC 9293 3.4.1: a clock, plus a keyed hash of the 4-tuple
    that is the same for each incarnation, RFC 6528): each step is positive, and the
    steps over unequal pauses keep one rate. The rate (its tick) is recorded: RFC 9293
    says "roughly every 4 microseconds", Linux ticks every 64 ns."""
    listen(dut, PORT)
    # Resolved first, the tester's address holds up no SYN-ACK more than the others.
    tb.pass_barrier(tb.echo_barrier(), "the DUT has resolved the tester's address")
    pause = threading.Event()  # never set: the pauses between incarnations
    synacks = [isn_of_passive_open(tb, 43010)]
    for incarnation, gap in enumerate(ISN_GAPS_S, start=1):
        pause.wait(gap)
        synacks.append(isn_of_passive_open(tb, 43010, incarnation))
    pairs = list(itertools.pairwise(synacks))
    steps = [int(later[TCP].seq - earlier[TCP].seq) % MOD for earlier, later in pairs]
    elapsed = [later.time_s - earlier.time_s for earlier, later in pairs]
    tb.observe("isn_steps_increase", [0 < step < HALF for step in steps])
    assert all(0 < step < HALF for step in steps), f"ISN steps {steps} do not all increase"
    rates = [step / seconds for step, seconds in zip(steps, elapsed, strict=True)]
    agreement = max(rates) / min(rates)
    # Two significant figures: the ISN steps themselves depend on when the SYNs came.
    tb.observe("isn_clock_tick_us", float(f"{1e6 / (sum(steps) / sum(elapsed)):.2g}"))
    tb.observe("isn_rates_agree", agreement <= CLOCK_RATE_AGREEMENT)
    assert agreement <= CLOCK_RATE_AGREEMENT, (
        f"ISN steps {steps} over {[round(e, 3) for e in elapsed]} s: rates "
        f"{[round(r) for r in rates]} per second differ {agreement:.1f}-fold, not a clock")


@requirement("RFC9293-3.4c")
def test_isns_of_different_connections_are_unrelated(dut: Dut, tb: Testbench) -> None:
    """Connections from neighbouring ports get ISNs far apart (RFC 6528 PRF): a pure
    global counter gives ISNs a few thousand apart."""
    listen(dut, PORT)
    isns = [int(isn_of_passive_open(tb, 43020 + n)[TCP].seq) for n in range(ISN_SAMPLES)]
    distances = [min((b - a) % MOD, (a - b) % MOD)
                 for i, a in enumerate(isns) for b in isns[i + 1:]]
    tb.observe("isn_min_distance_above_2_16", min(distances) > 1 << 16)
    assert min(distances) > 1 << 16, f"ISNs {isns} are close together: guessable"


@requirement("RFC9293-3.9.1.1b", "RFC1122-4.2.2.18b")
def test_listen_on_the_port_of_a_connecting_socket(dut: Dut, tb: Testbench) -> None:
    """A socket can listen on a local port while another, bound to it, is in SYN-SENT."""
    connecting_sock = dut.socket("tcp")
    dut.setsockopt(connecting_sock, "SO_REUSEADDR", 1)
    dut.bind(connecting_sock, dut.ip, PORT + 1)
    dut.start("connect", sock=connecting_sock, addr=tb.ip, port=PORT)
    with step(HANDSHAKE, "a socket bound to the port connects"):
        expect_dut_syn(tb, PORT)
    listener = dut.socket("tcp")
    dut.setsockopt(listener, "SO_REUSEADDR", 1)
    bound = dut.bind(listener, dut.ip, PORT + 1)
    listening = dut.listen(listener, 8) if bound is None else bound
    tb.observe("bind_and_listen", str(listening))
    assert listening is None, f"listening on the connecting socket's port: {listening}"
    flow = TcpFlow(tb, tb.host, sport=43030, dport=PORT + 1)
    flow.connect(within=ANSWER_S)
    assert isinstance(dut.accept(listener), tuple)


@requirement("RFC9293-3.9.1.1a", "RFC1122-4.2.2.18a")
def test_listen_does_not_disturb_a_connection(dut: Dut, tb: Testbench) -> None:
    """A new listener on the very local port of an established connection (its first
    listener closed, as when a server restarts) leaves the connection working both ways
    (RFC 9293 3.9.1.1 MUST-41)."""
    connection = open_passive(dut, tb, PORT + 2)
    flow = connection.flow
    assert connection.listener is not None
    dut.close(connection.listener)
    listener = dut.socket("tcp")
    dut.setsockopt(listener, "SO_REUSEADDR", 1)
    bound = dut.bind(listener, dut.ip, PORT + 2)
    listening = dut.listen(listener, 8) if bound is None else bound
    tb.observe("listen_on_the_connection_port", str(listening))
    if listening is not None:  # the API may refuse the port; then there is no listen
        pytest.skip(f"the DUT refuses to listen on a connection's port: {listening}")
    dut.send(connection.sock, b"still here")
    data = flow.expect("PA", seq=1, within=ANSWER_S, why="data after the listen")
    assert bytes(data[TCP].payload) == b"still here"
    flow.send("PA", b"and here", why="data to the DUT after the listen")
    flow.expect("A", ack=flow.snd_nxt, within=ANSWER_S, why="the data acknowledged")
    assert dut.recv(connection.sock, 100) == b"and here"
