"""TCP keep-alives (RFC 9293 3.8.4, RFC 1122 4.2.3.6).

The defaults are read through getsockopt (two hours of idleness cannot be waited for);
with keep-alives turned on and an idle time of one second, the probes are read off the
wire: their timing after the last segment, their sequence number and their length.
"""

from scapy.layers.inet import TCP

from conformance.case import requirement, tcp_segment_choices
from conformance.targets.dut import Dut
from conformance.testbench.bench import ANSWER_S, Received, Testbench
from conformance.testbench.scenarios import Connection, open_passive
from conformance.testbench.tcp_stream import payload

pytestmark = tcp_segment_choices

PORT = 5140
TWO_HOURS_S = 7200
IDLE_S = 1
INTERVAL_S = 1
TOLERANCE_S = 0.1  # a probe may come this much early by the capture clock; late is fine


@requirement("RFC9293-3.8.4c", "RFC1122-4.2.3.6b")
def test_keepalive_is_off_by_default(dut: Dut, tb: Testbench) -> None:
    """SO_KEEPALIVE is 0 on a new socket and on an accepted connection."""
    fresh = dut.getsockopt(dut.socket("tcp"), "SO_KEEPALIVE")
    connection = open_passive(dut, tb, PORT, sport=43400)
    accepted = dut.getsockopt(connection.sock, "SO_KEEPALIVE")
    tb.observe("so_keepalive", [fresh, accepted])
    assert fresh == 0 and accepted == 0, f"SO_KEEPALIVE {fresh} (new), {accepted} (accepted)"


@requirement("RFC9293-3.8.4f", "RFC1122-4.2.3.6c")
def test_keepalive_idle_time_defaults_to_at_least_two_hours(dut: Dut, tb: Testbench) -> None:
    """The default keep-alive idle time (TCP_KEEPIDLE) is at least 7200 s."""
    connection = open_passive(dut, tb, PORT, sport=43401)
    idle = dut.getsockopt(connection.sock, "TCP_KEEPIDLE")
    tb.observe("tcp_keepidle_s", idle)
    assert idle >= TWO_HOURS_S, f"TCP_KEEPIDLE defaults to {idle} s"


def keepalive_connection(dut: Dut, tb: Testbench, sport: int) -> tuple[Connection, Received]:
    """A connection with keep-alives on, 1 s idle time and 1 s interval; returns it and
    the last segment before it went idle (the tester's data, acknowledged by the DUT)."""
    connection = open_passive(dut, tb, PORT, sport=sport)
    for name, value in (("TCP_KEEPIDLE", IDLE_S), ("TCP_KEEPINTVL", INTERVAL_S),
                        ("TCP_KEEPCNT", 5), ("SO_KEEPALIVE", 1)):
        dut.setsockopt(connection.sock, name, value)
    flow = connection.flow
    flow.send("PA", b"last words", why="data, then the connection goes idle")
    last = flow.expect("A", ack=flow.snd_nxt, within=ANSWER_S, why="the DUT's ACK of it")
    assert dut.recv(connection.sock, 100, []) == b"last words"
    return connection, last


def probe(connection: Connection, after: str, within: float = IDLE_S + 2.0) -> Received:
    # An ACK (with at most one garbage octet): not a SYN-ACK the DUT sent again while the
    # handshake's ACK was on its way.
    return connection.flow.expect("A", within=within, why=f"a keep-alive probe, {after}")


@requirement("RFC9293-3.8.4b", "RFC9293-3.8.4d", "RFC9293-3.8.4e", "RFC9293-3.8.4a",
             "RFC1122-4.2.3.6a", "RFC1122-4.2.3.6c")
def test_keepalive_probes_an_idle_connection(dut: Dut, tb: Testbench) -> None:
    """With SO_KEEPALIVE and TCP_KEEPIDLE 1 s, the first probe comes no sooner than 1 s
    after the last segment, with sequence number SND.NXT - 1; an answered probe is
    followed by the next only after another idle period."""
    connection, last = keepalive_connection(dut, tb, 43402)
    flow = connection.flow
    first = probe(connection, "after 1 s of idleness")
    idle = round(first.time_s - last.time_s, 3)
    tb.observe("first_probe_after_s", idle)
    assert idle >= IDLE_S - TOLERANCE_S, f"a keep-alive after only {idle} s of idleness"
    snd_nxt = flow.relative_seq(last)
    tb.observe("probe_seq_relative_to_snd_nxt", flow.relative_seq(first) - snd_nxt)
    assert flow.relative_seq(first) == snd_nxt - 1, (
        f"probe sequence {flow.relative_seq(first)}, SND.NXT {snd_nxt}")
    flow.send("A", why="ACK answering the keep-alive")
    answered = tb.last_sent
    second = probe(connection, "after the answer and another idle period")
    gap = round(second.time_s - answered.time_s, 3)
    tb.observe("second_probe_after_answer_s", gap)
    assert gap >= INTERVAL_S - TOLERANCE_S, f"next probe {gap} s after an answered one"


@requirement("RFC9293-3.8.4h", "RFC1122-4.2.3.6e", "RFC9293-3.8.4i")
def test_keepalive_probe_carries_no_data(dut: Dut, tb: Testbench) -> None:
    """A keep-alive probe carries no data (one garbage octet is allowed but not advised)."""
    connection, _ = keepalive_connection(dut, tb, 43403)
    first = probe(connection, "after 1 s of idleness")
    tb.observe("probe_payload_octets", len(payload(first)))
    tb.observe("probe_flags", str(first[TCP].flags))
    assert len(payload(first)) == 0, f"the probe carries {len(payload(first))} octets"


@requirement("RFC9293-3.8.4g", "RFC1122-4.2.3.6d")
def test_unanswered_keepalive_is_not_a_dead_connection(dut: Dut, tb: Testbench) -> None:
    """An unanswered probe is followed by more probes (TCP_KEEPCNT 5), not by an abort:
    the connection still works after two probes went unanswered."""
    connection, _ = keepalive_connection(dut, tb, 43404)
    first = probe(connection, "after 1 s of idleness")
    second = probe(connection, "the first went unanswered", within=INTERVAL_S + 2.0)
    tb.observe("unanswered_probe_interval_s", round(second.time_s - first.time_s, 3))
    assert dut.getsockopt(connection.sock, "SO_ERROR") is None, "the connection has an error"
    flow = connection.flow
    flow.send("PA", b"alive", why="data at last")
    assert dut.recv(connection.sock, 100, []) == b"alive", "the connection did not survive"
