"""Malformed and unusual segments (RFC 9293 3.1, 3.2; RFC 1122 4.2.2.5-4.2.2.7): bad
checksums, impossible data offsets, illegal option lengths, unknown and unaligned
options. What a broken segment must never do is deliver data or bring the host down;
after each one a well-formed segment shows the connection (or listener) still answers.
"""

import pytest
from scapy.layers.inet import TCP

from conformance.case import Errno, requirement, tcp_segment_choices
from conformance.targets.dut import Dut
from conformance.testbench.bench import ANSWER_S, Testbench, step
from conformance.testbench.scenarios import HANDSHAKE, enter_state, listen
from conformance.testbench.tcp import TcpFlow
from conformance.testbench.tcp_segments import (
    checksum_is_valid,
    option_problems,
    raw_segment,
    send_raw,
)
from conformance.testbench.tcp_sequence import MOD
from conformance.testbench.tcp_stream import next_data

pytestmark = tcp_segment_choices

PORT = 5050
MSS_1460 = b"\x02\x04\x05\xb4"
MSS_400 = b"\x02\x04\x01\x90"  # below the default MSS of 536 (RFC 1122 4.2.2.6)


def data_is_not_delivered(dut: Dut, sock: int) -> None:
    received = dut.recv(sock, 100, ["MSG_DONTWAIT"])
    assert received == Errno("EAGAIN"), f"the broken segment's data was delivered: {received!r}"


def good_data_is_delivered(dut: Dut, tb: Testbench, flow: TcpFlow, sock: int) -> None:
    flow.send("PA", b"good", why="the same data, well formed")
    flow.expect("A", ack=flow.snd_nxt, within=ANSWER_S, why="the good data acknowledged")
    assert dut.recv(sock, 100) == b"good"


@requirement("RFC9293-3.1d", "RFC1122-4.2.2.7b")
def test_bad_checksum_is_dropped(dut: Dut, tb: Testbench) -> None:
    """Data with a wrong checksum is neither acknowledged nor delivered."""
    connection = enter_state(dut, tb, "ESTABLISHED", PORT)
    flow = connection.flow
    packet = flow.segment("PA", b"good")
    packet[TCP].chksum = 0x1234
    tb.send(packet, "data with a wrong checksum")
    flow.expect_none("A", why="no ACK for a corrupt segment")
    data_is_not_delivered(dut, connection.sock)
    good_data_is_delivered(dut, tb, flow, connection.sock)


@requirement("RFC9293-3.1d", "RFC1122-4.2.2.7b")
def test_syn_with_bad_checksum_is_ignored(dut: Dut, tb: Testbench) -> None:
    """A SYN with a wrong checksum draws no SYN-ACK from a listener."""
    listen(dut, PORT)
    flow = TcpFlow(tb, tb.host, sport=43200, dport=PORT)
    packet = flow.segment("S", options=[("MSS", 1460)])
    packet[TCP].chksum = 0x1234
    tb.send(packet, "a SYN with a wrong checksum")
    flow.expect_none(why="no answer to a corrupt SYN")
    flow.connect(within=ANSWER_S)


@pytest.mark.parametrize("data_offset", [4, 15], ids=["below-5", "past-the-segment"])
@requirement("RFC9293-3.1k")
def test_impossible_data_offset_is_dropped(dut: Dut, tb: Testbench, data_offset: int) -> None:
    """A segment whose data offset is below 5, or points past its end, is dropped."""
    connection = enter_state(dut, tb, "ESTABLISHED", PORT)
    flow = connection.flow
    send_raw(flow, raw_segment(flow, "PA", b"good", data_offset=data_offset),
             f"data offset {data_offset} on a 24-octet segment")
    flow.expect_none("A", why="no ACK for a broken header")
    data_is_not_delivered(dut, connection.sock)
    good_data_is_delivered(dut, tb, flow, connection.sock)


ILLEGAL_OPTIONS = {
    "length-0": b"\x01\x01\xfd\x00",  # NOP NOP, then kind 253 with length 0
    "length-1": b"\x01\x01\xfd\x01",
    "past-the-header": b"\x01\x01\xfd\x08",  # claims 8 octets, 2 remain
}


@pytest.mark.parametrize("options", ILLEGAL_OPTIONS.values(), ids=ILLEGAL_OPTIONS.keys())
@requirement("RFC9293-3.1j", "RFC1122-4.2.2.5c")
def test_illegal_option_length_in_syn(dut: Dut, tb: Testbench, options: bytes) -> None:
    """A SYN with an illegal option length is dropped, reset or answered without acting
    on garbage: an answer acknowledges the SYN alone (the option octets are no data), a
    SYN-ACK is well formed and the connection it opens has nothing to read. The listener
    then still accepts a well-formed SYN."""
    listener = listen(dut, PORT)
    broken = TcpFlow(tb, tb.host, sport=43201, dport=PORT)
    send_raw(broken, raw_segment(broken, "S", option_bytes=MSS_1460 + options),
             "a SYN whose last option has an illegal length", advance=1)
    answer = tb.expect_or_none(broken.template(), why="a SYN-ACK, a reset, or nothing")
    # RFC 9293 3.1 (MUST-7): drop, reset or answer, as long as garbage is not acted on.
    tb.observe("answer_to_illegal_option", "none" if answer is None else str(answer[TCP].flags),
               choice=True)
    if answer is not None:
        assert answer[TCP].flags.A and answer[TCP].ack == (broken.isn + 1) % MOD, (
            f"the answer ({answer[TCP].flags}) acknowledges {answer[TCP].ack - broken.isn}"
            " octets, not the SYN alone: the options were taken for data")
    if answer is not None and answer[TCP].flags.S:
        assert checksum_is_valid(answer), "the SYN-ACK's checksum is wrong"
        assert not option_problems(answer), option_problems(answer)
        broken.dut_isn, broken.rcv_nxt = int(answer[TCP].seq), 1
        broken.send("A", why="ACK completing the handshake the broken SYN began")
    with step(HANDSHAKE, "a well-formed connection to the same listener"):
        TcpFlow(tb, tb.host, sport=43202, dport=PORT).connect(within=ANSWER_S)
    # Blocking accepts, each with a deadline: the DUT may not have taken the final ACK
    # yet (a stack on a thread of its own). The broken SYN's connection, if the DUT made
    # one, completed first and is ahead in the queue.
    accepted = []
    for _ in range(2):
        accepted.append(dut.start("accept", sock=listener).result(timeout=ANSWER_S))
        if not isinstance(accepted[-1], tuple) or accepted[-1][1][1] == 43202:
            break
    by_port = {a[1][1]: a[0] for a in accepted if isinstance(a, tuple)}
    assert 43202 in by_port, f"the well-formed connection was not accepted: {accepted}"
    if 43201 in by_port:
        received = dut.recv(by_port[43201], 100, ["MSG_DONTWAIT"])
        assert received == Errno("EAGAIN"), f"the broken SYN delivered {received!r}"


@pytest.mark.parametrize("options", ILLEGAL_OPTIONS.values(), ids=ILLEGAL_OPTIONS.keys())
@requirement("RFC9293-3.1j", "RFC1122-4.2.2.5c")
def test_illegal_option_length_on_data(dut: Dut, tb: Testbench, options: bytes) -> None:
    """Data with an illegal option length: dropped, reset, or taken with the options
    ignored; never delivered twice or garbled. The outcome is recorded."""
    connection = enter_state(dut, tb, "ESTABLISHED", PORT)
    flow = connection.flow
    send_raw(flow, raw_segment(flow, "PA", b"maybe", option_bytes=options),
             "data with an illegal option length")
    answer = tb.expect_or_none([flow.template("A"), flow.template("R"), flow.template("RA")],
                               why="an ACK, a reset, or nothing")
    received = dut.recv(connection.sock, 100, ["MSG_DONTWAIT"])
    outcome = ("reset" if answer is not None and answer[TCP].flags.R
               else "accepted" if received == b"maybe" else "dropped")
    tb.observe("illegal_option_on_data", outcome, choice=True)  # RFC 9293 3.1 (MUST-7)
    assert received in (b"maybe", Errno("EAGAIN"), Errno("ECONNRESET")), f"recv: {received!r}"
    if outcome == "accepted":
        flow.snd_nxt += len(b"maybe")
    if outcome != "reset":
        good_data_is_delivered(dut, tb, flow, connection.sock)


@requirement("RFC9293-3.1h", "RFC1122-4.2.2.5b", "RFC9293-3.1f")
def test_unknown_option_in_syn_is_skipped(dut: Dut, tb: Testbench) -> None:
    """A SYN with an unknown option (kind 253, length 6) before the MSS opens a
    connection as usual, and the MSS after it is still read. The MSS (400) is below the
    default of 536, so a DUT that stops reading at the unknown option shows it."""
    listener = listen(dut, PORT)
    flow = TcpFlow(tb, tb.host, sport=43203, dport=PORT)
    options = b"\xfd\x06\xaa\xbb\xcc\xdd" + MSS_400 + b"\x00"  # unknown, MSS 400, EOL
    send_raw(flow, raw_segment(flow, "S", option_bytes=options),
             "SYN: unknown option, MSS 400, EOL", advance=1)
    flow.expect_synack(within=ANSWER_S)
    flow.send("A", why="ACK completing the handshake")
    connection, _ = dut.accept(listener)
    dut.send(connection, b"x" * 1500)
    # PSH is the sender's to place (RFC 9293 3.9.1): any segment with data will do.
    first = next_data(flow, within=ANSWER_S, why="the DUT's data in segments of MSS 400")
    tb.observe("first_segment_payload", len(first[TCP].payload))
    assert len(first[TCP].payload) <= 400, "the MSS after the unknown option was ignored"


@requirement("RFC9293-3.1g", "RFC1122-4.2.2.5a")
def test_options_on_a_data_segment_are_accepted(dut: Dut, tb: Testbench) -> None:
    """Data carrying NOPs and an unknown option is delivered (options in any segment)."""
    connection = enter_state(dut, tb, "ESTABLISHED", PORT)
    flow = connection.flow
    send_raw(flow, raw_segment(flow, "PA", b"with options",
                               option_bytes=b"\x01\x01\xfd\x06\x01\x02\x03\x04"),
             "data with NOP NOP and an unknown option", advance=len(b"with options"))
    flow.expect("A", ack=flow.snd_nxt, within=ANSWER_S, why="the data acknowledged")
    assert dut.recv(connection.sock, 100) == b"with options"


@requirement("RFC9293-3.2a", "RFC9293-3.1f", "RFC9293-3.2b", "RFC9293-3.1a",
             "RFC1122-4.2.2.3a", "RFC1122-4.2.2.6a", "RFC1122-4.2.2.6e", "RFC1122-4.2.2.2e",
             "RFC1122-4.2.2.2d", "RFC1122-4.2.2.2g")
def test_unaligned_mss_option_is_honoured(dut: Dut, tb: Testbench) -> None:
    """An MSS option starting at an odd offset (after one NOP) is read: the DUT's data
    segments into a 65535-octet window carry at most 400 octets (below the default of
    536, so an MSS left unread shows), full-sized ones first, PSH on the last, and no MSS
    option."""
    listener = listen(dut, PORT)
    flow = TcpFlow(tb, tb.host, sport=43204, dport=PORT)
    send_raw(flow, raw_segment(flow, "S", option_bytes=b"\x01" + MSS_400 + b"\x00"),
             "SYN: NOP, MSS 400 (unaligned), EOL", advance=1)
    flow.expect_synack(within=ANSWER_S)
    flow.send("A", why="ACK completing the handshake")
    connection, _ = dut.accept(listener)
    dut.send(connection, b"y" * 1500)
    sizes: list[int] = []
    while sum(sizes) < 1500:
        # Observed as what is judged (sizes, PSH on the last): PSH on the others varies.
        segment = flow.expect(within=ANSWER_S, why="the DUT's data", observed=False)
        if len(segment[TCP].payload) == 0:
            continue
        sizes.append(len(segment[TCP].payload))
        assert not option_problems(segment), option_problems(segment)
        flow.send("A", why="ACK of the data")
    tb.observe("segment_sizes", sizes)
    tb.observe("psh_on_the_last", bool(segment[TCP].flags.P))
    assert max(sizes) <= 400, f"segments {sizes} exceed the unaligned MSS of 400"
    assert sizes[0] == 400, f"the first segment is not full-sized: {sizes}"
    assert segment[TCP].flags.P, "the last segment of the send carries no PSH"


@requirement("RFC1122-4.2.2.6d")
def test_default_mss_is_536(dut: Dut, tb: Testbench) -> None:
    """Without an MSS option in the SYN, the DUT sends at most 536 octets a segment."""
    listener = listen(dut, PORT)
    flow = TcpFlow(tb, tb.host, sport=43205, dport=PORT)
    flow.send("S", why="a SYN without any option")
    flow.expect_synack(within=ANSWER_S)
    flow.send("A", why="ACK completing the handshake")
    connection, _ = dut.accept(listener)
    dut.send(connection, b"z" * 1200)
    first = flow.expect(within=ANSWER_S, why="the DUT's first data segment")
    while len(first[TCP].payload) == 0:
        first = flow.expect(within=ANSWER_S, why="the DUT's first data segment")
    tb.observe("first_segment_payload", len(first[TCP].payload))
    assert len(first[TCP].payload) <= 536, f"{len(first[TCP].payload)} octets with no MSS"
