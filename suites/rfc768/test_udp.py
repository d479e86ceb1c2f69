"""UDP itself (RFC 768, with RFC 1122 4.1.3.4 on checksums): header, length, checksum, ports.

The DUT's socket listens on PORT. How a case shows a datagram dropped (not delivered, not
answered) is explained in conformance/testbench/udp.py.
"""

from scapy.layers.inet import IP, UDP
from scapy.packet import Raw
from scapy.utils import checksum

from conformance.case import Errno, requirement
from conformance.targets.dut import Dut
from conformance.testbench.bench import ANSWER_S, Testbench
from conformance.testbench.scenarios import bound_socket
from conformance.testbench.udp import (
    CLOSED,
    DELIVERED_WITHIN_MS,
    PORT,
    TESTER_PORT,
    datagram,
    delivered,
    no_icmp_error,
    only_the_good_one_arrives,
    udp_checksum,
    with_wrong_checksum,
)

OTHER_PORT = 7002  # a second socket of the DUT
DISCARD = 9  # nothing listens there on the tester's hosts


# ---- checksum generation (RFC 768, RFC 1122 4.1.3.4) ------------------------------------


@requirement("RFC768-c", "RFC1122-4.1.3.4a", "RFC1122-4.1.3.4c")
def test_sent_datagrams_carry_a_correct_checksum(dut: Dut, tb: Testbench) -> None:
    """The DUT's datagrams carry a checksum (not zero) that is right over the pseudo-header."""
    sock = bound_socket(dut)
    dut.sendto(sock, b"checksum me", tb.ip, DISCARD)
    sent = tb.expect(IP(dst=tb.ip) / UDP(dport=DISCARD), within=ANSWER_S, why="the datagram")
    tb.observe("checksum", sent[UDP].chksum)
    assert sent[UDP].chksum != 0, "the datagram was sent without a checksum"
    assert sent[UDP].chksum == udp_checksum(sent[IP]), "the checksum is wrong"


@requirement("RFC768-d")
def test_a_checksum_computing_to_zero_is_sent_as_all_ones(dut: Dut, tb: Testbench) -> None:
    """A checksum that computes to zero goes out as all ones (zero would mean none)."""
    sock = bound_socket(dut)
    probe = IP(src=dut.ip, dst=tb.ip) / UDP(sport=PORT, dport=DISCARD) / Raw(b"\0\0")
    # With these two data octets the one's complement sum becomes all ones: checksum zero.
    payload = udp_checksum(IP(bytes(probe))).to_bytes(2, "big")
    dut.sendto(sock, payload, tb.ip, DISCARD)
    sent = tb.expect(IP(dst=tb.ip) / UDP(dport=DISCARD), within=ANSWER_S,
                     why="a datagram whose checksum computes to zero")
    assert udp_checksum(sent[IP]) in (0, 0xFFFF) and bytes(sent[UDP].payload)[:2] == payload
    tb.observe("checksum", sent[UDP].chksum)
    assert sent[UDP].chksum == 0xFFFF, f"sent as {sent[UDP].chksum:#06x}, not 0xffff"


# ---- checksum verification ------------------------------------------------------------


@requirement("RFC768-e", "RFC1122-4.1.3.4a")
def test_a_zero_checksum_means_none_and_the_datagram_is_delivered(dut: Dut, tb: Testbench) -> None:
    """A datagram with checksum zero (none computed) is delivered."""
    sock = bound_socket(dut)
    tb.send(datagram(tb, b"unchecked", chksum=0), why="a datagram without a checksum (zero)")
    assert delivered(dut, sock) == b"unchecked"


@requirement("RFC1122-4.1.3.4b")
def test_a_bad_checksum_datagram_is_not_delivered(dut: Dut, tb: Testbench) -> None:
    """A datagram with a wrong checksum never reaches the socket."""
    sock = bound_socket(dut)
    tb.send(with_wrong_checksum(datagram(tb, b"corrupt")), why="a datagram with a wrong checksum")
    only_the_good_one_arrives(dut, tb, sock)


@requirement("RFC1122-4.1.3.4b")
def test_a_bad_checksum_datagram_draws_no_port_unreachable(dut: Dut, tb: Testbench) -> None:
    """A datagram with a wrong checksum to a closed port is dropped silently: no ICMP."""
    tb.send(with_wrong_checksum(datagram(tb, b"corrupt", dport=CLOSED)),
            why="a datagram with a wrong checksum to a closed port")
    no_icmp_error(tb, "a datagram with a bad checksum is discarded silently")


@requirement("RFC768-c", "RFC1122-4.1.3.4b")
def test_the_checksum_covers_the_pseudo_header(dut: Dut, tb: Testbench) -> None:
    """A checksum computed without the pseudo-header, or for another destination address,
    fails the pseudo-header check."""
    sock = bound_socket(dut)
    # Right for a receiver that leaves the pseudo-header out, so only such a one takes it.
    bare = bytes(datagram(tb, b"bare", chksum=0)[UDP])
    tb.send(datagram(tb, b"bare", chksum=int(checksum(bare)) or 0xFFFF),
            why="a checksum over the UDP datagram alone, without the pseudo-header")
    elsewhere = IP(src=tb.ip, dst="192.0.2.9") / UDP(sport=TESTER_PORT, dport=PORT) / Raw(b"mis")
    packet = datagram(tb, b"mis", chksum=IP(bytes(elsewhere))[UDP].chksum)
    tb.send(packet, why="a checksum right for 192.0.2.9, wrong for the DUT's address")
    only_the_good_one_arrives(dut, tb, sock)


# ---- the length field -------------------------------------------------------------------


@requirement("RFC768-b")
def test_a_length_beyond_the_ip_payload_is_dropped(dut: Dut, tb: Testbench) -> None:
    """A datagram whose UDP length claims more than the IP datagram holds is dropped."""
    sock = bound_socket(dut)
    tb.send(datagram(tb, b"too long", len=8 + 8 + 10, chksum=0),
            why="UDP length 26, but 16 octets of UDP in the IP datagram")
    only_the_good_one_arrives(dut, tb, sock)


@requirement("RFC768-b")
def test_a_length_below_the_header_size_is_dropped(dut: Dut, tb: Testbench) -> None:
    """A datagram whose UDP length is less than the 8-octet header is dropped."""
    sock = bound_socket(dut)
    tb.send(datagram(tb, b"tiny", len=4, chksum=0), why="UDP length 4, less than the header")
    only_the_good_one_arrives(dut, tb, sock)


@requirement("RFC768-b")
def test_octets_beyond_the_udp_length_are_not_delivered(dut: Dut, tb: Testbench) -> None:
    """Octets of the IP datagram past the UDP length are not part of the data."""
    sock = bound_socket(dut)
    tb.send(datagram(tb, b"hello" + b"trailer", len=8 + 5, chksum=0),
            why="UDP length 13: 5 data octets, then 7 octets outside the datagram")
    data = delivered(dut, sock)
    tb.observe("delivered", data.decode(errors="replace"))
    assert data == b"hello", f"delivered {data!r}"


@requirement("RFC768-a")
def test_a_truncated_udp_header_is_dropped(dut: Dut, tb: Testbench) -> None:
    """An IP datagram carrying fewer than 8 octets of UDP is dropped, silently."""
    sock = bound_socket(dut)
    ports = PORT.to_bytes(2, "big")
    tb.send(IP(src=tb.ip, dst=dut.ip, proto=17) / Raw(TESTER_PORT.to_bytes(2, "big") + ports),
            why="4 octets of UDP: the ports, no length or checksum")
    only_the_good_one_arrives(dut, tb, sock)
    tb.send(IP(src=tb.ip, dst=dut.ip, proto=17)
            / Raw(TESTER_PORT.to_bytes(2, "big") + CLOSED.to_bytes(2, "big")),
            why="4 octets of UDP to a closed port")
    no_icmp_error(tb, "a truncated header is dropped without an answer")


# ---- ports ------------------------------------------------------------------------------


@requirement("RFC768-f", "RFC768-h")
def test_datagrams_go_to_the_destination_port_and_replies_to_the_source_port(
    dut: Dut, tb: Testbench
) -> None:
    """A datagram reaches the socket of its destination port; the reply goes to its source port."""
    sock = bound_socket(dut)
    other = bound_socket(dut, OTHER_PORT)
    tb.send(datagram(tb, b"for the other", dport=OTHER_PORT), why=f"a datagram to {OTHER_PORT}")
    assert dut.poll(other, ["POLLIN"], DELIVERED_WITHIN_MS) == ["POLLIN"], "nothing delivered"
    data, source = dut.recvfrom(other, 2000, ["MSG_DONTWAIT"])
    assert data == b"for the other" and source == (tb.ip, TESTER_PORT)
    assert dut.recv(sock, 2000, ["MSG_DONTWAIT"]) == Errno("EAGAIN"), "the wrong socket got it"
    dut.sendto(other, b"reply", *source)
    reply = tb.expect(IP(dst=tb.ip) / UDP(dport=TESTER_PORT), within=ANSWER_S, why="the reply")
    assert reply[UDP].sport == OTHER_PORT


@requirement("RFC768-g")
def test_source_port_zero_is_accepted(dut: Dut, tb: Testbench) -> None:
    """A datagram with source port zero (no reply port) is delivered, naming port 0."""
    sock = bound_socket(dut)
    tb.send(datagram(tb, b"no reply port", sport=0), why="a datagram from source port 0")
    assert dut.poll(sock, ["POLLIN"], DELIVERED_WITHIN_MS) == ["POLLIN"], "nothing delivered"
    data, source = dut.recvfrom(sock, 2000, ["MSG_DONTWAIT"])
    assert (data, source) == (b"no reply port", (tb.ip, 0))
