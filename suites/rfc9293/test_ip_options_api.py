"""IP options and the Differentiated Services field of TCP through the socket API
(RFC 9293 3.9.1.9, 3.9.2, 3.9.2.1; RFC 1122 4.2.4.2): a source route for an active open
and the Record Route option given with IP_OPTIONS, the received TOS with IP_RECVTOS."""

from scapy.layers.inet import IP, TCP

from conformance.case import Errno, Message, requirement
from conformance.lab.addressing import REMOTE
from conformance.targets.dut import Dut
from conformance.testbench.bench import ANSWER_S, Testbench
from conformance.testbench.scenarios import open_passive

PORT = 5180
FIRST_HOP = "198.51.100.50"  # beyond the router, like REMOTE
LOOSE_SOURCE_ROUTE, STRICT_SOURCE_ROUTE, RECORD_ROUTE = 131, 137, 7


def address_bytes(address: str) -> bytes:
    return bytes(map(int, address.split(".")))


def options_of(ip: IP) -> dict[int, bytes]:
    """The options of a header by type: each option's octets from its length on."""
    area, found, position = bytes(ip)[20 : ip.ihl * 4], {}, 0
    while position < len(area) and area[position] != 0:
        if area[position] == 1:  # NOP
            position += 1
            continue
        length = area[position + 1] if position + 1 < len(area) else 0
        if length < 2:
            break
        found[area[position]] = area[position + 1 : position + length]
        position += length
    return found


def syn_of_nonblocking_connect(dut: Dut, tb: Testbench, sock: int, address: str,
                               destination: str) -> IP:
    """The DUT's SYN towards `address`, sent to the IP destination `destination`."""
    dut.set_nonblocking(sock)
    outcome = dut.connect(sock, address, PORT)
    assert outcome == Errno("EINPROGRESS"), f"non-blocking connect: {outcome}"
    return tb.expect(IP(dst=destination) / TCP(dport=PORT, flags="S"), within=ANSWER_S,
                     why="the DUT's SYN")[IP]


@requirement("RFC9293-3.9.2.1a")
def test_an_active_open_can_give_a_source_route(dut: Dut, tb: Testbench) -> None:
    """A connect to 198.51.100.7 with a loose source route through 198.51.100.50
    (IP_OPTIONS) sends the SYN to 198.51.100.50 with the route naming 198.51.100.7."""
    sock = dut.socket("tcp")
    route = bytes([LOOSE_SOURCE_ROUTE, 7, 4]) + address_bytes(FIRST_HOP)
    dut.setsockopt(sock, "IP_OPTIONS", route)
    syn = syn_of_nonblocking_connect(dut, tb, sock, REMOTE.ip, FIRST_HOP)
    options = options_of(syn)
    tb.observe("syn_options", {kind: value.hex() for kind, value in options.items()})
    source_route = options.get(LOOSE_SOURCE_ROUTE) or options.get(STRICT_SOURCE_ROUTE)
    assert source_route is not None, f"the SYN to {FIRST_HOP} carries no source route"
    assert source_route[-4:] == address_bytes(REMOTE.ip), (
        f"the source route {source_route.hex()} does not end at {REMOTE.ip}")


@requirement("RFC9293-3.9.2c")
def test_record_route_may_be_sent_on_segments(dut: Dut, tb: Testbench) -> None:
    """A Record Route option given with IP_OPTIONS: whether the SYN carries it, observed."""
    sock = dut.socket("tcp")
    dut.setsockopt(sock, "IP_OPTIONS", bytes([RECORD_ROUTE, 11, 4]) + bytes(8))
    syn = syn_of_nonblocking_connect(dut, tb, sock, tb.ip, tb.ip)
    tb.observe("syn_record_route", (options_of(syn).get(RECORD_ROUTE) or b"").hex() or None)


@requirement("RFC1122-4.2.4.2d", "RFC9293-3.9.1.9e")
def test_received_differentiated_services_field_may_be_passed_up(
    dut: Dut, tb: Testbench,
) -> None:
    """Data arriving with TOS 0x28 on a connection with IP_RECVTOS: whether recvmsg tells
    the TOS, observed."""
    connection = open_passive(dut, tb, PORT, sport=43800)
    dut.setsockopt(connection.sock, "IP_RECVTOS", 1)
    segment = connection.flow.segment("PA", b"marked")
    segment[IP].tos = 0x28
    tb.send(segment, why="data with TOS 0x28")
    connection.flow.snd_nxt += 6
    assert dut.poll(connection.sock, ["POLLIN"], 1000) == ["POLLIN"], "the data never came"
    message = dut.recvmsg(connection.sock, 100, ["MSG_DONTWAIT"])
    assert isinstance(message, Message), f"recvmsg failed: {message}"
    tb.observe("tos_passed_up", message.ancillary.tos)
