"""A worked example of a suite of your own: the DUT's application echoes UDP datagrams
(played through the agent: recvfrom, then sendto), checked on the wire.

    conformance run --target linux --suite examples/my_suite -k udp_echo
"""

from scapy.layers.inet import ICMP, IP, UDP
from scapy.packet import Raw

from conformance import ANSWER_S, Dut, Testbench, bound_socket, requirement

ECHO_PORT = 7777


@requirement("EXAMPLE-UDP-ECHO-1")
def test_a_datagram_comes_back_with_the_same_data(dut: Dut, tb: Testbench) -> None:
    """The application reads a datagram and sends it back to where it came from; the
    tester sees it with the data intact."""
    sock = bound_socket(dut, ECHO_PORT)
    reading = dut.start("recvfrom", sock=sock, size=2048, flags=[])
    tb.send(IP(src=tb.ip, dst=dut.ip) / UDP(sport=40123, dport=ECHO_PORT) / Raw(b"hello"),
            why="a datagram for the echo service")
    data, (addr, port) = reading.result(timeout=ANSWER_S)
    assert data == b"hello", f"the application read {data!r}"
    assert dut.sendto(sock, data, addr, port) == len(data)
    tb.expect(IP(src=dut.ip, dst=tb.ip) / UDP(sport=ECHO_PORT, dport=40123) / Raw(b"hello"),
              within=ANSWER_S, why="the echo")


@requirement("EXAMPLE-UDP-ECHO-2")
def test_a_closed_port_does_not_echo(dut: Dut, tb: Testbench) -> None:
    """No echo from a port nothing listens on: a port unreachable instead, and no UDP."""
    tb.send(IP(src=tb.ip, dst=dut.ip) / UDP(sport=40124, dport=ECHO_PORT + 1) / Raw(b"hello"),
            why="a datagram to a closed port")
    tb.expect(IP(src=dut.ip, dst=tb.ip) / ICMP(type=3, code=3), within=ANSWER_S,
              why="port unreachable")
    tb.expect_none(IP(src=dut.ip) / UDP(dport=40124), why="no echo")
