"""Path MTU discovery (RFC 1191) for UDP and TCP.

The DUT talks to a host beyond the lab's router (198.51.100.7); the router answers with
ICMP Destination Unreachable, Fragmentation Needed (type 3, code 4) carrying a Next-Hop
MTU. The DUT handles frames in order: once it answers a barrier echo request sent after
the ICMP, it has processed the ICMP.
"""

from typing import Any

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.packet import Packet

from conformance.case import Errno, requirement, tcp_segment_choices
from conformance.lab.addressing import LINK_MTU
from conformance.targets.dut import Dut
from conformance.testbench.bench import ANSWER_S, Received, Testbench, step
from conformance.testbench.scenarios import connected_socket, open_passive
from conformance.testbench.udp import SEND, queued_error

DISCARD = 9
FRAG_NEEDED = {"type": 3, "code": 4}
IP_AND_UDP_HEADERS = 28
IP_AND_TCP_HEADERS = 40
MODES = ("IP_PMTUDISC_DONT", "IP_PMTUDISC_WANT", "IP_PMTUDISC_DO", "IP_PMTUDISC_PROBE")
LOWERED_MTU = 1280


def connected_udp(dut: Dut, tb: Testbench, *options: tuple[str, object]) -> int:
    return connected_socket(dut, tb.remote.ip, DISCARD, options=options)


def send_datagram(dut: Dut, tb: Testbench, sock: int, size: int) -> Received:
    """A datagram of `size` data octets the connected socket sends (a set-up step)."""
    with step(SEND, f"the socket sends a {size}-byte datagram beyond the router"):
        dut.send(sock, b"x" * size)
        return tb.expect(IP(dst=tb.remote.ip) / UDP(dport=DISCARD), within=ANSWER_S,
                         why=f"a {size}-byte datagram for the host beyond the router")


def datagram_too_big(dut: Dut, tb: Testbench, sock: int, about: Received, mtu: int) -> None:
    """The router reports `about` too big for a next hop of `mtu`; wait until processed."""
    tb.send(tb.icmp_error(about.packet, mtu=mtu, source=tb.router, **FRAG_NEEDED),
            why=f"router: fragmentation needed, next-hop MTU {mtu}, quoting frame "
                f"{about.frame.number}")
    tb.pass_barrier(tb.echo_barrier(), f"the Datagram Too Big (MTU {mtu}) has been processed")
    tb.observe(f"poll_after_mtu_{mtu}", dut.poll(sock, ["POLLIN"], timeout_ms=0))
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
    _, error = queued_error(dut, sock, 2000)
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
    tb.expect_none(IP(dst=tb.remote.ip, proto=17), why="an oversize datagram must not be sent")
    fitting = 1280 - IP_AND_UDP_HEADERS
    assert dut.send(sock, b"x" * fitting) == fitting
    datagram = tb.expect(IP(dst=tb.remote.ip) / UDP(dport=DISCARD), within=ANSWER_S,
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
    connection = open_passive(dut, tb, 5001, sport=40001, source=tb.remote, reuseaddr=False)
    flow = connection.flow
    dut.send(connection.sock, b"y" * 4000)
    first = flow.expect(seq=1, within=ANSWER_S, why="the first full-sized segment")
    tb.observe("first_segment_payload", len(first[TCP].payload))
    tb.observe("first_segment_df", bool(first[IP].flags.DF), choice=True)
    if not first[IP].flags.DF:
        # RFC 1191 2: only a datagram with DF draws Datagram Too Big (a router fragments the
        # others); a host that does not use path MTU discovery (RFC 1122 leaves it out,
        # RFC1191-2 is a MAY) meets no such message.
        pytest.skip("the DUT's segments carry no DF (no path MTU discovery): a router "
                    "fragments them and sends no Datagram Too Big")
    tb.send(tb.icmp_error(first.packet, mtu=1280, source=tb.router, **FRAG_NEEDED),
            why=f"router: fragmentation needed, next-hop MTU 1280, quoting frame "
                f"{first.frame.number}")
    again = flow.expect(seq=1, within=ANSWER_S, why="the first segment again, smaller")
    tb.observe("retransmitted_payload", len(again[TCP].payload))
    assert again[IP].len <= 1280, f"a {again[IP].len}-byte segment after MTU 1280"
    assert len(again[TCP].payload) <= 1280 - IP_AND_TCP_HEADERS


# ---- each IP_MTU_DISCOVER mode after a lowered path MTU (ip(7)) --------------------------


def what_leaves(dut: Dut, tb: Testbench, sock: int, size: int) -> dict[str, Any]:
    """Send `size` data octets on the connected socket: what the call returned, and the
    frames (a datagram, or its fragments) that left for the host beyond the router."""
    result = dut.send(sock, b"x" * size)
    pieces: list[Packet] = []
    if result == size:
        first = tb.expect(IP(dst=tb.remote.ip, proto=17, frag=0), within=ANSWER_S,
                          why=f"the {size}-byte datagram, or its first fragment")
        pieces.append(first.packet)
        while pieces[-1][IP].flags.MF:
            pieces.append(tb.expect(IP(dst=tb.remote.ip, proto=17, id=first[IP].id),
                                    within=ANSWER_S, why="its next fragment").packet)
    else:
        tb.expect_none(IP(dst=tb.remote.ip, proto=17), why=f"nothing of a send that "
                                                          f"returned {result} leaves")
    return {"send": result if isinstance(result, int) else str(result),
            "lengths": [piece[IP].len for piece in pieces],
            "df": [bool(piece[IP].flags.DF) for piece in pieces]}


@requirement("RFC1191-3b", "API-IP-a", "RFC1122-3.3.3b")
def test_pmtu_discovery_modes_after_a_lowered_path_mtu(dut: Dut, tb: Testbench) -> None:
    """After a Datagram Too Big lowers the path MTU to 1280, what each IP_MTU_DISCOVER mode
    does with a 1428-octet datagram and with one of 1280: observed (Linux, ip(7): DONT
    fragments without DF, WANT fragments the oversize one and sets DF on the fitting one,
    DO refuses the oversize one with EMSGSIZE, PROBE ignores the path MTU and sets DF).
    Judged: no mode but PROBE, which probes for a larger MTU on purpose, sends a datagram
    above the path MTU with DF (RFC 1191 3); DO refuses the oversize send and sends
    nothing of it; DONT never sets DF (ip(7)); nothing exceeds the link MTU."""
    lowering = connected_udp(dut, tb)
    datagram_too_big(dut, tb, lowering, send_datagram(dut, tb, lowering, 1400), mtu=LOWERED_MTU)
    oversize, fitting = 1400, LOWERED_MTU - IP_AND_UDP_HEADERS
    problems = []
    for mode in MODES:
        sock = connected_udp(dut, tb, ("IP_MTU_DISCOVER", mode))
        tb.observe(f"{mode}.ip_mtu", dut.getsockopt(sock, "IP_MTU"))
        for label, size in (("oversize", oversize), ("fitting", fitting)):
            sent = what_leaves(dut, tb, sock, size)
            tb.observe(f"{mode}.{label}", sent)
            # Consume an error a refused send or a local EMSGSIZE left pending.
            dut.getsockopt(sock, "SO_ERROR")
            frames = list(zip(sent["lengths"], sent["df"], strict=True))
            if any(length > LINK_MTU for length, _ in frames):
                problems.append(f"{mode}, {label}: a frame above the link MTU: {frames}")
            if mode != "IP_PMTUDISC_PROBE" and any(
                    df and length > LOWERED_MTU for length, df in frames):
                problems.append(f"{mode}, {label}: DF set on a frame above the path MTU "
                                f"{LOWERED_MTU}: {frames}")
            if mode == "IP_PMTUDISC_DONT" and any(df for _, df in frames):
                problems.append(f"{mode}, {label}: DF set: {frames}")
            if mode == "IP_PMTUDISC_DO" and label == "oversize" and sent["send"] != "EMSGSIZE":
                problems.append(f"{mode}, oversize: the send returned {sent['send']}, "
                                "not EMSGSIZE")
            if label == "fitting" and sent["send"] != fitting:
                problems.append(f"{mode}, fitting: the send returned {sent['send']}")
    assert not problems, "; ".join(problems)
