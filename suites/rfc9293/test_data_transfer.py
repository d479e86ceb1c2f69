"""Data transfer (RFC 9293 3.7.1, 3.8, 3.8.5, 3.9.1.2, 3.9.1.9, 3.9.2, 3.10.7.4): data and
ACKs both ways, out-of-order segments, segment sizes and the MSS option, PSH, urgent
data, and what the application sets on its segments (TTL, Differentiated Services).
"""

from scapy.layers.inet import IP, TCP, IPOption
from scapy.layers.l2 import Ether

from conformance.case import requirement, tcp_segment_choices
from conformance.targets.dut import Dut
from conformance.testbench.bench import ANSWER_S, Received, Testbench, step
from conformance.testbench.scenarios import HANDSHAKE, Connection, listen, open_active, open_passive
from conformance.testbench.tcp import TcpFlow
from conformance.testbench.tcp_stream import (
    data_of,
    dut_reads,
    dut_writes,
    next_data,
    payload,
    recv_waitall,
)
from conformance.testbench.templates import matches

pytestmark = tcp_segment_choices

PORT = 5160
DATA = bytes(range(256)) * 20  # 5120 octets


@requirement("RFC9293-3.10.7.4a", "RFC9293-3.9.1.2b", "RFC9293-3.9.1.2c")
def test_data_flows_both_ways(dut: Dut, tb: Testbench) -> None:
    """Data from the tester (3000 octets, in segments of the DUT's MSS that fit the window
    it advertises) is acknowledged and handed to the application; a write of the
    application is sent at once (not held for a push), acknowledged, and its last segment
    carries PSH."""
    connection = open_passive(dut, tb, PORT, sport=43600, mss=1000)
    flow = connection.flow
    tb.observe("dut_mss", flow.dut_mss)
    dut_reads(dut, connection, DATA[:3000], why="the tester's data")
    segments = dut_writes(dut, connection, DATA[:2500])
    assert data_of(segments, flow)[:2500] == DATA[:2500], "the DUT's data arrived damaged"
    # RFC 9293 3.9.1, RFC 1122 4.2.2.2: PSH before the last segment is the sender's choice
    # (and varies with timing): only the last one is judged.
    tb.observe("psh_on_the_last", bool(segments[-1][TCP].flags.P))
    assert segments[-1][TCP].flags.P, "the last segment of the write carries no PSH"


def two_segments_reversed(dut: Dut, tb: Testbench, sport: int) -> tuple[Connection, list[int]]:
    """The tester sends octets 101-200 before 1-100. Returns the connection and the
    relative ACK numbers of every DUT segment after the gap was filled, up to the one
    acknowledging 201 (or, when none does, up to a barrier)."""
    connection = open_passive(dut, tb, PORT, sport=sport)
    flow = connection.flow
    flow.send("PA", DATA[100:200], seq=101, why="octets 101-200 first: out of order")
    # RFC 5681 4.2: an out-of-order segment SHOULD draw an immediate duplicate ACK.
    duplicate = tb.expect_or_none(flow.template("A"),
                                  why="an ACK of the out-of-order segment, if any")
    tb.observe("ack_for_out_of_order", "none" if duplicate is None
               else flow.relative_ack(duplicate))
    flow.send("A", DATA[:100], why="octets 1-100: the gap filled")
    flow.snd_nxt = 201
    filled = tb.last_sent.number
    cumulative = tb.expect_or_none(flow.template("A", ack=201), within=ANSWER_S,
                                   why="the ACK of 201 after the gap was filled")
    end = cumulative.frame.number if cumulative is not None else len(tb.capture.frames)
    acks = [flow.relative_ack(segment) for segment in segments_of(flow, filled, end)]
    return connection, acks


def segments_of(flow: TcpFlow, after: int, through: int) -> list[Received]:
    """The DUT's segments of the flow among frames `after`+1 to `through` (numbers)."""
    found = []
    for frame in flow.tb.capture.frames[after:through]:
        packet = Ether(frame.data)
        if frame.sender == "dut" and matches(flow.template(), packet):
            found.append(Received(frame, packet))
    return found


@requirement("RFC9293-3.10.7.4f", "RFC9293-3.10.7.4g")
def test_out_of_order_data_is_queued_and_acknowledged_cumulatively(
    dut: Dut, tb: Testbench
) -> None:
    """A segment beyond a gap is kept: once the gap is filled, one cumulative ACK covers
    both segments and the application reads them in order."""
    connection, acks = two_segments_reversed(dut, tb, 43601)
    tb.observe("acks", acks)
    assert 201 in acks, f"the gap filled, the DUT acknowledged only {acks}"
    assert recv_waitall(dut, connection.sock, 200) == DATA[:200]


@requirement("RFC9293-3.10.7.4e")
def test_queued_segments_are_processed_before_the_ack(dut: Dut, tb: Testbench) -> None:
    """When filling a gap makes queued data in order, the DUT does not first acknowledge
    only the filling segment: no ACK of 101 before the ACK of 201."""
    connection, acks = two_segments_reversed(dut, tb, 43602)
    tb.observe("acks", acks)
    # A DUT that did not keep the out-of-order segment acknowledges 101 and nothing more:
    # that is the SHOULD of the case above, not this MUST.
    if 201 in acks:
        assert 101 not in acks, f"ACKs {acks}: 101 acknowledged before the queued data"
    assert recv_waitall(dut, connection.sock, 200) == DATA[:200]


def bulk_to_tester(dut: Dut, tb: Testbench, sport: int, mss: int | None) -> list[Received]:
    connection = open_passive(dut, tb, PORT, sport=sport, mss=mss)
    # The segments are observed as what the cases judge, their sizes.
    segments = dut_writes(dut, connection, DATA)
    assert data_of(segments, connection.flow)[: len(DATA)] == DATA, "the data arrived damaged"
    tb.observe("segment_sizes", [len(payload(segment)) for segment in segments])
    return segments


@requirement("RFC9293-3.7.1a", "RFC9293-3.7.1e")
def test_segments_never_exceed_the_announced_mss(dut: Dut, tb: Testbench) -> None:
    """With MSS 1000 announced by the tester, no segment of a 5120-octet write carries
    more than 1000 octets."""
    segments = bulk_to_tester(dut, tb, 43603, 1000)
    largest = max(len(payload(segment)) for segment in segments)
    assert largest <= 1000, f"a {largest}-octet segment after MSS 1000"


@requirement("RFC9293-3.9.1.2g")
def test_a_bulk_write_is_sent_in_full_segments(dut: Dut, tb: Testbench) -> None:
    """A 5120-octet write to a peer with MSS 1000 goes out in 1000-octet segments (all
    but the last)."""
    segments = bulk_to_tester(dut, tb, 43604, 1000)
    sizes = [len(payload(segment)) for segment in segments]
    assert all(size == 1000 for size in sizes[:-1]), f"segment sizes {sizes}"


@requirement("RFC9293-3.7.1d")
def test_send_mss_defaults_to_536_without_an_option(dut: Dut, tb: Testbench) -> None:
    """A peer whose SYN has no MSS option gets segments of at most 536 octets."""
    segments = bulk_to_tester(dut, tb, 43605, None)
    largest = max(len(payload(segment)) for segment in segments)
    assert largest <= 536, f"a {largest}-octet segment without an MSS option"


@requirement("RFC9293-3.7.1a", "RFC9293-3.7.1b", "RFC9293-3.7.1c", "RFC9293-3.7.1f")
def test_syn_carries_an_mss_option(dut: Dut, tb: Testbench) -> None:
    """The DUT's SYN carries an MSS option no larger than its 1500-octet link allows
    (1460); its SYN-ACK too."""
    connection = open_active(dut, tb, PORT)
    assert connection.syn is not None
    syn_mss = dict(connection.syn[TCP].options).get("MSS")
    passive = open_passive(dut, tb, PORT + 1, sport=43606)
    synack_mss = dict(passive.flow.received[0][TCP].options).get("MSS")
    tb.observe("syn_mss", syn_mss)
    tb.observe("synack_mss", synack_mss)
    assert syn_mss is not None and synack_mss is not None, "no MSS option"
    assert syn_mss <= 1460 and synack_mss <= 1460, f"MSS {syn_mss}/{synack_mss} > 1460"


@requirement("RFC9293-3.8.2c")
def test_ecn_setup_syn_is_answered_with_ece(dut: Dut, tb: Testbench) -> None:
    """A SYN asking for ECN (ECE and CWR set) gets a SYN-ACK with ECE (RFC 3168 6.1.1).
    The SYN carries a timestamp, as most clients' do: a listener answering with a SYN
    cookie (RFC 4987) can keep its ECN agreement only there."""
    listen(dut, PORT, 4, reuseaddr=False)
    flow = TcpFlow(tb, tb.host, sport=43607, dport=PORT)
    flow.send("SEC", options=[("MSS", 1460), ("Timestamp", (1, 0))],
              why="SYN with ECE and CWR: ECN setup")
    with step(HANDSHAKE, "a listener answers an ECN-setup SYN"):
        synack = flow.expect(ack=flow.snd_nxt, within=ANSWER_S,
                             why="the SYN-ACK, with or without ECE")
        tb.observe("synack_flags", str(synack[TCP].flags))
        assert synack[TCP].flags.S, f"answered with {synack[TCP].flags}, not a SYN-ACK"
    assert synack[TCP].flags.E, "the SYN-ACK does not agree to ECN"


@requirement("RFC9293-3.9.2b", "RFC1122-4.2.3.8a")
def test_segment_with_an_unknown_ip_option_is_processed(dut: Dut, tb: Testbench) -> None:
    """A data segment whose IP header carries an option the DUT does not know (type 30,
    4 octets) is acknowledged and delivered like any other."""
    connection = open_passive(dut, tb, PORT, sport=43608)
    flow = connection.flow
    segment = flow.segment("PA", b"with an IP option")
    segment[IP].options = [IPOption(b"\x1e\x04\x00\x00")]
    tb.send(segment, why="data in a datagram with an unknown IP option (type 30)")
    flow.snd_nxt += len(b"with an IP option")
    flow.expect("A", ack=flow.snd_nxt, within=ANSWER_S, why="the DUT's ACK of it")
    assert dut.recv(connection.sock, 100, []) == b"with an IP option"


@requirement("RFC9293-3.9.2a")
def test_ttl_of_segments_is_configurable(dut: Dut, tb: Testbench) -> None:
    """IP_TTL set on a connection is the TTL of its segments."""
    connection = open_passive(dut, tb, PORT, sport=43609)
    dut.setsockopt(connection.sock, "IP_TTL", 33)
    segment = dut_writes(dut, connection, b"ttl")[0]
    tb.observe("ttl", segment[IP].ttl)
    assert segment[IP].ttl == 33, f"TTL {segment[IP].ttl} after IP_TTL 33"


@requirement("RFC9293-3.9.1.9a", "RFC9293-3.9.1.9c")
def test_differentiated_services_field_is_set_by_the_application(
    dut: Dut, tb: Testbench
) -> None:
    """IP_TOS 0x20 (DSCP CS1) on a connection is the Differentiated Services field of its
    segments, unchanged."""
    connection = open_passive(dut, tb, PORT, sport=43610)
    dut.setsockopt(connection.sock, "IP_TOS", 0x20)
    segment = dut_writes(dut, connection, b"cs1")[0]
    tb.observe("tos", segment[IP].tos)
    assert segment[IP].tos == 0x20, f"TOS {segment[IP].tos:#x} after IP_TOS 0x20"


@requirement("RFC9293-3.9.1.9b")
def test_differentiated_services_field_can_change(dut: Dut, tb: Testbench) -> None:
    """IP_TOS changed during a connection (0x20, then 0x48) changes the field of later
    segments."""
    connection = open_passive(dut, tb, PORT, sport=43611)
    dut.setsockopt(connection.sock, "IP_TOS", 0x20)
    dut_writes(dut, connection, b"cs1")
    dut.setsockopt(connection.sock, "IP_TOS", 0x48)
    segment = dut_writes(dut, connection, b"af21")[0]
    tb.observe("tos_after_change", segment[IP].tos)
    assert segment[IP].tos == 0x48, f"TOS {segment[IP].tos:#x} after changing it to 0x48"


@requirement("RFC9293-3.8.5b", "RFC9293-3.8.5e")
def test_urgent_data_is_signalled_to_the_application(dut: Dut, tb: Testbench) -> None:
    """A segment with URG and the urgent pointer after its 3 octets is acknowledged, and
    the application is told of urgent data (POLLPRI)."""
    connection = open_passive(dut, tb, PORT, sport=43612)
    flow = connection.flow
    segment = flow.segment("PAU", b"abc")
    segment[TCP].urgptr = 3  # RFC 9293 MUST-62: the octet after the urgent data
    tb.send(segment, why="3 octets of urgent data (URG, urgent pointer 3)")
    flow.snd_nxt += 3
    flow.expect("A", ack=flow.snd_nxt, within=ANSWER_S, why="the DUT's ACK of it")
    events = dut.poll(connection.sock, ["POLLPRI"], timeout_ms=int(ANSWER_S * 1000))
    tb.observe("poll", events)
    tb.observe("recv", repr(dut.recv(connection.sock, 100, ["MSG_DONTWAIT"])))
    assert "POLLPRI" in events, f"poll for POLLPRI: {events}"


@requirement("RFC9293-3.8.5d", "RFC9293-3.8.5b")
def test_urgent_pointer_points_after_the_urgent_data(dut: Dut, tb: Testbench) -> None:
    """Urgent data sent by the application (MSG_OOB) goes out with URG and an urgent
    pointer to the octet after it."""
    connection = open_passive(dut, tb, PORT, sport=43613)
    assert dut.send(connection.sock, b"xyz", ["MSG_OOB"]) == 3
    segment = next_data(connection.flow, within=ANSWER_S, why="the urgent data")
    tcp = segment[TCP]
    tb.observe("flags", str(tcp.flags))
    tb.observe("urgent_pointer", tcp.urgptr)
    assert tcp.flags.U, "no URG flag on urgent data"
    assert tcp.urgptr == len(payload(segment)), (
        f"urgent pointer {tcp.urgptr} for {len(payload(segment))} octets of urgent data")
