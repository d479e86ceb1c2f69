"""Fragmentation and reassembly on a host (RFC 1122 3.2.1.4, 3.2.1.5, 3.3.2, 3.3.3).

The tester fragments datagrams for the DUT's socket (conformance/testbench/fragments.py)
and reassembles what the DUT fragments itself.
"""

import time

from scapy.layers.inet import ICMP, IP, UDP, IPerror
from scapy.packet import Packet

from conformance.case import Errno, Unsupported, requirement, slow
from conformance.lab.addressing import LINK_MTU
from conformance.targets.dut import Dut
from conformance.testbench.bench import ANSWER_S, ExpectationFailed, StepFailed, Testbench, step
from conformance.testbench.fragments import fragments, reassemble, split
from conformance.testbench.scenarios import bound_socket
from conformance.testbench.udp import (
    DELIVER,
    datagram,
    delivered,
    only_the_good_one_arrives,
    udp_checksum,
)

DISCARD = 9
TIME_EXCEEDED = 11
# RFC 1122 3.3.2 recommends a reassembly timeout of 60 to 120 s and leaves it to the
# implementation (Linux: 30 s, ipfrag_time). Judged: not sooner than 15 s, which leaves a
# datagram whose fragments are merely slow time to be reassembled (RFC 1122 3.2.1.4), and
# not later than 130 s, past the recommended range.
REASSEMBLY_TIMEOUT_AT_LEAST_S = 15
REASSEMBLY_TIMEOUT_AT_MOST_S = 130


def big_datagram(tb: Testbench, size: int, ident: int, seed: int = 0) -> Packet:
    data = bytes((seed + i) % 251 for i in range(size))
    return datagram(tb, data, ip={"id": ident})


def send_all(tb: Testbench, pieces: list[Packet], what: str) -> None:
    for number, piece in enumerate(pieces, 1):
        tb.send(piece, why=f"{what}: fragment {number} of {len(pieces)}, offset "
                           f"{piece.frag * 8}, MF={int(piece.flags.MF)}")


def payload_of(packet: Packet) -> bytes:
    return bytes(packet[UDP].payload)


@requirement("RFC1122-3.2.1.4", "RFC1122-3.3.2a")
def test_in_order_fragments_are_reassembled(dut: Dut, tb: Testbench) -> None:
    """A 1000-octet datagram in three in-order fragments is delivered whole."""
    sock = bound_socket(dut)
    whole = big_datagram(tb, 1000, ident=1)
    send_all(tb, split(whole, 400), "in order")
    assert delivered(dut, sock) == payload_of(whole)


@requirement("RFC1122-3.2.1.4")
def test_out_of_order_fragments_are_reassembled(dut: Dut, tb: Testbench) -> None:
    """The same datagram with its fragments in reverse order is delivered whole."""
    sock = bound_socket(dut)
    whole = big_datagram(tb, 1000, ident=2)
    send_all(tb, list(reversed(split(whole, 400))), "reverse order")
    assert delivered(dut, sock) == payload_of(whole)


@requirement("RFC1122-3.2.1.4")
def test_interleaved_datagrams_are_told_apart(dut: Dut, tb: Testbench) -> None:
    """Fragments of two datagrams, interleaved, make two whole datagrams by identification."""
    sock = bound_socket(dut)
    first, second = big_datagram(tb, 800, ident=3), big_datagram(tb, 800, ident=4, seed=100)
    a, b = split(first, 400), split(second, 400)
    send_all(tb, [a[0], b[0], a[1], b[1], a[2], b[2]], "interleaved")
    assert {delivered(dut, sock), delivered(dut, sock)} == {payload_of(first), payload_of(second)}


@requirement("RFC1122-3.3.2b")
def test_datagram_larger_than_the_link_mtu_is_reassembled(dut: Dut, tb: Testbench) -> None:
    """A 6000-octet datagram in link-sized fragments is delivered whole, before a plain
    datagram sent after it."""
    sock = bound_socket(dut)
    whole = big_datagram(tb, 6000, ident=5)
    send_all(tb, split(whole, 1480), "6000 octets")
    tb.send(datagram(tb, b"good"), why="a plain datagram after them")
    with step(DELIVER, "a datagram is delivered after the fragments"):
        first = delivered(dut, sock)
    assert first == payload_of(whole), f"the socket handed over {first[:16]!r} first: the " \
                                       "6000-octet datagram was not reassembled"


@requirement("RFC1122-3.2.1.4")
def test_incomplete_datagram_is_not_delivered(dut: Dut, tb: Testbench) -> None:
    """A datagram missing its middle fragment is never delivered."""
    sock = bound_socket(dut)
    whole = big_datagram(tb, 1000, ident=6)
    # No UDP checksum (zero, RFC 768): only reassembly, not the checksum over data that
    # never came, keeps the incomplete datagram from the socket.
    whole[UDP].chksum = 0
    pieces = split(whole, 400)
    send_all(tb, [pieces[0], pieces[2]], "middle fragment missing")
    only_the_good_one_arrives(dut, tb, sock)


@requirement("RFC1122-3.3.2e")
def test_overlapping_fragments(dut: Dut, tb: Testbench) -> None:
    """What the DUT makes of consistent overlapping fragments: observed. Whatever it does,
    it delivers no data the fragments never carried, and the plain datagram after them."""
    sock = bound_socket(dut)
    whole = big_datagram(tb, 1000, ident=7)
    send_all(tb, fragments(whole, [(0, 512), (256, 1008)]), "overlapping by 256 octets")
    tb.send(datagram(tb, b"good"), why="a plain datagram after them")
    with step(DELIVER, "a datagram is delivered after the overlapping fragments"):
        first = delivered(dut, sock)
    outcome = {payload_of(whole): "reassembled", b"good": "discarded"}.get(first, "corrupted")
    tb.observe("overlapping_fragments", outcome, choice=True)  # RFC 1122 3.3.2 leaves it open
    with step("RFC1122-3.2.1.4", "what is reassembled is what the fragments carried"):
        assert outcome != "corrupted", f"delivered {len(first)} octets the fragments never " \
                                       "carried"
    if outcome == "reassembled":
        with step(DELIVER, "the plain datagram is delivered after the reassembled one"):
            assert delivered(dut, sock) == b"good"


@slow
@requirement("RFC1122-3.3.2c", "RFC1122-3.3.2d")
def test_reassembly_timeout_sends_time_exceeded(dut: Dut, tb: Testbench) -> None:
    """A datagram whose first fragment came alone is dropped after the reassembly timeout,
    with ICMP Time Exceeded, code 1, to its source: not before 15 s, not after 130 s."""
    sock = bound_socket(dut)
    pieces = split(big_datagram(tb, 1000, ident=8), 400)
    tb.send(pieces[0], why="the first fragment, alone")
    started = time.monotonic()
    time_exceeded = IP(dst=tb.ip) / ICMP(type=TIME_EXCEEDED, code=1) / IPerror(id=8)
    # The reassembly timer's doing: a quiet window first, then a barrier.
    try:
        tb.expect_none(time_exceeded, within=REASSEMBLY_TIMEOUT_AT_LEAST_S,
                       why=f"no reassembly timeout before {REASSEMBLY_TIMEOUT_AT_LEAST_S} s")
    except StepFailed:
        raise  # the DUT answered no barrier: nothing about its timer can be judged
    except ExpectationFailed as early:
        raise AssertionError(
            f"reassembly gave up {time.monotonic() - started:.1f} s after the first fragment, "
            f"sooner than {REASSEMBLY_TIMEOUT_AT_LEAST_S} s: {early}") from early
    waited = time.monotonic() - started
    try:
        error = tb.expect(time_exceeded, within=REASSEMBLY_TIMEOUT_AT_MOST_S - waited,
                          why="fragment reassembly time exceeded")
    except ExpectationFailed as missing:
        raise AssertionError(
            f"no Time Exceeded within {REASSEMBLY_TIMEOUT_AT_MOST_S} s of the first fragment: "
            f"missing, or late: {missing}") from missing
    tb.observe("reassembly_timeout_s", round(error.time_s - started))
    send_all(tb, pieces[1:], "the rest, after the timeout")
    only_the_good_one_arrives(dut, tb, sock)


# ---- fragments the DUT sends ------------------------------------------------------------


def fragments_sent(tb: Testbench) -> list[Packet]:
    """The fragments of one datagram the DUT sends to the tester, until the last."""
    first = tb.expect(IP(dst=tb.ip, proto=17, frag=0), within=ANSWER_S, why="the first fragment")
    pieces = [first.packet]
    while pieces[-1][IP].flags.MF:
        pieces.append(tb.expect(IP(dst=tb.ip, proto=17, id=first[IP].id), within=ANSWER_S,
                                why="the next fragment").packet)
    return pieces


def datagrams_without_df(dut: Dut, tb: Testbench, sock: int) -> bool:
    """Ask for datagrams without DF (IP_PMTUDISC_DONT); whether the option exists. A stack
    without it has no path MTU discovery (lwIP 2.1.3) and sends without DF anyway, so the
    case's checks of fragmentation still apply to it."""
    try:
        dut.setsockopt(sock, "IP_MTU_DISCOVER", "IP_PMTUDISC_DONT")
    except Unsupported:
        tb.observe("ip_mtu_discover", "unsupported")
        return False
    return True


@requirement("RFC1122-3.3.3a", "RFC1122-3.3.3b", "API-IP-a")
def test_datagram_above_the_mtu_is_fragmented_on_send(dut: Dut, tb: Testbench) -> None:
    """A 3000-octet datagram without DF leaves in fragments that fit the link and reassemble,
    or is refused (EMSGSIZE) and nothing of it leaves, while a fitting one goes without DF."""
    sock = dut.socket("udp")
    dont_requested = datagrams_without_df(dut, tb, sock)
    data = bytes(i % 256 for i in range(3000))
    result = dut.sendto(sock, data, tb.ip, DISCARD)
    if result == Errno("EMSGSIZE"):
        # RFC 1122 3.3.3a: local fragmentation is a MAY, so refusing the send is allowed.
        tb.observe("oversize_send", "refused", choice=True)
        tb.expect_none(IP(dst=tb.ip, proto=17), why="nothing of a refused datagram is sent")
        # API-IP-a: IP_PMTUDISC_DONT still means DF clear on what is sent.
        assert dut.sendto(sock, data[:1000], tb.ip, DISCARD) == 1000
        fitting = tb.expect(IP(dst=tb.ip) / UDP(dport=DISCARD), within=ANSWER_S,
                            why="a 1000-octet datagram")
        assert not (dont_requested and fitting[IP].flags.DF), (
            "IP_PMTUDISC_DONT, yet the datagram carries DF")
        return
    assert result == len(data), f"sendto: {result}"
    pieces = fragments_sent(tb)
    tb.observe("oversize_send", "fragmented", choice=True)
    tb.observe("fragment_sizes", [piece[IP].len for piece in pieces])
    assert all(piece[IP].len <= LINK_MTU for piece in pieces), "a fragment exceeds the MTU"
    assert not any(piece[IP].flags.DF for piece in pieces), "fragments carry DF"
    whole = reassemble(pieces)
    assert payload_of(whole) == data, "the fragments do not reassemble to the data"
    assert whole[UDP].chksum == udp_checksum(whole), "the reassembled checksum is wrong"


@requirement("RFC1122-3.2.1.5b")
def test_fragmented_datagrams_carry_distinct_identifications(dut: Dut, tb: Testbench) -> None:
    """Two fragmented datagrams to the same destination carry different identifications."""
    sock = dut.socket("udp")
    datagrams_without_df(dut, tb, sock)
    identifications = []
    for _ in range(2):
        if dut.sendto(sock, b"z" * 3000, tb.ip, DISCARD) == Errno("EMSGSIZE"):
            dut.sendto(sock, b"z" * 1000, tb.ip, DISCARD)  # no local fragmentation
            identifications.append(tb.expect(IP(dst=tb.ip, proto=17), within=ANSWER_S,
                                              why="the datagram")[IP].id)
            continue
        identifications.append(fragments_sent(tb)[0][IP].id)
    assert identifications[0] != identifications[1], f"both carry {identifications[0]}"
