"""What the application sets on an OPEN shows on the wire (RFC 9293 3.9.1.1; RFC 1122
4.2.2.19, 4.2.4.2, 4.2.4.4): the local address and port, the TTL, the type of service."""

from scapy.layers.inet import IP, TCP

from conformance.case import requirement, tcp_segment_choices
from conformance.targets.dut import Dut
from conformance.testbench.bench import ANSWER_S, Testbench
from conformance.testbench.scenarios import expect_dut_syn, open_active

pytestmark = tcp_segment_choices

PORT = 5060
LOCAL_PORT = 5061


@requirement("RFC9293-3.9.1.1c", "RFC1122-4.2.4.4")
def test_open_uses_the_bound_local_socket(dut: Dut, tb: Testbench) -> None:
    """bind() before connect() fixes the local address and port of the SYN."""
    sock = dut.socket("tcp")
    assert dut.bind(sock, dut.ip, LOCAL_PORT) is None
    dut.start("connect", sock=sock, addr=tb.ip, port=PORT)
    syn = expect_dut_syn(tb, PORT)
    assert (syn[IP].src, syn[TCP].sport) == (dut.ip, LOCAL_PORT), "the bound socket was not used"


@requirement("RFC1122-4.2.2.19")
def test_ttl_is_configurable(dut: Dut, tb: Testbench) -> None:
    """IP_TTL on a TCP socket sets the TTL of its SYN."""
    sock = dut.socket("tcp")
    assert dut.setsockopt(sock, "IP_TTL", 7) is None
    dut.start("connect", sock=sock, addr=tb.ip, port=PORT)
    syn = expect_dut_syn(tb, PORT)
    tb.observe("syn_ttl", syn[IP].ttl)
    assert syn[IP].ttl == 7, f"TTL {syn[IP].ttl}, not the 7 asked for"


TOS_FIRST = 0x28  # DSCP AF11, no ECN bits
TOS_LATER = 0xB8  # DSCP EF


@requirement("RFC1122-4.2.4.2a", "RFC1122-4.2.4.2b")
def test_type_of_service_is_set_by_the_application(dut: Dut, tb: Testbench) -> None:
    """IP_TOS set before connect() is the TOS of the SYN, unchanged."""
    sock = dut.socket("tcp")
    assert dut.setsockopt(sock, "IP_TOS", TOS_FIRST) is None
    dut.start("connect", sock=sock, addr=tb.ip, port=PORT)
    syn = expect_dut_syn(tb, PORT)
    tb.observe("syn_tos", syn[IP].tos)
    assert syn[IP].tos == TOS_FIRST, f"TOS {syn[IP].tos:#x}, not {TOS_FIRST:#x}"


@requirement("RFC1122-4.2.4.2c")
def test_type_of_service_changes_during_the_connection(dut: Dut, tb: Testbench) -> None:
    """IP_TOS changed on an established connection applies to the next data segment."""
    connection = open_active(dut, tb, PORT)
    dut.setsockopt(connection.sock, "IP_TOS", TOS_LATER)
    dut.send(connection.sock, b"expedited")
    data = connection.flow.expect("PA", within=ANSWER_S, why="data after the change")
    tb.observe("data_tos", data[IP].tos)
    assert data[IP].tos == TOS_LATER, f"TOS {data[IP].tos:#x}, not {TOS_LATER:#x}"
