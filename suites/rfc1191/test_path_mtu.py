"""Path MTU discovery (RFC 1191) for UDP and TCP.

The DUT talks to a host beyond the lab's router (198.51.100.7); the router answers with
ICMP Destination Unreachable, Fragmentation Needed (type 3, code 4) carrying a Next-Hop
MTU. On Linux a connected socket's pending error turns POLLERR when the ICMP has been
processed; a target that raises no error is given a bounded window instead.
"""

from scapy.layers.inet import IP, TCP, UDP

from conformance.case import Errno, TcpFlow, requirement, tcp_segment_choices
from conformance.lab.addressing import LINK_MTU
from conformance.targets.dut import Dut
from conformance.testbench.bench import Received, Testbench

DISCARD = 9
FRAG_NEEDED = {"type": 3, "code": 4}
IP_AND_UDP_HEADERS = 28
IP_AND_TCP_HEADERS = 40
ICMP_PROCESSED_WINDOW_MS = 1000


def connected_udp(dut: Dut, tb: Testbench, *options: tuple[str, object]) -> int:
    sock = dut.socket("udp")
    for name, value in options:
        dut.setsockopt(sock, name, value)
    dut.connect(sock, tb.remote.ip, DISCARD)
    return sock


def send_datagram(dut: Dut, tb: Testbench, sock: int, size: int) -> Received:
    dut.send(sock, b"x" * size)
    return tb.expect(IP(dst=tb.remote.ip) / UDP(dport=DISCARD), within=1.0,
                     why=f"a {size}-byte datagram for the host beyond the router")


def datagram_too_big(dut: Dut, tb: Testbench, sock: int, about: Received, mtu: int) -> None:
    """The router reports `about` too big for a next hop of `mtu`; wait until processed."""
    tb.send(tb.icmp_error(about.packet, mtu=mtu, source=tb.router, **FRAG_NEEDED),
            why=f"router: fragmentation needed, next-hop MTU {mtu}, quoting frame "
                f"{about.frame.number}")
    tb.observe(f"poll_after_mtu_{mtu}",
               dut.poll(sock, ["POLLIN"], timeout_ms=ICMP_PROCESSED_WINDOW_MS))
    # Consume the pending error (Linux: EMSGSIZE) so that the next wait starts afresh.
    tb.observe(f"so_error_after_mtu_{mtu}", dut.getsockopt(sock, "SO_ERROR"))


@requirement("RFC1191-2")
def test_datagrams_carry_df(dut: Dut, tb: Testbench) -> None:
    """The DUT's UDP datagrams carry DF by default, as path MTU discovery sends them."""
    sock = connected_udp(dut, tb)
    datagram = send_datagram(dut, tb, sock, 100)
    tb.observe("df", bool(datagram[IP].flags.DF), choice=True)  # RFC 1191 2: a MAY
    assert datagram[IP].flags.DF, "the datagram was sent without DF"


@requirement("RFC1191-3a")
def test_datagram_too_big_lowers_the_path_mtu(dut: Dut, tb: Testbench) -> None:
    """A Datagram Too Big message lowers the socket's path MTU to the Next-Hop MTU."""
    sock = connected_udp(dut, tb)
    assert dut.getsockopt(sock, "IP_MTU") == LINK_MTU, "the path MTU starts off the link MTU"
    datagram_too_big(dut, tb, sock, send_datagram(dut, tb, sock, 1400), mtu=1280)
    assert dut.getsockopt(sock, "IP_MTU") == 1280


@requirement("RFC1122-4.1.3.3a", "RFC1191-3a")
def test_error_queue_reports_emsgsize_with_the_mtu(dut: Dut, tb: Testbench) -> None:
    """With IP_RECVERR, the error queue reports EMSGSIZE from ICMP with the Next-Hop MTU."""
    sock = connected_udp(dut, tb, ("IP_RECVERR", 1), ("IP_MTU_DISCOVER", "IP_PMTUDISC_DO"))
    datagram = send_datagram(dut, tb, sock, 1400)
    tb.send(tb.icmp_error(datagram.packet, mtu=1280, source=tb.router, **FRAG_NEEDED),
            why=f"router: fragmentation needed, next-hop MTU 1280, quoting frame "
                f"{datagram.frame.number}")
    assert dut.poll(sock, ["POLLIN"], timeout_ms=ICMP_PROCESSED_WINDOW_MS) == ["POLLERR"]
    message = dut.recvmsg(sock, 2000, ["MSG_ERRQUEUE"])
    assert not isinstance(message, Errno), f"recvmsg(MSG_ERRQUEUE) failed: {message}"
    error = message.errqueue
    assert error is not None, "no extended error"
    tb.observe("errqueue", {"errno": error.errno, "origin": error.origin, "type": error.type,
                            "code": error.code, "info": error.info})
    assert (error.errno, error.origin, error.type, error.code) == ("EMSGSIZE", "ICMP", 3, 4)
    assert error.info == 1280, f"the error carries MTU {error.info}, not the Next-Hop MTU"


@requirement("RFC1191-3b")
def test_oversize_send_fails_and_fitting_datagrams_go_out(dut: Dut, tb: Testbench) -> None:
    """Under IP_PMTUDISC_DO, a send above the lowered path MTU fails with EMSGSIZE and one
    that fits goes out with DF."""
    sock = connected_udp(dut, tb, ("IP_MTU_DISCOVER", "IP_PMTUDISC_DO"))
    datagram_too_big(dut, tb, sock, send_datagram(dut, tb, sock, 1400), mtu=1280)
    assert dut.send(sock, b"x" * 1400) == Errno("EMSGSIZE")
    tb.expect_none(IP(dst=tb.remote.ip) / UDP(dport=DISCARD), within=0.2,
                   why="an oversize datagram must not be sent")
    fitting = 1280 - IP_AND_UDP_HEADERS
    assert dut.send(sock, b"x" * fitting) == fitting
    datagram = tb.expect(IP(dst=tb.remote.ip) / UDP(dport=DISCARD), within=1.0,
                         why="a datagram that fits the new path MTU")
    assert datagram[IP].len <= 1280 and datagram[IP].flags.DF


@requirement("RFC1191-3c")
def test_path_mtu_never_goes_below_68(dut: Dut, tb: Testbench) -> None:
    """A Next-Hop MTU below 68 never takes the path MTU estimate below 68."""
    sock = connected_udp(dut, tb)
    datagram_too_big(dut, tb, sock, send_datagram(dut, tb, sock, 1400), mtu=40)
    path_mtu = dut.getsockopt(sock, "IP_MTU")
    tb.observe("path_mtu", path_mtu)
    assert path_mtu >= 68, f"path MTU {path_mtu} is below 68"


@requirement("RFC1191-3d")
def test_larger_next_hop_mtu_does_not_raise_the_estimate(dut: Dut, tb: Testbench) -> None:
    """After the path MTU was lowered, a message claiming a larger MTU leaves it alone."""
    sock = connected_udp(dut, tb)
    datagram_too_big(dut, tb, sock, send_datagram(dut, tb, sock, 1400), mtu=1280)
    assert dut.getsockopt(sock, "IP_MTU") == 1280, "the first message did not lower the MTU"
    datagram_too_big(dut, tb, sock, send_datagram(dut, tb, sock, 1000), mtu=1400)
    assert dut.getsockopt(sock, "IP_MTU") == 1280, "a Datagram Too Big message raised the MTU"


@requirement("RFC1191-3d")
def test_next_hop_mtu_above_the_link_mtu_is_ignored(dut: Dut, tb: Testbench) -> None:
    """A message claiming an MTU above the link's never raises the estimate past the link."""
    sock = connected_udp(dut, tb)
    datagram_too_big(dut, tb, sock, send_datagram(dut, tb, sock, 1000), mtu=9000)
    assert dut.getsockopt(sock, "IP_MTU") == LINK_MTU


@tcp_segment_choices
@requirement("RFC1191-3a", "RFC1191-3b")
def test_tcp_sends_smaller_segments_after_datagram_too_big(dut: Dut, tb: Testbench) -> None:
    """TCP retransmits in segments that fit the Next-Hop MTU after Datagram Too Big."""
    listener = dut.socket("tcp")
    dut.bind(listener, dut.ip, 5001)
    dut.listen(listener, 8)
    accepting = dut.start("accept", sock=listener)
    flow = TcpFlow(tb, tb.remote, sport=40001, dport=5001)
    flow.connect()
    connection, _ = accepting.result(timeout=2.0)
    dut.send(connection, b"y" * 4000)
    first = flow.expect(seq=1, within=1.0, why="the first full-sized segment")
    tb.observe("first_segment_payload", len(first[TCP].payload))
    assert first[IP].flags.DF, "TCP segments are sent without DF"
    tb.send(tb.icmp_error(first.packet, mtu=1280, source=tb.router, **FRAG_NEEDED),
            why=f"router: fragmentation needed, next-hop MTU 1280, quoting frame "
                f"{first.frame.number}")
    again = flow.expect(seq=1, within=2.0, why="the first segment again, smaller")
    tb.observe("retransmitted_payload", len(again[TCP].payload))
    assert again[IP].len <= 1280, f"a {again[IP].len}-byte segment after MTU 1280"
    assert len(again[TCP].payload) <= 1280 - IP_AND_TCP_HEADERS
