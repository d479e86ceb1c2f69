"""Opening connections (RFC 9293 3.4, 3.5, 3.10.7.2-3; RFC 1122 4.2.2.6-4.2.2.11).

Passive opens have the tester connect to a DUT listener; active opens have the DUT
connect to the tester, which plays the server (or another client, for simultaneous open).
Every segment the DUT sends in a handshake is checked for a correct checksum and
well-formed options.
"""

import itertools

from scapy.layers.inet import IP, TCP

from conformance.case import Errno, Received, requirement, tcp_segment_choices
from conformance.targets.dut import Dut
from conformance.testbench.bench import Testbench
from conformance.testbench.tcp import MOD, TcpFlow
from conformance.testbench.tcp_states import (
    checksum_is_valid,
    expect_dut_syn,
    flow_for_syn,
    listen,
    open_active,
    option_problems,
)

pytestmark = tcp_segment_choices

PORT = 5020
QUIET_S = 0.5
HALF = 1 << 31


def well_formed(received: Received) -> None:
    """RFC 9293 3.1: MUST-2 (checksum), MUST-68/69 and 3.2 MUST-65 (options)."""
    assert checksum_is_valid(received), f"bad checksum on frame {received.frame.number}"
    problems = option_problems(received)
    assert not problems, f"frame {received.frame.number}: {problems}"


def mss_of(received: Received) -> int | None:
    return next((int(value) for name, value in received[TCP].options if name == "MSS"), None)


@requirement("RFC9293-3.5c", "RFC9293-3.1c", "RFC9293-3.1e", "RFC9293-3.1i",
             "RFC1122-4.2.2.6a", "RFC1122-4.2.2.6b", "RFC1122-4.2.2.6c", "RFC1122-4.2.2.7a",
             "RFC9293-3.10.6a")
def test_passive_open(dut: Dut, tb: Testbench) -> None:
    """A SYN to a listener draws a SYN-ACK acknowledging ISN+1 with an MSS option; the
    final ACK completes the connection, which accept hands over with the peer's socket."""
    listener = listen(dut, PORT)
    accepting = dut.start("accept", sock=listener)
    flow = TcpFlow(tb, tb.host, sport=43001, dport=PORT)
    synack = flow.connect()
    well_formed(synack)
    tb.observe("synack_mss", mss_of(synack))
    assert mss_of(synack) is not None, "the SYN-ACK carries no MSS option"
    accepted = accepting.result(timeout=2.0)
    assert isinstance(accepted, tuple), f"accept: {accepted}"
    assert accepted[1] == (tb.ip, 43001), f"accept names the peer {accepted[1]}"
    assert dut.getpeername(accepted[0]) == (tb.ip, 43001)  # STATUS: the remote socket
    assert dut.getsockname(accepted[0]) == (dut.ip, PORT)


@requirement("RFC9293-3.5c", "RFC9293-3.1c", "RFC9293-3.1i", "RFC9293-3.9.1.1d",
             "RFC9293-3.9.1.1e", "RFC1122-4.2.2.6a", "RFC1122-4.2.2.7a")
def test_active_open(dut: Dut, tb: Testbench) -> None:
    """connect() sends a SYN with an MSS option from the host's own address, and
    acknowledges the SYN-ACK's ISN+1; later segments keep that source address."""
    connection = open_active(dut, tb, PORT)
    flow = connection.flow
    dut.send(connection.sock, b"hello")
    data = flow.expect("PA", seq=1, within=1.0, why="the DUT's data")
    assert bytes(data[TCP].payload) == b"hello"
    final_ack = flow.received[0]
    assert final_ack[TCP].ack == (flow.isn + 1) % MOD, "the ACK does not acknowledge ISN+1"
    for received in flow.received:
        well_formed(received)
        assert received.packet[IP].src == dut.ip  # MUST-44/45: one local address


@requirement("RFC9293-3.5c", "RFC1122-4.2.2.6a")
def test_active_open_syn_carries_mss(dut: Dut, tb: Testbench) -> None:
    """The DUT's SYN carries an MSS option no larger than its link allows (1460)."""
    sock = dut.socket("tcp")
    dut.start("connect", sock=sock, addr=tb.ip, port=PORT)
    syn = expect_dut_syn(tb, PORT)
    well_formed(syn)
    mss = mss_of(syn)
    tb.observe("syn_mss", mss)
    assert mss is not None, "the SYN carries no MSS option"
    assert mss <= 1460, f"MSS {mss} exceeds what a 1500-octet link carries"


@requirement("RFC9293-3.5a", "RFC1122-4.2.2.10")
def test_simultaneous_open(dut: Dut, tb: Testbench) -> None:
    """The DUT connects; the tester's SYN crosses the DUT's: the DUT answers a SYN-ACK
    (SYN-RECEIVED), and the tester's SYN-ACK establishes the connection."""
    sock = dut.socket("tcp")
    connecting = dut.start("connect", sock=sock, addr=tb.ip, port=PORT)
    flow = flow_for_syn(tb, expect_dut_syn(tb, PORT))
    flow.send("S", options=[("MSS", 1460)], why="the tester's own SYN, crossing the DUT's")
    synack = flow.expect("SA", seq=0, ack=1, within=1.0,
                         why="SYN-ACK: the DUT's ISN again, acknowledging the crossing SYN")
    well_formed(synack)
    flow.send("SA", seq=0, options=[("MSS", 1460)], why="the tester's SYN-ACK")
    assert connecting.wait(2.0), "connect still pending after the tester's SYN-ACK"
    assert connecting.result(timeout=1.0) is None, "connect did not succeed"
    dut.send(sock, b"simultaneous")
    data = flow.expect("PA", seq=1, ack=1, within=1.0, why="data on the new connection")
    assert bytes(data[TCP].payload) == b"simultaneous"


@requirement("RFC9293-3.5b", "RFC1122-4.2.2.11")
def test_rst_in_active_syn_received_refuses(dut: Dut, tb: Testbench) -> None:
    """An RST in a SYN-RECEIVED reached by simultaneous open fails the connect (RFC 9293
    3.10.7.4: "connection refused"; the errno is recorded) instead of listening."""
    sock = dut.socket("tcp")
    connecting = dut.start("connect", sock=sock, addr=tb.ip, port=PORT)
    flow = flow_for_syn(tb, expect_dut_syn(tb, PORT))
    flow.send("S", options=[("MSS", 1460)], why="a crossing SYN: the DUT goes SYN-RECEIVED")
    flow.expect("SA", seq=0, ack=1, within=1.0, why="the DUT's SYN-ACK")
    flow.send("R", why="an RST in the window")
    assert connecting.wait(2.0), "connect still pending after the RST"
    result = connecting.result(timeout=1.0)
    tb.observe("connect_after_rst", str(result))
    assert isinstance(result, Errno), f"connect: {result}, not an error"


@requirement("RFC9293-3.5b", "RFC1122-4.2.2.11")
def test_rst_in_passive_syn_received_returns_to_listen(dut: Dut, tb: Testbench) -> None:
    """An RST in a SYN-RECEIVED reached from LISTEN sends it back to LISTEN, silently:
    the reset connection is never accepted, the next one is."""
    listener = listen(dut, PORT)
    first = TcpFlow(tb, tb.host, sport=43002, dport=PORT)
    first.send("S", options=[("MSS", 1460)], why="a SYN: SYN-RECEIVED")
    first.expect_synack(within=1.0)
    first.send("R", why="an RST in the window: back to LISTEN")
    second = TcpFlow(tb, tb.host, sport=43003, dport=PORT)
    second.connect()
    accepted = dut.accept(listener)
    assert isinstance(accepted, tuple), f"accept: {accepted}"
    assert accepted[1] == (tb.ip, 43003), f"accepted {accepted[1]}, not the second"
    dut.set_nonblocking(listener)
    assert dut.accept(listener) == Errno("EAGAIN"), "the reset connection was accepted"


@requirement("RFC9293-3.5.3d", "RFC9293-3.6a", "RFC1122-4.2.2.13f")
def test_connect_refused_by_rst(dut: Dut, tb: Testbench) -> None:
    """An RST acknowledging the SYN (a closed port) makes connect fail: ECONNREFUSED."""
    sock = dut.socket("tcp")
    connecting = dut.start("connect", sock=sock, addr=tb.ip, port=PORT)
    flow = flow_for_syn(tb, expect_dut_syn(tb, PORT))
    flow.send("RA", seq=0, ack=1, why="RST,ACK acknowledging the SYN: nothing listens")
    assert connecting.wait(2.0), "connect still pending after the RST"
    assert connecting.result(timeout=1.0) == Errno("ECONNREFUSED")


@requirement("RFC9293-3.5.3d")
def test_rst_not_acknowledging_the_syn_is_ignored(dut: Dut, tb: Testbench) -> None:
    """In SYN-SENT an RST whose ACK does not acknowledge the SYN is dropped: the
    connection still opens."""
    sock = dut.socket("tcp")
    connecting = dut.start("connect", sock=sock, addr=tb.ip, port=PORT)
    flow = flow_for_syn(tb, expect_dut_syn(tb, PORT))
    flow.send("RA", seq=0, ack=1000, why="RST,ACK whose ACK is not ISN+1")
    assert not connecting.wait(QUIET_S), f"connect ended: {connecting.result(1.0)}"
    flow.send("SA", options=[("MSS", 1460)], why="the real SYN-ACK")
    assert connecting.result(timeout=2.0) is None, "connect did not succeed"


@requirement("RFC9293-3.10.7.3a", "RFC9293-3.5.2c")
def test_synack_with_bad_ack_draws_reset(dut: Dut, tb: Testbench) -> None:
    """In SYN-SENT a SYN-ACK acknowledging the wrong number draws <SEQ=SEG.ACK><CTL=RST>
    and the connect goes on."""
    sock = dut.socket("tcp")
    connecting = dut.start("connect", sock=sock, addr=tb.ip, port=PORT)
    syn = expect_dut_syn(tb, PORT)
    flow = flow_for_syn(tb, syn)
    flow.send("SA", ack=1000, options=[("MSS", 1460)], why="SYN-ACK acknowledging ISN+1000")
    reset = tb.expect(flow.template("R"), within=1.0, why="a reset for the bad ACK")
    assert reset[TCP].seq == (syn[TCP].seq + 1000) % MOD, "the RST's SEQ is not SEG.ACK"
    assert not connecting.done(), "connect ended on a bad SYN-ACK"
    flow.send("SA", options=[("MSS", 1460)], why="the real SYN-ACK")
    assert connecting.result(timeout=2.0) is None


ISN_SAMPLES = 3


def isn_of_passive_open(tb: Testbench, sport: int) -> int:
    flow = TcpFlow(tb, tb.host, sport=sport, dport=PORT)
    synack = flow.connect()
    flow.send("R", why="reset: the next connection may reuse the 4-tuple")
    return int(synack[TCP].seq)


@requirement("RFC9293-3.4b", "RFC1122-4.2.2.9")
def test_isn_follows_a_clock(dut: Dut, tb: Testbench) -> None:
    """Successive incarnations of one 4-tuple get increasing ISNs (RFC 9293 3.4.1)."""
    listen(dut, PORT)
    isns = [isn_of_passive_open(tb, 43010) for _ in range(ISN_SAMPLES)]
    steps = [(later - earlier) % MOD for earlier, later in itertools.pairwise(isns)]
    tb.observe("isn_steps_increase", [0 < step < HALF for step in steps])
    assert all(0 < step < HALF for step in steps), f"ISNs {isns} do not increase"


@requirement("RFC9293-3.4c")
def test_isns_of_different_connections_are_unrelated(dut: Dut, tb: Testbench) -> None:
    """Connections from neighbouring ports get ISNs far apart (RFC 6528 PRF): a pure
    global counter gives ISNs a few thousand apart."""
    listen(dut, PORT)
    isns = [isn_of_passive_open(tb, 43020 + n) for n in range(ISN_SAMPLES)]
    distances = [min((b - a) % MOD, (a - b) % MOD)
                 for i, a in enumerate(isns) for b in isns[i + 1:]]
    tb.observe("isn_min_distance_above_2_16", min(distances) > 1 << 16)
    assert min(distances) > 1 << 16, f"ISNs {isns} are close together: guessable"


@requirement("RFC9293-3.9.1.1b", "RFC1122-4.2.2.18b")
def test_listen_on_the_port_of_a_connecting_socket(dut: Dut, tb: Testbench) -> None:
    """A socket can listen on a local port while another, bound to it, is in SYN-SENT."""
    connecting_sock = dut.socket("tcp")
    dut.setsockopt(connecting_sock, "SO_REUSEADDR", 1)
    dut.bind(connecting_sock, dut.ip, PORT + 1)
    dut.start("connect", sock=connecting_sock, addr=tb.ip, port=PORT)
    expect_dut_syn(tb, PORT)
    listener = dut.socket("tcp")
    dut.setsockopt(listener, "SO_REUSEADDR", 1)
    bound = dut.bind(listener, dut.ip, PORT + 1)
    listening = dut.listen(listener, 8) if bound is None else bound
    tb.observe("bind_and_listen", str(listening))
    assert listening is None, f"listening on the connecting socket's port: {listening}"
    flow = TcpFlow(tb, tb.host, sport=43030, dport=PORT + 1)
    flow.connect()
    assert isinstance(dut.accept(listener), tuple)


@requirement("RFC9293-3.9.1.1a", "RFC1122-4.2.2.18a")
def test_listen_does_not_disturb_a_connection(dut: Dut, tb: Testbench) -> None:
    """A new listener on another port leaves an established connection working."""
    connection = open_active(dut, tb, PORT)
    listen(dut, PORT + 2)
    dut.send(connection.sock, b"still here")
    data = connection.flow.expect("PA", seq=1, within=1.0, why="data after the listen")
    assert bytes(data[TCP].payload) == b"still here"
