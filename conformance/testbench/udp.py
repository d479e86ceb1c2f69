"""UDP probes: datagrams to a DUT socket, and the two ways a case shows a datagram dropped.

* Not delivered: a well-formed datagram follows the bad one, and must be the first the
  socket hands over. The DUT handles frames in the order they come, so this proves the
  drop without waiting out a quiet window.
* Not answered: no ICMP up to a barrier the DUT must answer (an echo request), then a
  control datagram to a closed port whose port unreachable shows that the silence was the
  DUT's choice; a DUT that answers the barrier but never sends port unreachable makes the
  check not applicable.

Steps that bring a case into position are judged at the requirement they embody
(`step`): SEND, the DUT sends a datagram to the destination the application chose;
DELIVER, a well-formed datagram reaches the socket of its destination port.
"""

from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, UDP, IPerror, UDPerror
from scapy.packet import Packet, Raw
from scapy.utils import checksum

from conformance.targets.dut import Dut, Errno, ErrQueueEntry, Message
from conformance.testbench.bench import ANSWER_S, ExpectationFailed, Received, Testbench, step

PORT = 7000  # the DUT's socket, by convention of the suites
CLOSED = 7001  # nothing listens there on the DUT
TESTER_PORT = 40000
CONTROL_PORT = TESTER_PORT + 1  # the tester's port for control datagrams
DELIVERED_WITHIN_MS = int(ANSWER_S * 1000)
# RFC 768: the application chooses each sent datagram's destination (RFC768-h); the
# destination port selects the socket a received one goes to (RFC768-f).
SEND = "RFC768-h"
DELIVER = "RFC768-f"


def datagram(tb: Testbench, payload: bytes, *, dport: int = PORT, sport: int = TESTER_PORT,
             source: str | None = None, destination: str | None = None,
             ip: dict[str, Any] | None = None, **udp_fields: Any) -> Packet:
    """A datagram from the tester to the DUT. `ip` and `udp_fields` override header fields
    (otherwise computed, as scapy does)."""
    return (IP(src=source or tb.ip, dst=destination or tb.dut_host.ip, **(ip or {}))
            / UDP(sport=sport, dport=dport, **udp_fields) / Raw(payload))


def udp_checksum(ip: Packet) -> int:
    """The checksum RFC 768 gives the UDP datagram in `ip`: the one's complement of the sum
    over the pseudo-header, the header with a zero checksum field, and the data."""
    udp = bytes(ip[UDP])[: ip[UDP].len]
    pseudo_header = (
        bytes(map(int, ip.src.split("."))) + bytes(map(int, ip.dst.split(".")))
        + bytes([0, 17]) + len(udp).to_bytes(2, "big")
    )
    return int(checksum(pseudo_header + udp[:6] + b"\0\0" + udp[8:]))


def with_wrong_checksum(packet: Packet) -> Packet:
    right = IP(bytes(packet))[UDP].chksum
    packet[UDP].chksum = right ^ 0x5555
    return packet


def delivered(dut: Dut, sock: int) -> bytes:
    """The next datagram the socket hands over (waiting for it up to ANSWER_S)."""
    assert dut.poll(sock, ["POLLIN"], DELIVERED_WITHIN_MS) == ["POLLIN"], "nothing delivered"
    data = dut.recv(sock, 65535, ["MSG_DONTWAIT"])
    assert isinstance(data, bytes), f"recv failed: {data}"
    return data


def only_the_good_one_arrives(dut: Dut, tb: Testbench, sock: int, port: int = PORT) -> None:
    """A well-formed datagram follows; it must be the first the socket hands over."""
    tb.send(datagram(tb, b"good", dport=port), why="a well-formed datagram after it")
    with step(DELIVER, "the well-formed datagram after it is delivered"):
        assert dut.poll(sock, ["POLLIN"], DELIVERED_WITHIN_MS) == ["POLLIN"], \
            "not even the well-formed datagram arrived"
    first = dut.recv(sock, 65535, ["MSG_DONTWAIT"])
    assert first == b"good", f"the socket handed over {first!r} before the good datagram"


def queued_error(dut: Dut, sock: int, size: int = 100) -> tuple[Message, ErrQueueEntry]:
    """The ICMP error a socket with IP_RECVERR queued (RFC 1122 4.1.3.3: UDP passes ICMP
    errors up): poll reports POLLERR, and recvmsg with MSG_ERRQUEUE of `size` reads it.
    Returns the message and its extended error."""
    assert dut.poll(sock, ["POLLIN"], DELIVERED_WITHIN_MS) == ["POLLERR"], \
        "no error became pending"
    message = dut.recvmsg(sock, size, ["MSG_ERRQUEUE"])
    assert not isinstance(message, Errno), f"recvmsg(MSG_ERRQUEUE) failed: {message}"
    assert message.errqueue is not None, f"recvmsg returned no extended error: {message}"
    return message, message.errqueue


def port_unreachable_about(tb: Testbench, *, sport: int, dport: int) -> Packet:
    return (IP(dst=tb.ip) / ICMP(type=3, code=3) / IPerror()
            / UDPerror(sport=sport, dport=dport))


def answers_control_or_skip(tb: Testbench) -> Received:
    """Control: a well-formed datagram to a closed port draws a port unreachable before the
    DUT answers a barrier; a DUT that answers the barrier but sends no port unreachable
    proves nothing by its silence (not applicable). One that answers no barrier fails."""
    tb.send(datagram(tb, b"control", dport=CLOSED, sport=CONTROL_PORT),
            why="control: a well-formed datagram to a closed port")
    answer = tb.expect_or_none(port_unreachable_about(tb, sport=CONTROL_PORT, dport=CLOSED),
                               why="port unreachable for the control datagram")
    if answer is None:
        pytest.skip("the DUT answers echo requests but sends no port unreachable, so its "
                    "silence shows nothing")
    return answer


def no_icmp_error(tb: Testbench, why: str) -> None:
    """No ICMP up to a barrier the DUT answers, and the DUT does answer a control datagram."""
    tb.expect_none(IP() / ICMP(), why=why)
    answers_control_or_skip(tb)


def expect_from_a_live_dut(tb: Testbench, template: Packet, why: str) -> Received:
    """Wait ANSWER_S for what the DUT should send (an ICMP error a SHOULD asks for). If it
    does not come, the DUT must still answer a barrier echo request: its silence is then
    its choice, judged at the case's level; a DUT that answers nothing fails (MUST)."""
    try:
        return tb.expect(template, within=ANSWER_S, why=why)
    except ExpectationFailed:
        tb.pass_barrier(tb.echo_barrier(), f"the DUT is alive, so the missing {why} was its "
                                           "choice")
        raise
