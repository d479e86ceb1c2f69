"""UDP on a host (RFC 1122 4.1) and the socket API's UDP semantics (API rows).

Addresses and header fields of what the DUT sends, what an application can set and learn,
and how datagrams reach it through the socket API.
"""

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from conformance.case import Errno, Message, requirement
from conformance.lab.addressing import LINK_MTU, TESTER2
from conformance.targets.dut import Dut
from conformance.testbench.bench import ANSWER_S, Testbench, step
from conformance.testbench.scenarios import bound_socket, connected_socket
from conformance.testbench.udp import DELIVER, PORT, SEND, TESTER_PORT, datagram, delivered

DISCARD = 9
BROADCAST = "192.0.2.255"
ANSWER_MS = int(ANSWER_S * 1000)
UNBOUND_SENDERS = 20
# Ephemeral port ranges stacks are known to use, narrowest first (a stack's choice).
KNOWN_RANGES = {
    "32768-60999 (Linux ip_local_port_range)": (32768, 60999),
    "49152-65535 (IANA, RFC 6335)": (49152, 65535),
    "1024-65535 (all unprivileged ports)": (1024, 65535),
}


def sent_by(dut: Dut, tb: Testbench, sock: int, data: bytes = b"hello") -> IP:
    dut.sendto(sock, data, tb.ip, DISCARD)
    return tb.expect(IP(dst=tb.ip) / UDP(dport=DISCARD), within=ANSWER_S, why="the datagram")[IP]


def queued(dut: Dut, tb: Testbench, sock: int) -> None:
    """Every datagram sent so far is in the socket's queue: the DUT handles frames in order,
    so once it answers a barrier echo request, those before it have been delivered."""
    with step(DELIVER, "the datagrams sent to the socket are delivered"):
        tb.pass_barrier(tb.echo_barrier(), "the datagrams before it have been delivered")
        assert dut.poll(sock, ["POLLIN"], ANSWER_MS) == ["POLLIN"], "nothing delivered"


# ---- what the DUT sends ----------------------------------------------------------------


@requirement("RFC1122-3.2.1.7a", "RFC1122-3.2.1.6a", "RFC1122-3.2.1.3c", "RFC1122-4.1.3.6b")
def test_sent_datagram_has_sane_defaults(dut: Dut, tb: Testbench) -> None:
    """A datagram the DUT sends has its own address as source, a nonzero TTL and TOS zero."""
    ip = sent_by(dut, tb, dut.socket("udp"))
    tb.observe("default_ttl", ip.ttl)
    assert ip.src == dut.ip, f"sent from {ip.src}"
    assert ip.ttl > 0, "sent with TTL 0"
    assert ip.tos == 0, f"default TOS {ip.tos:#x}"


@requirement("RFC1122-3.2.1.7c", "RFC1122-3.2.1.6a", "RFC1122-4.1.4b")
def test_application_sets_ttl_and_tos(dut: Dut, tb: Testbench) -> None:
    """TTL and TOS set on the socket appear in the datagrams it sends."""
    sock = dut.socket("udp")
    dut.setsockopt(sock, "IP_TTL", 7)
    dut.setsockopt(sock, "IP_TOS", 0x10)
    ip = sent_by(dut, tb, sock)
    assert (ip.ttl, ip.tos) == (7, 0x10), f"TTL {ip.ttl}, TOS {ip.tos:#x}"


@requirement("RFC1122-4.1.3.5b", "RFC1122-4.1.3.6b")
def test_application_chooses_the_local_address(dut: Dut, tb: Testbench) -> None:
    """A socket bound to the DUT's address and a port sends from exactly those."""
    ip = sent_by(dut, tb, bound_socket(dut, addr=dut.ip))
    assert (ip.src, ip[UDP].sport) == (dut.ip, PORT)


@requirement("RFC1122-4.1.3.5c", "RFC1122-4.1.3.5d")
def test_wildcard_socket_learns_the_address_chosen(dut: Dut, tb: Testbench) -> None:
    """A socket bound to the wildcard, once connected, sends from an address the DUT chose
    (a MUST) and names it (getsockname: a SHOULD)."""
    sock = bound_socket(dut)
    dut.connect(sock, tb.ip, DISCARD)
    dut.send(sock, b"hello")
    sent = tb.expect(IP(dst=tb.ip) / UDP(dport=DISCARD), within=ANSWER_S, why="the datagram")
    assert sent[IP].src == dut.ip
    # RFC 1122 4.1.3.5: "There SHOULD be a way to communicate the chosen source address up
    # to the application layer": judged at that level, after the MUST held.
    with step("RFC1122-4.1.3.5d", "getsockname names the address the datagram came from"):
        named = dut.getsockname(sock)
        assert named == (dut.ip, PORT), f"getsockname names {named}"


@requirement("RFC1122-3.3.3c")
def test_application_learns_the_maximum_datagram_size(dut: Dut, tb: Testbench) -> None:
    """A connected socket reports the MTU to its peer (the link's, 1500)."""
    sock = connected_socket(dut, tb.ip, DISCARD)
    assert dut.getsockopt(sock, "IP_MTU") == LINK_MTU


@requirement("API-UDP-e")
def test_unbound_socket_gets_an_ephemeral_port(dut: Dut, tb: Testbench) -> None:
    """Twenty unbound sockets that send are given distinct ports, each the one getsockname
    names, from the stack's ephemeral range: the narrowest known range holding them all is
    observed (the numbers themselves differ between runs; the capture has them)."""
    ports = []
    for number in range(UNBOUND_SENDERS):
        sock = dut.socket("udp")
        with step(SEND, f"unbound socket {number + 1} of {UNBOUND_SENDERS} sends a datagram"):
            port = sent_by(dut, tb, sock)[UDP].sport
        with step("RFC1122-4.1.3.5d", "getsockname names the port the datagram came from"):
            assert dut.getsockname(sock)[1] == port, f"getsockname: {dut.getsockname(sock)}"
        ports.append(port)
    with step(DELIVER, "sockets open at once have distinct ports"):
        assert len(set(ports)) == len(ports), f"ports handed out twice: {sorted(ports)}"
    lowest, highest = min(ports), max(ports)
    # RFC 6335 6: the range is the host's choice.
    tb.observe("ephemeral_range", next(
        (name for name, (low, high) in KNOWN_RANGES.items() if low <= lowest <= highest <= high),
        "other (no known range holds them all)"), choice=True)


@requirement("API-UDP-h")
def test_broadcast_needs_so_broadcast(dut: Dut, tb: Testbench) -> None:
    """Sending to the broadcast address fails with EACCES until SO_BROADCAST is set."""
    sock = dut.socket("udp")
    # A stack without the permission (lwIP built without IP_SOF_BROADCAST, which sends
    # broadcasts whatever the option says) answers `unsupported` here: not applicable.
    tb.observe("so_broadcast_default", dut.getsockopt(sock, "SO_BROADCAST"))
    assert dut.sendto(sock, b"all", BROADCAST, DISCARD) == Errno("EACCES")
    dut.setsockopt(sock, "SO_BROADCAST", 1)
    assert dut.sendto(sock, b"all", BROADCAST, DISCARD) == 3
    sent = tb.expect(IP(dst=BROADCAST) / UDP(dport=DISCARD), within=ANSWER_S,
                     why="the broadcast")
    assert sent[Ether].dst == "ff:ff:ff:ff:ff:ff"


# ---- receiving through the socket API ----------------------------------------------------


@requirement("API-UDP-a")
def test_connected_socket_receives_only_from_its_peer(dut: Dut, tb: Testbench) -> None:
    """A connected socket drops datagrams from another host or another port of its peer."""
    sock = bound_socket(dut)
    dut.connect(sock, tb.ip, TESTER_PORT)
    tb.send(datagram(tb, b"other host", source=TESTER2.ip), why="from another host")
    tb.send(datagram(tb, b"other port", sport=TESTER_PORT + 7), why="from another port")
    tb.send(datagram(tb, b"peer"), why="from the peer")
    assert delivered(dut, sock) == b"peer"
    assert dut.recv(sock, 100, ["MSG_DONTWAIT"]) == Errno("EAGAIN")


def two_datagrams_queued(dut: Dut, tb: Testbench) -> int:
    """A bound socket with a 100-octet and then a 50-octet datagram queued."""
    sock = bound_socket(dut)
    tb.send(datagram(tb, b"a" * 100), why="a 100-octet datagram")
    tb.send(datagram(tb, b"b" * 50), why="a 50-octet datagram")
    queued(dut, tb, sock)
    return sock


@requirement("API-UDP-b")
def test_one_datagram_per_receive_truncated_with_msg_trunc(dut: Dut, tb: Testbench) -> None:
    """Each receive returns one datagram; a longer one is cut to the buffer, with MSG_TRUNC."""
    sock = two_datagrams_queued(dut, tb)
    first = dut.recvmsg(sock, 60, ["MSG_DONTWAIT"])
    assert isinstance(first, Message), f"{first}"
    assert (first.data, "MSG_TRUNC" in first.flags) == (b"a" * 60, True)
    second = dut.recvmsg(sock, 100, ["MSG_DONTWAIT"])
    assert isinstance(second, Message), f"{second}"
    assert (second.data, second.flags) == (b"b" * 50, [])
    assert second.address == (tb.ip, TESTER_PORT)


@requirement("API-UDP-c")
def test_msg_peek_leaves_the_datagram(dut: Dut, tb: Testbench) -> None:
    """MSG_PEEK returns the next datagram and the next receive returns it again."""
    sock = bound_socket(dut)
    tb.send(datagram(tb, b"look"), why="a datagram")
    tb.send(datagram(tb, b"later"), why="a second datagram")
    queued(dut, tb, sock)
    assert dut.recv(sock, 100, ["MSG_PEEK", "MSG_DONTWAIT"]) == b"look"
    assert dut.recv(sock, 100, ["MSG_DONTWAIT"]) == b"look"
    assert delivered(dut, sock) == b"later"


@requirement("API-UDP-d")
def test_fionread_reports_what_is_queued(dut: Dut, tb: Testbench) -> None:
    """What FIONREAD reports with a 100- and a 50-octet datagram queued: observed."""
    sock = two_datagrams_queued(dut, tb)
    reported = dut.ioctl(sock, "FIONREAD")
    tb.observe("fionread", {100: "next datagram", 150: "all queued"}.get(reported, reported),
               choice=True)  # the API's choice; Linux: the next datagram


@requirement("API-UDP-f")
def test_dontwait_receive_on_empty_socket_fails_with_eagain(dut: Dut, tb: Testbench) -> None:
    """A receive with MSG_DONTWAIT and nothing queued fails at once with EAGAIN."""
    sock = bound_socket(dut)
    assert dut.recv(sock, 100, ["MSG_DONTWAIT"]) == Errno("EAGAIN")


@requirement("API-UDP-g")
def test_udp_cork_joins_sends_into_one_datagram(dut: Dut, tb: Testbench) -> None:
    """Sends under UDP_CORK leave as one datagram when the cork is removed."""
    sock = connected_socket(dut, tb.ip, DISCARD)
    dut.setsockopt(sock, "UDP_CORK", 1)
    dut.send(sock, b"first ")
    dut.send(sock, b"second")
    tb.expect_none(IP(dst=tb.ip) / UDP(dport=DISCARD), why="corked: nothing yet")
    dut.setsockopt(sock, "UDP_CORK", 0)
    sent = tb.expect(IP(dst=tb.ip) / UDP(dport=DISCARD), within=ANSWER_S, why="one datagram")
    assert bytes(sent[UDP].payload) == b"first second"
