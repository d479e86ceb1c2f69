"""Asynchronous ICMP errors on UDP sockets (RFC 1122 3.2.2.1, 4.1.3.3).

The tester answers a datagram with ICMP port unreachable and watches how the DUT's
socket API reports it. POLLERR on the socket is the event that the DUT has processed the
ICMP; where no error is expected, a barrier echo request the DUT answers after the ICMP
shows that it has processed it.
"""

from scapy.layers.inet import IP, UDP

from conformance.case import Errno, requirement
from conformance.targets.dut import Dut
from conformance.testbench.bench import ANSWER_S, Testbench, step
from conformance.testbench.scenarios import connected_socket
from conformance.testbench.udp import SEND, queued_error

DISCARD = 9  # nothing listens there on the tester's hosts
PORT_UNREACHABLE = {"type": 3, "code": 3}
ANSWER_MS = int(ANSWER_S * 1000)


def send_and_refuse(dut: Dut, tb: Testbench, sock: int, *, connected: bool) -> None:
    """The DUT sends one datagram to the tester, which answers port unreachable."""
    with step(SEND, "the socket sends a datagram to the tester"):
        if connected:
            dut.send(sock, b"ping")
        else:
            dut.sendto(sock, b"ping", tb.ip, DISCARD)
        datagram = tb.expect(IP(dst=tb.ip) / UDP(dport=DISCARD), within=ANSWER_S,
                             why="the datagram")
    tb.send(
        tb.icmp_error(datagram.packet, **PORT_UNREACHABLE),
        why=f"ICMP port unreachable quoting frame {datagram.frame.number}",
    )


def refused_connected_socket(dut: Dut, tb: Testbench) -> int:
    """A UDP socket connected to the tester, whose datagram drew a port unreachable that
    the DUT has processed (POLLERR)."""
    sock = connected_socket(dut, tb.ip, DISCARD)
    send_and_refuse(dut, tb, sock, connected=True)
    assert dut.poll(sock, ["POLLIN"], timeout_ms=ANSWER_MS) == ["POLLERR"], \
        "no error became pending"
    return sock


@requirement("RFC1122-4.1.3.3a", "RFC1122-3.2.2.1")
def test_connected_socket_reports_port_unreachable_on_send(dut: Dut, tb: Testbench) -> None:
    """A connected UDP socket reports ICMP port unreachable as ECONNREFUSED on the next send."""
    sock = refused_connected_socket(dut, tb)
    assert dut.send(sock, b"again") == Errno("ECONNREFUSED")
    # Reported once: the call after that goes through (Linux clears the error).
    tb.observe("send_after_report", str(dut.send(sock, b"third")))


@requirement("RFC1122-4.1.3.3a", "RFC1122-3.2.2.1")
def test_connected_socket_reports_port_unreachable_on_recv(dut: Dut, tb: Testbench) -> None:
    """A connected UDP socket reports ICMP port unreachable as ECONNREFUSED on the next recv."""
    sock = refused_connected_socket(dut, tb)
    assert dut.recv(sock, 100, ["MSG_DONTWAIT"]) == Errno("ECONNREFUSED")
    tb.observe("recv_after_report", str(dut.recv(sock, 100, ["MSG_DONTWAIT"])))


@requirement("RFC1122-4.1.3.3a", "RFC1122-3.2.2.1")
def test_blocked_recv_is_woken_by_port_unreachable(dut: Dut, tb: Testbench) -> None:
    """A recv blocked on a connected UDP socket returns ECONNREFUSED when the ICMP arrives."""
    sock = connected_socket(dut, tb.ip, DISCARD)
    with step(SEND, "the socket sends a datagram to the tester"):
        dut.send(sock, b"ping")
        datagram = tb.expect(IP(dst=tb.ip) / UDP(dport=DISCARD), within=ANSWER_S,
                             why="the datagram")
    blocked = dut.start("recv", sock=sock, size=100, flags=[])
    tb.send(tb.icmp_error(datagram.packet, **PORT_UNREACHABLE),
            why=f"ICMP port unreachable quoting frame {datagram.frame.number}")
    assert blocked.wait(ANSWER_S), "the blocked recv was not woken by the port unreachable"
    assert blocked.result(timeout=1.0) == Errno("ECONNREFUSED")


@requirement("RFC1122-4.1.3.3b")
def test_unconnected_socket_hears_nothing_without_recverr(dut: Dut, tb: Testbench) -> None:
    """An unconnected UDP socket without IP_RECVERR: how the ICMP shows is left to the API."""
    sock = dut.socket("udp")
    send_and_refuse(dut, tb, sock, connected=False)
    # The DUT handles frames in order: once it answers the barrier, the ICMP was processed.
    tb.pass_barrier(tb.echo_barrier(), "the port unreachable has been processed")
    events = dut.poll(sock, ["POLLIN"], timeout_ms=0)
    tb.observe("poll_after_icmp", events)
    tb.observe("sendto_after_icmp", str(dut.sendto(sock, b"again", tb.ip, DISCARD)))
    tb.observe("recv_after_icmp", str(dut.recv(sock, 100, ["MSG_DONTWAIT"])))
    # Linux reports nothing here; a stack that does is recorded, not judged.
    assert events == [], f"the socket reported {events}"


@requirement("RFC1122-4.1.3.3a", "RFC1122-3.2.2.1")
def test_unconnected_socket_with_recverr_queues_the_error(dut: Dut, tb: Testbench) -> None:
    """With IP_RECVERR, an unconnected socket's error queue reports the port unreachable."""
    sock = dut.socket("udp")
    dut.setsockopt(sock, "IP_RECVERR", 1)
    send_and_refuse(dut, tb, sock, connected=False)
    message, error = queued_error(dut, sock)
    tb.observe("errqueue", {"errno": error.errno, "origin": error.origin, "type": error.type,
                            "code": error.code, "offender": error.offender})
    assert (error.errno, error.origin, error.type, error.code) == ("ECONNREFUSED", "ICMP", 3, 3)
    assert error.offender is not None and error.offender[0] == tb.ip
    assert message.address == (tb.ip, DISCARD), "the error names the wrong destination"
