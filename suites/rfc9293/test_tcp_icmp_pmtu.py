"""ICMP errors and path MTU discovery for TCP (RFC 9293 3.7.2, 3.9.2.2, 3.9.2.3; RFC 1122
4.2.3.9, 4.2.3.10; RFC 1191).

Hard errors (protocol or port unreachable) end a connection attempt; soft errors
(network or host unreachable, source route failed, time exceeded, parameter problem)
never abort a connection; a Datagram Too Big lowers the size of the segments the DUT
sends, retransmissions included. Every ICMP message quotes a segment the DUT really sent.
"""

import pytest
from scapy.layers.inet import ICMP, IP, TCP

from conformance.case import Errno, Unsupported, requirement, tcp_segment_choices
from conformance.targets.dut import Dut, PendingCall
from conformance.testbench.bench import ANSWER_S, Received, Testbench, step
from conformance.testbench.scenarios import (
    HANDSHAKE,
    Connection,
    knows_the_tester,
    listen,
    open_active,
    open_passive,
)
from conformance.testbench.tcp import TcpFlow
from conformance.testbench.tcp_stream import data_of, next_data, next_data_or_none, payload

pytestmark = tcp_segment_choices

PORT = 5110
FRAG_NEEDED = {"type": 3, "code": 4}


def connection_attempt(dut: Dut, tb: Testbench) -> tuple[int, Received, PendingCall]:
    """A blocking connect from the DUT to the tester (whose address it has resolved),
    whose SYN the tester leaves unanswered. Returns the socket, the SYN and the pending
    connect call."""
    sock = dut.socket("tcp")
    knows_the_tester(tb)
    connecting = dut.start("connect", sock=sock, addr=tb.ip, port=PORT)
    with step(HANDSHAKE, "connect() sends a SYN"):
        syn = tb.expect(IP(src=dut.ip, dst=tb.ip) / TCP(dport=PORT, flags="S"),
                        within=ANSWER_S, why="the DUT's SYN")
    return sock, syn, connecting


def answer_with_icmp(tb: Testbench, offending: Received, *, type: int, code: int,
                     what: str) -> None:
    error = tb.icmp_error(offending.packet, type=type, code=code, source=tb.router)
    tb.send(error, why=f"router: {what}, quoting frame {offending.frame.number}")


HARD_ERRORS = [
    pytest.param(2, "ENOPROTOOPT", id="protocol-unreachable"),
    pytest.param(3, "ECONNREFUSED", id="port-unreachable"),
]


@requirement("RFC9293-3.9.2.2c", "RFC9293-3.9.2.2a", "RFC1122-4.2.3.9c")
@pytest.mark.parametrize(("code", "errno_name"), HARD_ERRORS)
def test_hard_error_aborts_a_connection_attempt(
    dut: Dut, tb: Testbench, code: int, errno_name: str
) -> None:
    """A Destination Unreachable with a hard code (2 protocol, 3 port) for the DUT's SYN
    ends the connect() with an error, and the SYN is not retransmitted."""
    _, syn, connecting = connection_attempt(dut, tb)
    answer_with_icmp(tb, syn, type=3, code=code, what=f"destination unreachable code {code}")
    assert connecting.wait(ANSWER_S), (
        f"connect() still blocked {ANSWER_S} s after a hard ICMP error")
    result = connecting.result(timeout=1.0)
    tb.observe("connect_result", str(result))
    assert isinstance(result, Errno), f"connect() returned {result} after a hard ICMP error"
    tb.observe("errno_is_the_usual_one", result == Errno(errno_name))
    # The SYN retransmission timer (about 1 s) would fire within this window.
    tb.expect_none(IP(src=dut.ip) / TCP(dport=PORT, flags="S"), within=1.5,
                   why="the attempt is over: no SYN retransmission")


@requirement("RFC9293-3.9.2.2a", "RFC1122-4.2.3.9a")
def test_icmp_error_reaches_only_the_connection_it_quotes(dut: Dut, tb: Testbench) -> None:
    """A port unreachable quoting a SYN of another port pair leaves the connection attempt
    alone; the one quoting the DUT's own SYN ends it."""
    sock, syn, connecting = connection_attempt(dut, tb)
    other = syn.packet.copy()
    other[TCP].sport = syn[TCP].sport + 1 if syn[TCP].sport < 65535 else 1024
    tb.send(tb.icmp_error(other, type=3, code=3),
            why=f"port unreachable quoting frame {syn.frame.number} with another source port")
    # The barrier's answer shows the DUT has processed the error; a DUT call after it
    # shows whether it ended the attempt (a pending error, or connect() returned).
    tb.pass_barrier(tb.echo_barrier(), "the error about another connection was processed")
    pending_error = dut.getsockopt(sock, "SO_ERROR")
    tb.observe("so_error_after_the_other_error", str(pending_error))
    assert pending_error is None and not connecting.done(), (
        "an ICMP error about another connection ended it")
    answer_with_icmp(tb, syn, type=3, code=3, what="port unreachable for the real SYN")
    assert connecting.wait(ANSWER_S), "connect() still blocked after its own port unreachable"
    tb.observe("connect_result", str(connecting.result(timeout=1.0)))


@requirement("RFC9293-3.9.2.2c", "RFC1122-4.2.3.9c")
def test_hard_error_aborts_an_established_connection(dut: Dut, tb: Testbench) -> None:
    """A port unreachable about an established connection's data aborts it: the
    application's next call fails (RFC 5461 4.1 notes many stacks ignore it instead)."""
    connection = open_passive(dut, tb, PORT, sport=43003)
    sent = dut_sends(connection, b"x" * 100, dut, "data the ICMP error will quote")
    answer_with_icmp(tb, sent, type=3, code=3, what="port unreachable")
    events = dut.poll(connection.sock, ["POLLIN"], timeout_ms=int(ANSWER_S * 1000))
    tb.observe("poll_after_icmp", events)
    result = dut.recv(connection.sock, 100, ["MSG_DONTWAIT"])
    tb.observe("recv_after_icmp", str(result))
    assert isinstance(result, Errno) and result != Errno("EAGAIN"), (
        f"the connection goes on after a port unreachable: recv {result}")


SOFT_ERRORS = [
    pytest.param(3, 0, id="net-unreachable"),
    pytest.param(3, 1, id="host-unreachable"),
    pytest.param(3, 5, id="source-route-failed"),
    pytest.param(11, 0, id="time-exceeded"),
    pytest.param(12, 0, id="parameter-problem"),
]


@requirement("RFC1122-4.2.3.9d")
def test_soft_error_does_not_end_a_connection_attempt(dut: Dut, tb: Testbench) -> None:
    """A host unreachable for the DUT's SYN is a soft error: the attempt goes on and the
    SYN is retransmitted (RFC 5461 4.1 notes stacks that end it instead)."""
    _, syn, connecting = connection_attempt(dut, tb)
    answer_with_icmp(tb, syn, type=3, code=1, what="host unreachable")
    # The SYN retransmission timer (about 1 s) fires within this window.
    retransmitted = tb.expect_or_none(
        IP(src=dut.ip) / TCP(dport=PORT, flags="S"), within=1.0 + ANSWER_S,
        why="the SYN again: a soft error does not end the attempt")
    ended = connecting.done()
    tb.observe("attempt_ended", ended)
    if ended:
        tb.observe("connect_result", str(connecting.result(timeout=1.0)))
    assert not ended, "a host unreachable (a soft error) ended the connection attempt"
    assert retransmitted is not None, "the SYN was not retransmitted after a soft error"


def dut_sends(connection: Connection, data: bytes, dut: Dut, why: str) -> Received:
    assert dut.send(connection.sock, data) == len(data)
    return next_data(connection.flow, within=ANSWER_S, why=why)


def still_alive(dut: Dut, connection: Connection, sent: Received, tb: Testbench) -> None:
    """The connection works after an ICMP error: the data is (re)sent and acknowledged,
    and data from the tester reaches the application."""
    flow = connection.flow
    start = flow.relative_seq(sent)
    retransmission = next_data_or_none(flow, within=2.0, why="the data again, not aborted")
    if retransmission is not None:
        tb.observe("retransmitted", flow.relative_seq(retransmission) == start)
    flow.rcv_nxt = start + len(payload(sent))
    flow.send("PA", b"still there?", why="ACK of the data, with data of the tester's own")
    received = dut.recv(connection.sock, 100, [])
    assert received == b"still there?", f"recv after the ICMP error: {received}"


@requirement("RFC9293-3.9.2.2b", "RFC9293-3.9.2.2a", "RFC1122-4.2.3.9a", "RFC1122-4.2.3.9d")
@pytest.mark.parametrize(("type_", "code"), SOFT_ERRORS)
def test_soft_error_does_not_abort_an_established_connection(
    dut: Dut, tb: Testbench, type_: int, code: int
) -> None:
    """A soft ICMP error (destination unreachable 0, 1, 5; time exceeded; parameter
    problem) about an established connection's data does not abort the connection."""
    connection = open_passive(dut, tb, PORT, sport=43000)
    sent = dut_sends(connection, b"x" * 100, dut, "data the ICMP error will quote")
    answer_with_icmp(tb, sent, type=type_, code=code, what=f"ICMP type {type_} code {code}")
    tb.observe("so_error_after_icmp", str(dut.getsockopt(connection.sock, "SO_ERROR")))
    still_alive(dut, connection, sent, tb)
    # Whether a soft error shows without asking (IP_RECVERR) is the API's choice: recorded.
    tb.observe("so_error_at_the_end", str(dut.getsockopt(connection.sock, "SO_ERROR")))


@requirement("RFC9293-3.9.2.2d", "RFC1122-4.2.3.9e", "RFC9293-3.9.1.8a")
def test_soft_error_is_made_available_to_the_application(dut: Dut, tb: Testbench) -> None:
    """A host unreachable about an established connection reaches the application that
    asked for error reports (IP_RECVERR on Linux): in SO_ERROR or the error queue."""
    connection = open_passive(dut, tb, PORT, sport=43001)
    dut.setsockopt(connection.sock, "IP_RECVERR", 1)
    sent = dut_sends(connection, b"x" * 100, dut, "data the ICMP error will quote")
    answer_with_icmp(tb, sent, type=3, code=1, what="host unreachable")
    events = dut.poll(connection.sock, ["POLLIN"], timeout_ms=int(ANSWER_S * 1000))
    tb.observe("poll_after_icmp", events)
    so_error = dut.getsockopt(connection.sock, "SO_ERROR")
    queued = dut.recvmsg(connection.sock, 100, ["MSG_ERRQUEUE", "MSG_DONTWAIT"])
    tb.observe("so_error", str(so_error))
    tb.observe("errqueue", str(queued.errqueue.errno) if not isinstance(queued, Errno)
               and queued.errqueue else str(queued))
    reported = so_error == "EHOSTUNREACH" or (
        not isinstance(queued, Errno) and queued.errqueue is not None
        and queued.errqueue.errno == "EHOSTUNREACH")
    assert reported, "the host unreachable was not reported to the application"


@requirement("RFC9293-3.9.2.2e")
def test_source_quench_is_silently_discarded(dut: Dut, tb: Testbench) -> None:
    """A Source Quench about an established connection's data is ignored: no error for
    the application (not even with IP_RECVERR), and the connection carries on."""
    connection = open_passive(dut, tb, PORT, sport=43002)
    dut.setsockopt(connection.sock, "IP_RECVERR", 1)
    sent = dut_sends(connection, b"x" * 100, dut, "data the Source Quench will quote")
    answer_with_icmp(tb, sent, type=4, code=0, what="source quench")
    tb.pass_barrier(tb.echo_barrier(), "the Source Quench was processed")
    events = dut.poll(connection.sock, ["POLLIN"], timeout_ms=0)
    assert "POLLERR" not in events, f"poll after a Source Quench: {events}"
    queued = dut.recvmsg(connection.sock, 100, ["MSG_ERRQUEUE", "MSG_DONTWAIT"])
    assert queued == Errno("EAGAIN"), f"the Source Quench was reported: {queued}"
    still_alive(dut, connection, sent, tb)


# ---- path MTU discovery -------------------------------------------------------------------

NEXT_HOP_MTU = 1280
DATA = bytes(range(256)) * 16  # 4096 octets, several full segments


def full_segments_to_remote(dut: Dut, tb: Testbench) -> tuple[Connection, list[Received]]:
    """The DUT connects to a host beyond the router (MSS 1460) and sends DATA; the tester
    holds its ACKs, so the first flight stays unacknowledged."""
    connection = open_active(dut, tb, PORT, peer=tb.remote)
    assert dut.send(connection.sock, DATA) == len(DATA)
    first = next_data(connection.flow, within=ANSWER_S, why="the first full-sized segment")
    return connection, [first]


def too_big(tb: Testbench, segment: Received) -> None:
    tb.send(tb.icmp_error(segment.packet, mtu=NEXT_HOP_MTU, source=tb.router, **FRAG_NEEDED),
            why=f"router: fragmentation needed, next-hop MTU {NEXT_HOP_MTU}, quoting frame "
                f"{segment.frame.number}")


def collect_everything(flow: TcpFlow, segments: list[Received], length: int) -> None:
    """Read data segments, acknowledging in order, until the whole stream has arrived."""
    while flow.rcv_nxt < 1 + length:
        # Not observed segment by segment: how the stream is cut and where PSH goes vary
        # from run to run; the cases observe what they judge.
        segment = next_data(flow, within=3.0, why="the rest of the data", observed=False)
        segments.append(segment)
        flow.send("A", why=f"ACK up to {flow.rcv_nxt}")


@requirement("RFC1191-3a", "RFC1191-3b", "RFC9293-3.7.1e")
def test_datagram_too_big_lowers_the_segment_size(dut: Dut, tb: Testbench) -> None:
    """After a Datagram Too Big (next-hop MTU 1280) for a full-sized segment, the DUT sends
    that data again, and everything after it, in datagrams of at most 1280 octets; the
    stream arrives intact."""
    connection, segments = full_segments_to_remote(dut, tb)
    flow = connection.flow
    big = segments[0]
    if big[IP].len <= NEXT_HOP_MTU:
        # A sender probing the path from a small MSS (RFC 4821) never sends a datagram
        # the router would refuse: the premise does not arise.
        pytest.skip(f"the DUT's full segments are {big[IP].len} octets, within the "
                    f"{NEXT_HOP_MTU}-octet next-hop MTU: no Datagram Too Big to answer")
    if not big[IP].flags.DF:
        # RFC 1191 2: only a datagram with DF draws Datagram Too Big (a router fragments the
        # others); a host without path MTU discovery (optional: test_tcp_segments_carry_df
        # records the choice) meets no such message.
        pytest.skip("the DUT's segments carry no DF (no path MTU discovery): a router "
                    "fragments them and sends no Datagram Too Big")
    too_big(tb, big)
    lost_seq = flow.relative_seq(big)
    flow.rcv_nxt = lost_seq  # take the stream again from the lost segment
    retransmission = flow.expect(seq=lost_seq, within=ANSWER_S,
                                 why="the quoted data sent again, smaller")
    # How soon it came is not judged (and holds the tester's own reaction to the segment).
    tb.observe("retransmission_ip_len", retransmission[IP].len)
    assert retransmission[IP].len <= NEXT_HOP_MTU, (
        f"retransmitted in a {retransmission[IP].len}-octet datagram after MTU {NEXT_HOP_MTU}")
    segments.append(retransmission)
    flow.send("A", why=f"ACK up to {flow.rcv_nxt}")
    collect_everything(flow, segments, len(DATA))
    after = [segment for segment in segments if segment.time_s >= retransmission.time_s]
    sizes = sorted({segment[IP].len for segment in after})
    # The largest is what is judged; the others are how the stream's end was cut (timing).
    tb.observe("largest_after", max(sizes))
    assert all(size <= NEXT_HOP_MTU for size in sizes), f"datagrams after the ICMP: {sizes}"
    assert data_of(segments, flow)[: len(DATA)] == DATA, "the stream arrived damaged"
    try:
        tb.observe("ip_mtu", dut.getsockopt(connection.sock, "IP_MTU"))
    except Unsupported:
        tb.observe("ip_mtu", "unsupported")


@requirement("RFC1191-2")
def test_tcp_segments_carry_df(dut: Dut, tb: Testbench) -> None:
    """TCP segments are sent with DF set (path MTU discovery in use): recorded."""
    connection = open_active(dut, tb, PORT, peer=tb.remote)
    sent = dut_sends(connection, b"x" * 100, dut, "a data segment")
    assert connection.syn is not None
    # RFC 1191 2, RFC 9293 3.7.2: setting DF on TCP segments is the sender's choice.
    tb.observe("syn_df", bool(connection.syn[IP].flags.DF), choice=True)
    tb.observe("data_df", bool(sent[IP].flags.DF), choice=True)


# ---- address validation (RFC 9293 3.9.2.3, RFC 1122 4.2.3.10) ----------------------------

INVALID_REMOTE = [
    pytest.param("192.0.2.255", id="directed-broadcast"),
    pytest.param("255.255.255.255", id="limited-broadcast"),
    pytest.param("224.0.0.1", id="multicast"),
]


@requirement("RFC9293-3.9.2.3a", "RFC1122-4.2.3.10a")
@pytest.mark.parametrize("address", INVALID_REMOTE)
def test_connect_to_broadcast_or_multicast_is_refused(
    dut: Dut, tb: Testbench, address: str
) -> None:
    """connect() to a broadcast or multicast address fails, and no SYN leaves the DUT (up
    to a barrier)."""
    sock = dut.socket("tcp")
    connecting = dut.start("connect", sock=sock, addr=address, port=PORT)
    # The call's end first, so that a SYN sent while it is still trying is in the window
    # whatever its timing against the barrier (a conformant stack returns at once).
    returned = connecting.wait(ANSWER_S)
    tb.expect_none(IP(src=dut.ip) / TCP(flags="S"), why="no SYN for it")
    assert returned, f"connect({address}) is still trying"
    result = connecting.result(timeout=ANSWER_S)
    tb.observe("connect_result", str(result))
    assert isinstance(result, Errno), f"connect({address}) returned {result}"


LISTENER_PORT = 5111


def listening(dut: Dut) -> tuple[int, PendingCall]:
    """A listener on every address of the DUT, with an accept() pending on it."""
    listener = listen(dut, LISTENER_PORT, 4, addr="0.0.0.0", reuseaddr=False)
    return listener, dut.start("accept", sock=listener)


def nothing_opened(dut: Dut, tb: Testbench, accepting: PendingCall, sport: int,
                   what: str) -> None:
    """The SYN just sent (`what`) drew no TCP segment and no ICMP error from the DUT up to
    a barrier, and the pending accept() did not return; then the control: the same SYN
    from the tester's own address is answered, and the connection accept() hands over
    is that one (the listener was working all along)."""
    # From any source address: a broken DUT may answer from the one the SYN was sent to.
    tb.expect_none(IP() / TCP(sport=LISTENER_PORT, dport=sport), why=f"nothing answers {what}")
    tb.expect_none(IP() / ICMP(), why=f"nor an ICMP error about {what}")
    assert not accepting.done(), f"accept() returned after {what}: {accepting.result(1.0)}"
    flow = TcpFlow(tb, tb.host, sport=sport, dport=LISTENER_PORT)
    with step(HANDSHAKE, "control: the listener answers a SYN from a valid source"):
        flow.send("S", options=[("MSS", 1460)], why="control: the same SYN from the tester")
        flow.expect_synack(within=ANSWER_S)
        flow.send("A", why="ACK completing the control handshake")
        accepted = accepting.result(timeout=ANSWER_S)
        assert not isinstance(accepted, Errno), f"accept failed: {accepted}"
    local = dut.getsockname(accepted[0])
    tb.observe("accepted", {"peer": list(accepted[1]), "local": str(local)})
    assert tuple(accepted[1]) == (tb.ip, sport) and tuple(local) == (dut.ip, LISTENER_PORT), (
        f"accept() handed over a connection from {accepted[1]} to {local}, not the control's")


SYN_DESTINATIONS = [
    pytest.param("192.0.2.255", "ff:ff:ff:ff:ff:ff", id="directed-broadcast"),
    pytest.param("255.255.255.255", "ff:ff:ff:ff:ff:ff", id="limited-broadcast"),
    pytest.param("224.0.0.1", "01:00:5e:00:00:01", id="multicast"),
]


@requirement("RFC9293-3.9.2.3c", "RFC1122-4.2.3.10c")
@pytest.mark.parametrize(("address", "link_destination"), SYN_DESTINATIONS)
def test_syn_to_broadcast_or_multicast_is_discarded(
    dut: Dut, tb: Testbench, address: str, link_destination: str
) -> None:
    """A SYN addressed to a broadcast or multicast address, for a listening port, is
    dropped silently: no SYN-ACK, no RST, no ICMP error, nothing accepted; the same SYN
    to the DUT's own address is then answered and accepted."""
    _, accepting = listening(dut)
    syn = IP(src=tb.ip, dst=address) / TCP(sport=43100, dport=LISTENER_PORT, flags="S",
                                           seq=1000, options=[("MSS", 1460)])
    tb.send(syn, why=f"SYN to {address}", link_destination=link_destination)
    nothing_opened(dut, tb, accepting, 43100, f"a SYN to {address}")


INVALID_SOURCES = [
    pytest.param("224.0.0.5", id="multicast"),
    pytest.param("255.255.255.255", id="limited-broadcast"),
    pytest.param("127.0.0.1", id="loopback"),
    pytest.param("0.0.0.0", id="this-host"),
]


@requirement("RFC9293-3.9.2.3b", "RFC1122-4.2.3.10b")
@pytest.mark.parametrize("source", INVALID_SOURCES)
def test_syn_from_an_invalid_source_is_ignored(dut: Dut, tb: Testbench, source: str) -> None:
    """A SYN from an address no host can have (multicast, broadcast, loopback, 0.0.0.0)
    draws no answer on the wire and opens nothing: accept() hands over only the
    connection that the same SYN from the tester's address then opens."""
    _, accepting = listening(dut)
    flow = TcpFlow(tb, tb.host, sport=43101, dport=LISTENER_PORT, source_ip=source)
    flow.send("S", options=[("MSS", 1460)], why=f"SYN from the invalid source {source}")
    nothing_opened(dut, tb, accepting, 43101, f"a SYN from {source}")
