"""Path MTU discovery on the host, beyond the basics (RFC 1191 3, 5): Datagram Too Big
messages from old routers without a Next-Hop MTU, and sockets that opt out (DF clear).
"""

from scapy.layers.inet import IP, UDP

from conformance.case import requirement
from conformance.lab.addressing import LINK_MTU
from conformance.targets.dut import Dut
from conformance.testbench.bench import ANSWER_S, Testbench, step
from conformance.testbench.scenarios import connected_socket
from conformance.testbench.udp import SEND

DISCARD = 9
FRAG_NEEDED = {"type": 3, "code": 4}
PLATEAUS = (65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68)  # RFC 1191 7


@requirement("RFC1191-3e", "RFC1191-5")
def test_datagram_too_big_without_next_hop_mtu_lowers_the_estimate(
    dut: Dut, tb: Testbench
) -> None:
    """A Datagram Too Big with Next-Hop MTU zero lowers the estimate below the quoted size."""
    sock = connected_socket(dut, tb.remote.ip, DISCARD)
    with step(SEND, "the socket sends a 1400-byte datagram beyond the router"):
        dut.send(sock, b"x" * 1400)
        sent = tb.expect(IP(dst=tb.remote.ip) / UDP(dport=DISCARD), within=ANSWER_S,
                         why="a 1428-octet datagram beyond the router")
    tb.send(tb.icmp_error(sent.packet, mtu=0, source=tb.router, **FRAG_NEEDED),
            why=f"router (old style): fragmentation needed, no Next-Hop MTU, quoting frame "
                f"{sent.frame.number}")
    # The DUT handles frames in order: once it answers the barrier, the ICMP was processed.
    tb.pass_barrier(tb.echo_barrier(), "the Datagram Too Big has been processed")
    tb.observe("poll_after_icmp", dut.poll(sock, ["POLLIN"], 0))
    # RFC 1191 5, 7: a plateau below the datagram or any smaller estimate will do.
    estimate = dut.getsockopt(sock, "IP_MTU")
    dut.last_result_is_a_choice()
    plateau = next(value for value in PLATEAUS if value < sent[IP].len)
    tb.observe("estimate", estimate if estimate != plateau else f"plateau {plateau}",
               choice=True)
    assert 68 <= estimate < sent[IP].len, f"estimate {estimate} after quoting {sent[IP].len}"


@requirement("API-IP-a")
def test_pmtudisc_dont_sends_without_df(dut: Dut, tb: Testbench) -> None:
    """A socket with IP_PMTUDISC_DONT sends its datagrams without DF."""
    sock = connected_socket(dut, tb.remote.ip, DISCARD,
                            options=[("IP_MTU_DISCOVER", "IP_PMTUDISC_DONT")])
    dut.send(sock, b"x" * 100)
    sent = tb.expect(IP(dst=tb.remote.ip) / UDP(dport=DISCARD), within=ANSWER_S,
                     why="the datagram")
    assert not sent[IP].flags.DF, "sent with DF"
    assert dut.getsockopt(sock, "IP_MTU") == LINK_MTU
