"""What IP hands up to UDP and takes from it (RFC 1122 3.2.1.6, 3.2.1.8, 4.1.3.2, 4.1.3.5,
4.1.4), through ip(7)'s socket options: the options of sent datagrams (IP_OPTIONS), and
the options, TOS and destination address of received ones, which recvmsg returns as
ancillary data (IP_RECVOPTS, IP_RECVTOS, IP_PKTINFO)."""

from scapy.layers.inet import IP, UDP, IPOption

from conformance.case import Message, requirement
from conformance.targets.dut import Dut
from conformance.testbench.bench import ANSWER_S, Testbench
from conformance.testbench.scenarios import bound_socket
from conformance.testbench.udp import DELIVERED_WITHIN_MS, datagram

DISCARD = 9
BROADCAST = "192.0.2.255"
LINK_BROADCAST = "ff:ff:ff:ff:ff:ff"
# RFC 791 3.1 Stream Identifier: an option no host on the way rewrites.
STREAM_ID = bytes([136, 4, 0x12, 0x34])
# RFC 791 3.1 Record Route with room for two addresses, none recorded yet.
RECORD_ROUTE = bytes([7, 11, 4]) + bytes(8)


def received(dut: Dut, sock: int) -> Message:
    """The next datagram the socket hands over, through recvmsg."""
    assert dut.poll(sock, ["POLLIN"], DELIVERED_WITHIN_MS) == ["POLLIN"], "nothing delivered"
    message = dut.recvmsg(sock, 2000, ["MSG_DONTWAIT"])
    assert isinstance(message, Message), f"recvmsg failed: {message}"
    return message


def options_area(ip: IP) -> bytes:
    return bytes(ip)[20 : ip.ihl * 4]


@requirement("RFC1122-3.2.1.6b", "RFC1122-4.1.4c")
def test_udp_learns_the_tos_of_each_received_datagram(dut: Dut, tb: Testbench) -> None:
    """With IP_RECVTOS, recvmsg tells the TOS each datagram arrived with: two datagrams
    with different TOS, each reported with its own."""
    sock = bound_socket(dut)
    dut.setsockopt(sock, "IP_RECVTOS", 1)
    reported = []
    for tos in (0x28, 0x10):
        tb.send(datagram(tb, b"tos", ip={"tos": tos}), why=f"a datagram with TOS {tos:#x}")
        reported.append(received(dut, sock).ancillary.tos)
    tb.observe("tos_reported", reported)
    assert reported == [0x28, 0x10], f"TOS reported {reported} for datagrams of 0x28, 0x10"


@requirement("RFC1122-3.2.1.8b", "RFC1122-4.1.3.2a")
def test_udp_receives_the_ip_options_of_a_datagram(dut: Dut, tb: Testbench) -> None:
    """With IP_RECVOPTS, recvmsg hands over the options a datagram came with, as they came
    (a Stream Identifier); a datagram without options brings none."""
    sock = bound_socket(dut)
    dut.setsockopt(sock, "IP_RECVOPTS", 1)
    tb.send(datagram(tb, b"with", ip={"options": [IPOption(STREAM_ID)]}),
            why="a datagram with a Stream Identifier option")
    with_options = received(dut, sock).ancillary.options
    tb.send(datagram(tb, b"without"), why="a datagram without options")
    without_options = received(dut, sock).ancillary.options
    tb.observe("options_passed_up", with_options.hex() if with_options else None)
    assert with_options == STREAM_ID, (
        f"options passed up {with_options!r}, the datagram had {STREAM_ID!r}")
    assert not without_options, f"options {without_options!r} for a datagram without any"


@requirement("RFC1122-4.1.3.5a")
def test_udp_learns_the_specific_destination_of_each_datagram(dut: Dut, tb: Testbench) -> None:
    """A socket bound to the wildcard address learns with IP_PKTINFO whether a datagram
    came to the DUT's own address or to the broadcast address."""
    sock = bound_socket(dut)
    dut.setsockopt(sock, "IP_PKTINFO", 1)
    tb.send(datagram(tb, b"to you"), why="a datagram to the DUT's address")
    unicast = received(dut, sock).ancillary.pktinfo
    tb.send(datagram(tb, b"to all", destination=BROADCAST), why=f"a datagram to {BROADCAST}",
            link_destination=LINK_BROADCAST)
    broadcast = received(dut, sock).ancillary.pktinfo
    tb.observe("destinations", [info.addr if info else None for info in (unicast, broadcast)])
    assert unicast is not None and broadcast is not None, "no IP_PKTINFO with the datagrams"
    assert (unicast.addr, broadcast.addr) == (dut.ip, BROADCAST), (
        f"destinations reported {unicast.addr}, {broadcast.addr}; sent to {dut.ip}, {BROADCAST}")
    assert unicast.ifindex > 0 and broadcast.ifindex > 0, "no interface index"


@requirement("RFC1122-3.2.1.8a", "RFC1122-4.1.3.2b")
def test_udp_datagrams_carry_the_options_the_application_gives(dut: Dut, tb: Testbench) -> None:
    """IP_OPTIONS with a Record Route option reads back as set, and the datagrams of the
    socket carry it: with its room intact, and at most the DUT's own address recorded."""
    sock = dut.socket("udp")
    dut.setsockopt(sock, "IP_OPTIONS", RECORD_ROUTE)
    held = dut.getsockopt(sock, "IP_OPTIONS")
    dut.sendto(sock, b"routed", tb.ip, DISCARD)
    sent = tb.expect(IP(dst=tb.ip) / UDP(dport=DISCARD), within=ANSWER_S, why="the datagram")[IP]
    options = options_area(sent)
    tb.observe("options_read_back", held.hex() if isinstance(held, bytes) else held)
    tb.observe("options_sent", options.hex())
    assert isinstance(held, bytes) and held[: len(RECORD_ROUTE)] == RECORD_ROUTE \
        and not any(held[len(RECORD_ROUTE):]), f"IP_OPTIONS reads back {held!r}"
    recorded_self = bytes([7, 11, 8]) + bytes(map(int, dut.ip.split("."))) + bytes(4)
    assert options[: len(RECORD_ROUTE)] in (RECORD_ROUTE, recorded_self), (
        f"the datagram's options are {options.hex()}, not the Record Route given")
