"""IPv4 input on a host (RFC 1122 3.2.1): malformed headers, options, TTL, source addresses.

The DUT's UDP socket listens on PORT; each case sends one odd datagram. What must be
dropped is shown dropped by a well-formed datagram that follows it and must be the first
delivered; "silently" is no ICMP before the DUT answers a barrier echo request
(conformance/testbench/udp.py).
"""

import pytest
from scapy.layers.inet import ICMP, IP, UDP, IPOption, IPOption_NOP
from scapy.layers.l2 import ARP
from scapy.packet import Packet

from conformance.case import requirement
from conformance.targets.dut import Dut
from conformance.testbench.bench import Testbench
from conformance.testbench.scenarios import bound_socket
from conformance.testbench.udp import (
    CLOSED,
    datagram,
    delivered,
    expect_from_a_live_dut,
    no_icmp_error,
    only_the_good_one_arrives,
    udp_checksum,
)

PARAMETER_PROBLEM = 12
# An option type no RFC defines for general use (30, "experimental", RFC 4727): unknown.
UNKNOWN_OPTION = IPOption(b"\x1e\x04\xab\xcd")
STREAM_IDENTIFIER = IPOption(b"\x88\x04\x00\x2a")  # type 136, obsolete (RFC 1122 3.2.1.8)
# Loose source route whose pointer (12) is past its one address: the route is complete and
# this host is its final destination.
COMPLETED_SOURCE_ROUTE = IPOption(b"\x83\x07\x0c\xc6\x33\x64\x07")
# An option whose length (40) runs past the end of the header.
MALFORMED_OPTION = IPOption(b"\x1e\x28\x00\x00")
OTHER_HOST = "192.0.2.77"  # on the DUT's subnet; nobody in the lab has it


def dropped_silently(dut: Dut, tb: Testbench, bad: Packet, why: str) -> None:
    """`bad`, sent to a bound socket, is neither delivered nor answered with any ICMP
    message."""
    sock = bound_socket(dut)
    tb.send(bad, why=why)
    tb.expect_none(IP() / ICMP(), why="the datagram is discarded silently")
    only_the_good_one_arrives(dut, tb, sock)


# ---- malformed headers ---------------------------------------------------------------------


@requirement("RFC1122-3.2.1.1")
def test_version_other_than_4_is_silently_discarded(dut: Dut, tb: Testbench) -> None:
    """A datagram with version 5 in its header is silently discarded."""
    dropped_silently(dut, tb, datagram(tb, b"version 5", ip={"version": 5}),
                     "a datagram with IP version 5")


@requirement("RFC1122-3.2.1.2")
def test_bad_header_checksum_is_silently_discarded(dut: Dut, tb: Testbench) -> None:
    """A datagram whose header checksum is wrong is silently discarded."""
    packet = datagram(tb, b"bad header checksum")
    packet[IP].chksum = IP(bytes(packet)).chksum ^ 0x0F0F
    dropped_silently(dut, tb, packet, "a datagram with a wrong header checksum")


@requirement("RFC1122-3.2.1a")
def test_header_length_below_five_words_is_discarded(dut: Dut, tb: Testbench) -> None:
    """A datagram whose header length field says 16 octets (IHL 4) is discarded."""
    dropped_silently(dut, tb, datagram(tb, b"ihl 4", ip={"ihl": 4}),
                     "a datagram with IHL 4 (a 16-octet header)")


@requirement("RFC1122-3.2.1a")
def test_total_length_beyond_the_frame_is_discarded(dut: Dut, tb: Testbench) -> None:
    """A datagram whose total length claims more octets than the frame holds is discarded."""
    packet = datagram(tb, b"short")
    # Summed first: scapy would sum UDP over the length the IP header claims, and a bad
    # UDP checksum would drop the datagram whatever the IP layer made of it.
    packet[UDP].chksum = udp_checksum(packet)
    packet[IP].len = len(bytes(packet)) + 20
    dropped_silently(dut, tb, packet, "total length 20 octets beyond the frame")


@requirement("RFC1122-3.2.1a")
def test_octets_past_the_total_length_are_not_data(dut: Dut, tb: Testbench) -> None:
    """Link-layer padding after the total length is not part of the datagram: a datagram
    followed by padding is delivered without it, and one whose UDP length reaches into the
    padding is discarded as truncated."""
    sock = bound_socket(dut)
    tb.send(IP(bytes(datagram(tb, b"hi")) + b"padding!"),
            why="a datagram followed by 8 octets of link-layer padding")
    assert delivered(dut, sock) == b"hi"
    # UDP's own length bounds what it hands over, so padding taken as IP data shows only
    # when the UDP length (and checksum) reach into it: UDP then finds a whole datagram.
    reaching = IP(bytes(datagram(tb, b"hipadding!")))  # UDP length 18
    reaching.len, reaching.chksum = 20 + 8 + 2, None  # the IP datagram ends after "hi"
    tb.send(IP(bytes(reaching)), why="a datagram of total length 30 whose UDP length "
            "(18) and checksum cover the 8 octets of padding after it")
    only_the_good_one_arrives(dut, tb, sock)


# ---- options ------------------------------------------------------------------------------


@requirement("RFC1122-3.2.1.8c")
def test_unknown_options_are_ignored(dut: Dut, tb: Testbench) -> None:
    """A datagram carrying a NOP and an option of unknown type is delivered as usual."""
    sock = bound_socket(dut)
    tb.send(datagram(tb, b"with options", ip={"options": [IPOption_NOP(), UNKNOWN_OPTION]}),
            why="a datagram with a NOP and an unknown option (type 30)")
    assert delivered(dut, sock) == b"with options"


@requirement("RFC1122-3.2.1.8d")
def test_stream_identifier_option_is_ignored(dut: Dut, tb: Testbench) -> None:
    """A datagram carrying the obsolete Stream Identifier option is delivered as usual."""
    sock = bound_socket(dut)
    tb.send(datagram(tb, b"with stream id", ip={"options": [STREAM_IDENTIFIER]}),
            why="a datagram with a Stream Identifier option")
    assert delivered(dut, sock) == b"with stream id"


@requirement("RFC1122-3.2.1.8e")
def test_datagram_at_the_end_of_its_source_route_is_delivered(dut: Dut, tb: Testbench) -> None:
    """A datagram whose loose source route is complete (this host is its end) is delivered."""
    sock = bound_socket(dut)
    routed = datagram(tb, b"source routed", ip={"options": [COMPLETED_SOURCE_ROUTE]})
    # scapy sums a source-routed datagram over the route's last hop; this route is
    # complete, so the final destination (RFC 768's pseudo-header) is the DUT itself.
    routed[UDP].chksum = udp_checksum(routed)
    tb.send(routed, why="a datagram with a completed loose source route via 198.51.100.7")
    tb.send(datagram(tb, b"good"), why="a plain datagram after it")
    first = delivered(dut, sock)
    tb.observe("first_delivered", first.decode())
    assert first == b"source routed", "the source-routed datagram was dropped"


@requirement("RFC1122-3.2.2.5a")
def test_malformed_option_draws_a_parameter_problem(dut: Dut, tb: Testbench) -> None:
    """A datagram whose option runs past the header draws a Parameter Problem."""
    sock = bound_socket(dut)
    tb.send(datagram(tb, b"bad option", ip={"options": [MALFORMED_OPTION]}),
            why="a datagram with an option of length 40 in a 24-octet header")
    problem = expect_from_a_live_dut(tb, IP(dst=tb.ip) / ICMP(type=PARAMETER_PROBLEM),
                                     "parameter problem")
    tb.observe("pointer", problem[ICMP].ptr)
    tb.send(datagram(tb, b"good"), why="a plain datagram after it")
    tb.observe("first_delivered", delivered(dut, sock).decode(errors="replace"))


# ---- TTL ----------------------------------------------------------------------------------


@requirement("RFC1122-3.2.1.7b")
@pytest.mark.parametrize("ttl", [1, 0])
def test_low_ttl_is_no_reason_to_discard(dut: Dut, tb: Testbench, ttl: int) -> None:
    """A datagram that arrives with TTL below 2 is delivered."""
    sock = bound_socket(dut)
    tb.send(datagram(tb, f"ttl {ttl}".encode(), ip={"ttl": ttl}), why=f"a datagram with TTL {ttl}")
    assert delivered(dut, sock) == f"ttl {ttl}".encode()


# ---- addresses ----------------------------------------------------------------------------

INVALID_SOURCES = {
    "zero": "0.0.0.0",
    "loopback": "127.0.0.1",
    "directed-broadcast": "192.0.2.255",
    "limited-broadcast": "255.255.255.255",
    "multicast": "224.0.0.1",
}


@requirement("RFC1122-3.2.1.3b", "RFC1122-4.1.3.6a", "RFC1122-3.2.2g")
@pytest.mark.parametrize("kind", INVALID_SOURCES)
def test_invalid_source_address_is_silently_discarded(dut: Dut, tb: Testbench, kind: str) -> None:
    """A datagram from an address that is no single host is neither delivered nor answered."""
    source = INVALID_SOURCES[kind]
    sock = bound_socket(dut)
    tb.send(datagram(tb, b"from nowhere", source=source), why=f"from {source} ({kind})")
    tb.send(datagram(tb, b"from nowhere", source=source, dport=CLOSED),
            why=f"from {source} ({kind}) to a closed port")
    no_icmp_error(tb, "no ICMP error about a datagram whose source is no single host")
    only_the_good_one_arrives(dut, tb, sock)


@requirement("RFC1122-3.2.1.3a", "RFC1122-3.2.2.2b")
def test_datagram_for_another_host_is_silently_discarded(dut: Dut, tb: Testbench) -> None:
    """A datagram for another address, though sent to the DUT's MAC, is silently discarded:
    not delivered, not forwarded (no ARP request for that address, no relayed datagram)
    and not answered (no ICMP, no Redirect)."""
    sock = bound_socket(dut)
    tb.send(datagram(tb, b"not for you", destination=OTHER_HOST),
            why=f"a datagram for {OTHER_HOST}, sent to the DUT's MAC address")
    # RFC 1122 3.2.1.3: a host does not forward. Each check ends on a barrier echo request.
    tb.expect_none(ARP(op=1, pdst=OTHER_HOST), why=f"no ARP request for {OTHER_HOST}")
    tb.expect_none(IP(dst=OTHER_HOST), why=f"the datagram for {OTHER_HOST} is not relayed")
    no_icmp_error(tb, "a host neither delivers, forwards nor redirects it")
    only_the_good_one_arrives(dut, tb, sock)
