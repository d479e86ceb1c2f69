"""ICMP on a host (RFC 1122 3.2.2): echo, queries, errors the DUT sends and must not send,
and errors it receives.

Where the DUT must not send an error or answer, nothing may come before the DUT answers a
barrier (an echo request, conformance/testbench/bench.py); a control datagram then shows
that the DUT does send that kind of error (otherwise: not applicable).
"""

import pytest
from scapy.layers.inet import ICMP, IP, UDP, IPOption, IPOption_RR
from scapy.packet import Packet, Raw

from conformance.case import requirement
from conformance.targets.dut import Dut
from conformance.testbench.bench import ANSWER_S, ECHO_REQUIREMENT, Testbench, step
from conformance.testbench.fragments import fragments
from conformance.testbench.scenarios import connected_socket
from conformance.testbench.udp import (
    CLOSED,
    SEND,
    TESTER_PORT,
    datagram,
    expect_from_a_live_dut,
    no_icmp_error,
    queued_error,
)

ECHO_REQUEST, ECHO_REPLY = 8, 0
TIMESTAMP_REQUEST, TIMESTAMP_REPLY = 13, 14
INFORMATION_REQUEST = 15
ADDRESS_MASK_REQUEST = 17
PARAMETER_PROBLEM = 12
TIME_EXCEEDED = 11
UNKNOWN_TYPE = 99
BROADCAST = "192.0.2.255"
ALL_HOSTS = "224.0.0.1"
ALL_HOSTS_MAC = "01:00:5e:00:00:01"
LINK_BROADCAST = "ff:ff:ff:ff:ff:ff"
DISCARD = 9
ANSWER_MS = int(ANSWER_S * 1000)
MILLISECONDS_PER_DAY = 86_400_000
# An option whose length (40) runs past the end of the header: it draws Parameter Problem.
MALFORMED_OPTION = IPOption(b"\x1e\x28\x00\x00")


def echo_request(tb: Testbench, data: bytes, *, destination: str | None = None,
                 **ip_fields: object) -> Packet:
    return (IP(src=tb.ip, dst=destination or tb.dut_host.ip, **ip_fields)
            / ICMP(type=ECHO_REQUEST, id=0x4242, seq=7) / Raw(data))


def no_answer_to(tb: Testbench, query: Packet, why: str) -> None:
    """`query` draws no ICMP at all before the DUT answers a barrier echo request."""
    tb.send(query, why=why)
    tb.expect_none(IP() / ICMP(), why="no answer")


# ---- echo ---------------------------------------------------------------------------------


@requirement("RFC1122-3.2.2.6a", "RFC1122-3.2.2.6b", "RFC1122-3.2.2.6d")
def test_echo_reply_returns_the_data_unchanged(dut: Dut, tb: Testbench) -> None:
    """An Echo Request is answered from the address it was sent to, with identical data."""
    data = bytes(range(256)) * 4
    tb.send(echo_request(tb, data), why="echo request, 1024 octets of data")
    reply = tb.expect(IP(dst=tb.ip) / ICMP(type=ECHO_REPLY), within=ANSWER_S, why="echo reply")
    assert reply[IP].src == dut.ip, f"the reply comes from {reply[IP].src}"
    assert (reply[ICMP].id, reply[ICMP].seq) == (0x4242, 7), "identifier or sequence changed"
    assert bytes(reply[ICMP].payload) == data, "the reply's data differs from the request's"


@requirement("RFC1122-3.2.2.6c")
def test_echo_request_to_broadcast(dut: Dut, tb: Testbench) -> None:
    """An Echo Request to the subnet's broadcast address may be ignored: observed."""
    tb.send(echo_request(tb, b"anyone?", destination=BROADCAST), why="echo request to broadcast",
            link_destination=LINK_BROADCAST)
    # Ended by a unicast echo request the DUT must answer: a DUT that hears nothing fails.
    reply = tb.expect_or_none(IP(dst=tb.ip) / ICMP(type=ECHO_REPLY),
                              why="an echo reply, if the DUT answers broadcasts")
    # RFC 1122 3.2.2.6: a host MAY silently discard an echo request to a broadcast address.
    tb.observe("echo_to_broadcast", "ignored" if reply is None else "answered", choice=True)
    if reply is not None:
        tb.observe("reply_source", reply[IP].src)


@requirement("RFC1122-3.2.2.6e")
def test_echo_reply_returns_record_route_updated(dut: Dut, tb: Testbench) -> None:
    """A Record Route option in an Echo Request comes back in the reply with the DUT added."""
    record_route = IPOption_RR(pointer=4, routers=["0.0.0.0", "0.0.0.0"])
    tb.send(echo_request(tb, b"where have you been", options=[record_route]),
            why="echo request with room for two addresses in a Record Route option")
    with step(ECHO_REQUIREMENT, "the echo request with a Record Route option is answered"):
        reply = tb.expect(IP(dst=tb.ip) / ICMP(type=ECHO_REPLY), within=ANSWER_S,
                          why="echo reply")
    routes = [option for option in reply[IP].options if option.option == 7]
    tb.observe("reply_options", [option.summary() for option in reply[IP].options])
    assert routes, "the reply carries no Record Route option"
    assert dut.ip in routes[0].routers, f"the DUT did not record itself: {routes[0].routers}"


# ---- queries a host should not answer, and unknown types -----------------------------------


@requirement("RFC1122-3.2.2a")
def test_unknown_icmp_type_is_silently_discarded(dut: Dut, tb: Testbench) -> None:
    """An ICMP message of an unknown type draws nothing."""
    no_answer_to(tb, IP(src=tb.ip, dst=dut.ip) / ICMP(type=UNKNOWN_TYPE) / Raw(b"\0" * 8),
                 why=f"ICMP type {UNKNOWN_TYPE}")
    tb.send(echo_request(tb, b"still there?"), why="echo request after it")
    tb.expect(IP(dst=tb.ip) / ICMP(type=ECHO_REPLY), within=ANSWER_S,
              why="the DUT still answers")


@requirement("RFC1122-3.2.2.7")
def test_information_request_is_not_answered(dut: Dut, tb: Testbench) -> None:
    """An Information Request (obsolete) gets no reply."""
    no_answer_to(tb, IP(src=tb.ip, dst=dut.ip) / ICMP(type=INFORMATION_REQUEST, id=1, seq=1),
                 why="information request")


@requirement("RFC1122-3.2.2.9")
def test_address_mask_request_is_not_answered(dut: Dut, tb: Testbench) -> None:
    """A host that is no authority for address masks sends no Address Mask Reply."""
    no_answer_to(tb, IP(src=tb.ip, dst=dut.ip) / ICMP(type=ADDRESS_MASK_REQUEST, id=1, seq=1)
                 / Raw(b"\0" * 4), why="address mask request")


@requirement("RFC1122-3.2.2.8a", "RFC1122-3.2.2.8b")
def test_timestamp_reply_if_implemented(dut: Dut, tb: Testbench) -> None:
    """Timestamp Requests may be answered; an answer echoes the originate time and gives
    times in milliseconds since midnight UT (or flagged non-standard)."""
    originate = 12_345_678
    tb.send(IP(src=tb.ip, dst=dut.ip) / ICMP(type=TIMESTAMP_REQUEST, id=9, seq=1,
                                              ts_ori=originate, ts_rx=0, ts_tx=0),
            why="timestamp request")
    reply = tb.expect_or_none(IP(dst=tb.ip) / ICMP(type=TIMESTAMP_REPLY),
                              why="a timestamp reply, if implemented")
    # RFC 1122 3.2.2.8: a host MAY implement Timestamp.
    tb.observe("timestamp", "ignored" if reply is None else "answered", choice=True)
    if reply is None:
        pytest.skip("the DUT answers echo requests but not Timestamp (allowed)")
    icmp = reply[ICMP]
    assert (icmp.id, icmp.seq, icmp.ts_ori) == (9, 1, originate)
    for name in ("ts_rx", "ts_tx"):
        value = icmp.getfieldval(name)
        assert value & 0x8000_0000 or value < MILLISECONDS_PER_DAY, f"{name} = {value}"


# ---- errors the DUT sends -----------------------------------------------------------------


@requirement("RFC1122-4.1.3.1")
def test_closed_port_draws_port_unreachable(dut: Dut, tb: Testbench) -> None:
    """A datagram to a port nobody listens on draws ICMP Port Unreachable."""
    tb.send(datagram(tb, b"anyone?", dport=CLOSED), why="a datagram to a closed port")
    expect_from_a_live_dut(tb, IP(src=dut.ip, dst=tb.ip) / ICMP(type=3, code=3),
                           "port unreachable")


@requirement("RFC1122-3.2.2b")
def test_icmp_error_quotes_the_header_and_eight_octets(dut: Dut, tb: Testbench) -> None:
    """An ICMP error quotes the offending IP header and at least 8 octets after it."""
    offending = datagram(tb, b"quote me, at least the first eight octets", dport=CLOSED)
    tb.send(offending, why="a datagram to a closed port")
    error = tb.expect_or_none(IP(dst=tb.ip) / ICMP(type=3), why="an ICMP error")
    if error is None:
        pytest.skip("the DUT answers echo requests but sends no port unreachable: no error "
                    "to look at")
    quote = bytes(error[ICMP].payload)
    sent = bytes(IP(bytes(offending)))
    tb.observe("quoted_octets", len(quote))
    assert len(quote) >= 28, f"the quote holds {len(quote)} octets, not header + 8"
    # The DUT may have decremented nothing; the quote is the datagram as received.
    assert quote[:8] == sent[:8] and quote[12:28] == sent[12:28], "the quote differs"


@requirement("RFC1122-3.2.2.1b")
def test_unknown_protocol_draws_protocol_unreachable(dut: Dut, tb: Testbench) -> None:
    """A datagram for a transport protocol the DUT lacks draws protocol unreachable."""
    tb.send(IP(src=tb.ip, dst=dut.ip, proto=253) / Raw(b"experimental"),
            why="a datagram of protocol 253 (experimental)")
    expect_from_a_live_dut(tb, IP(dst=tb.ip) / ICMP(type=3, code=2), "protocol unreachable")


@requirement("RFC1122-3.2.2h")
def test_burst_of_errors_is_rate_limited(dut: Dut, tb: Testbench) -> None:
    """How many port unreachables 20 datagrams to closed ports in a row draw: observed.
    Each is followed by an echo request the DUT answers before the next comes, so that a
    DUT whose input queue is short (lwIP's tcpip mailbox under load) counts what its rate
    limit allows, not what its queue dropped; echo replies are not errors (RFC 1122
    3.2.2: the limit is on error messages), so a limit sees all 20 within milliseconds."""
    for number in range(20):
        tb.send(datagram(tb, b"burst", dport=CLOSED, sport=TESTER_PORT + 100 + number),
                why=f"datagram {number + 1} of 20 to a closed port")
        tb.pass_barrier(tb.echo_barrier(), f"datagram {number + 1} is handled")
    # Each count ends on a barrier the DUT must answer: what came before it is all it sent.
    answered = 0
    while tb.expect_or_none(IP(dst=tb.ip) / ICMP(type=3, code=3),
                            why="port unreachable") is not None:
        answered += 1
    tb.observe("port_unreachables_for_20_datagrams", answered, choice=True)  # RFC 1122 3.2.2


# ---- errors the DUT must not send ----------------------------------------------------------


def parameter_problem_control_or_skip(tb: Testbench) -> None:
    """Control: a UDP datagram with the malformed option draws a Parameter Problem before
    the DUT answers a barrier; if it answers the barrier only, its silence showed nothing."""
    tb.send(datagram(tb, b"control", dport=CLOSED, ip={"options": [MALFORMED_OPTION]}),
            why="control: a datagram with a malformed option")
    if tb.expect_or_none(IP(dst=tb.ip) / ICMP(type=PARAMETER_PROBLEM),
                         why="parameter problem for the control") is None:
        pytest.skip("the DUT answers echo requests but sends no Parameter Problem, so its "
                    "silence shows nothing")


@requirement("RFC1122-3.2.2c")
def test_no_error_about_an_icmp_error(dut: Dut, tb: Testbench) -> None:
    """An ICMP error message with a malformed option draws no Parameter Problem."""
    quoted = IP(src=dut.ip, dst=tb.ip) / UDP(sport=5000, dport=DISCARD)
    tb.send(IP(src=tb.ip, dst=dut.ip, options=[MALFORMED_OPTION]) / ICMP(type=3, code=3)
            / Raw(bytes(quoted)), why="a port unreachable with a malformed option")
    tb.expect_none(IP() / ICMP(), why="no error about an ICMP error")
    parameter_problem_control_or_skip(tb)


@requirement("RFC1122-3.2.2f")
def test_no_error_about_a_non_initial_fragment(dut: Dut, tb: Testbench) -> None:
    """A second fragment with a malformed option draws no Parameter Problem."""
    whole = datagram(tb, b"x" * 32, dport=CLOSED, ip={"options": [MALFORMED_OPTION], "id": 99})
    tb.send(fragments(whole, [(16, 40)])[0], why="the last fragment only, malformed option")
    tb.expect_none(IP() / ICMP(), why="no error about a non-initial fragment")
    parameter_problem_control_or_skip(tb)


@requirement("RFC1122-3.2.2d")
def test_no_error_about_a_datagram_to_broadcast(dut: Dut, tb: Testbench) -> None:
    """A datagram to the subnet broadcast address and a closed port draws no error.

    It comes in a frame to the DUT's own MAC address, so that the rule about link-layer
    broadcasts (test_no_error_about_a_link_layer_broadcast) cannot be what keeps it quiet."""
    tb.send(datagram(tb, b"to all", dport=CLOSED, destination=BROADCAST),
            why="a datagram to 192.0.2.255, a closed port, in a unicast frame")
    no_icmp_error(tb, "no error about a datagram to a broadcast address")


@requirement("RFC1122-3.2.2d")
def test_no_error_about_a_datagram_to_multicast(dut: Dut, tb: Testbench) -> None:
    """A datagram to the all-hosts group and a closed port draws no error."""
    tb.send(datagram(tb, b"to the group", dport=CLOSED, destination=ALL_HOSTS),
            why="a datagram to 224.0.0.1, a closed port", link_destination=ALL_HOSTS_MAC)
    no_icmp_error(tb, "no error about a datagram to a multicast address")


@requirement("RFC1122-3.2.2e")
def test_no_error_about_a_link_layer_broadcast(dut: Dut, tb: Testbench) -> None:
    """A datagram to the DUT's address, sent as a link-layer broadcast, draws no error."""
    tb.send(datagram(tb, b"shouted", dport=CLOSED), why="a unicast datagram in a broadcast frame",
            link_destination=LINK_BROADCAST)
    no_icmp_error(tb, "no error about a link-layer broadcast")


# ---- errors the DUT receives ---------------------------------------------------------------


def connected_socket_that_sent(dut: Dut, tb: Testbench, peer: str, *,
                               recverr: bool = False) -> tuple[int, Packet]:
    """A UDP socket connected to `peer`, and the datagram it sent there."""
    sock = connected_socket(dut, peer, DISCARD, options=[("IP_RECVERR", 1)] if recverr else [])
    with step(SEND, "the connected socket sends a datagram to its peer"):
        dut.send(sock, b"ping")
        sent = tb.expect(IP(dst=peer) / UDP(dport=DISCARD), within=ANSWER_S, why="the datagram")
    return sock, sent.packet


@requirement("RFC1122-3.2.2.4")
def test_time_exceeded_is_passed_up(dut: Dut, tb: Testbench) -> None:
    """A Time Exceeded from a router reaches the socket (through IP_RECVERR's error queue)."""
    sock, sent = connected_socket_that_sent(dut, tb, tb.remote.ip, recverr=True)
    tb.send(tb.icmp_error(sent, type=TIME_EXCEEDED, code=0, source=tb.router),
            why="router: time exceeded in transit")
    _, error = queued_error(dut, sock)
    tb.observe("errqueue", {"errno": error.errno, "type": error.type, "code": error.code})
    assert (error.origin, error.type, error.code) == ("ICMP", TIME_EXCEEDED, 0)


@requirement("RFC1122-3.2.2.5b")
def test_parameter_problem_is_passed_up(dut: Dut, tb: Testbench) -> None:
    """A Parameter Problem about a sent datagram is reported on the connected socket."""
    sock, sent = connected_socket_that_sent(dut, tb, tb.ip)
    tb.send(tb.icmp_error(sent, type=PARAMETER_PROBLEM, code=0),
            why="parameter problem about the datagram")
    assert dut.poll(sock, ["POLLIN"], ANSWER_MS) == ["POLLERR"], "no error became pending"
    error = dut.getsockopt(sock, "SO_ERROR")
    tb.observe("so_error", error)
    assert error is not None


def ignored_by_the_connected_socket(dut: Dut, tb: Testbench, sock: int, sent: Packet,
                                    bogus: Packet, why: str) -> None:
    """`bogus` leaves the socket untouched; a well-formed error afterwards does not."""
    tb.send(bogus, why=why)
    # The DUT handles frames in order: once it answers the barrier, `bogus` was processed.
    tb.pass_barrier(tb.echo_barrier(), "the bogus error has been processed")
    events = dut.poll(sock, ["POLLIN"], 0)
    tb.observe("poll_after_bogus_error", events)
    assert events == [], f"the socket reported {events} after a bogus ICMP error"
    assert dut.send(sock, b"still fine") == 10
    tb.send(tb.icmp_error(sent, type=3, code=3), why="control: a well-formed port unreachable")
    tb.pass_barrier(tb.echo_barrier(), "the well-formed error has been processed")
    if dut.poll(sock, ["POLLIN"], 0) != ["POLLERR"]:
        pytest.skip("the socket takes no port unreachable at all, so this shows nothing")


@requirement("RFC1122-4.1.3.3c")
def test_icmp_error_with_a_short_quote_is_ignored(dut: Dut, tb: Testbench) -> None:
    """A port unreachable quoting only 4 octets after the IP header affects no socket."""
    sock, sent = connected_socket_that_sent(dut, tb, tb.ip)
    quote = bytes(sent[IP])[:24]
    ignored_by_the_connected_socket(
        dut, tb, sock, sent, IP(src=tb.ip, dst=dut.ip) / ICMP(type=3, code=3) / Raw(quote),
        "port unreachable quoting the IP header and 4 octets")


@requirement("RFC1122-4.1.3.3c")
def test_icmp_error_naming_no_socket_is_ignored(dut: Dut, tb: Testbench) -> None:
    """A port unreachable quoting a datagram from a port with no socket affects none."""
    sock, sent = connected_socket_that_sent(dut, tb, tb.ip)
    other = sent[IP].copy()
    other[UDP].sport = sent[UDP].sport ^ 0x0101
    other[UDP].chksum = None
    ignored_by_the_connected_socket(
        dut, tb, sock, sent, tb.icmp_error(IP(bytes(other)), type=3, code=3),
        "port unreachable quoting a datagram from another source port")


@requirement("RFC1122-4.1.3.3c")
def test_icmp_error_with_a_malformed_quote_is_ignored(dut: Dut, tb: Testbench) -> None:
    """A port unreachable whose quoted header has IHL 4 affects no socket."""
    sock, sent = connected_socket_that_sent(dut, tb, tb.ip)
    quote = bytearray(bytes(sent[IP])[:28])
    quote[0] = 0x44  # version 4, IHL 4: no valid header is that short
    ignored_by_the_connected_socket(
        dut, tb, sock, sent, IP(src=tb.ip, dst=dut.ip) / ICMP(type=3, code=3) / Raw(bytes(quote)),
        "port unreachable quoting a header with IHL 4")
