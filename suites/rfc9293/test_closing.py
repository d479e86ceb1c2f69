"""Closing connections and the user calls around it (RFC 9293 3.6, 3.10.1-3.10.5;
RFC 1122 4.2.2.13): FIN, half close, simultaneous close, close losing data, abort."""

from scapy.layers.inet import IP, TCP

from conformance.case import Errno, requirement, tcp_segment_choices
from conformance.targets.dut import Dut
from conformance.testbench.bench import ANSWER_S, Testbench
from conformance.testbench.scenarios import enter_state, open_active
from conformance.testbench.tcp_stream import next_data, recv_woken_by

pytestmark = tcp_segment_choices

PORT = 5040


@requirement("RFC9293-3.6g")
def test_half_closed_connection_keeps_receiving(dut: Dut, tb: Testbench) -> None:
    """After shutdown(SHUT_WR) and its FIN, data from the peer is still acknowledged
    and delivered (RFC 9293 3.6.1)."""
    connection = enter_state(dut, tb, "FIN-WAIT-2", PORT)
    flow = connection.flow
    flow.send("PA", b"late data", why="data in the direction still open")
    flow.expect("A", ack=flow.snd_nxt, within=ANSWER_S, why="the data acknowledged")
    assert dut.recv(connection.sock, 100) == b"late data"


@requirement("RFC9293-3.10.2a")
def test_send_after_shutdown_fails(dut: Dut, tb: Testbench) -> None:
    """SEND after the local CLOSE (shutdown SHUT_WR) fails, and sends nothing."""
    connection = enter_state(dut, tb, "FIN-WAIT-2", PORT)
    result = dut.send(connection.sock, b"too late")
    # RFC 9293 3.10.2: "error: connection closing", in words: the errno is the API's
    # (Linux EPIPE, lwIP ENOTCONN).
    dut.last_result_is_a_choice()
    tb.observe("send_after_shutdown", str(result), choice=True)
    assert isinstance(result, Errno), f"send after shutdown: {result}"
    connection.flow.expect_none("PA", why="no data after the FIN")


@requirement("RFC9293-3.10.2a")
def test_send_without_a_connection_fails(dut: Dut, tb: Testbench) -> None:
    """SEND on a TCP socket that never connected fails (connection does not exist)."""
    sock = dut.socket("tcp")
    result = dut.send(sock, b"nobody")
    tb.observe("send_unconnected", str(result))
    assert isinstance(result, Errno), f"send without a connection: {result}"


@requirement("RFC9293-3.10.1a")
def test_connect_on_a_connected_socket_fails(dut: Dut, tb: Testbench) -> None:
    """A second OPEN on a connected socket fails with EISCONN, with no SYN on the wire."""
    connection = open_active(dut, tb, PORT)
    result = dut.connect(connection.sock, tb.ip, PORT)
    tb.observe("connect_again", str(result))
    assert result == Errno("EISCONN"), f"connect again: {result}"
    tb.expect_none(IP(src=dut.ip, dst=tb.ip) / TCP(dport=PORT, flags="S"),
                   why="no SYN for an OPEN that failed")


@requirement("RFC9293-3.10.3a", "RFC9293-3.6a")
def test_receive_after_fin_returns_data_then_eof(dut: Dut, tb: Testbench) -> None:
    """Data that came before the peer's FIN is read first, then end of file."""
    connection = enter_state(dut, tb, "ESTABLISHED", PORT)
    flow = connection.flow
    flow.send("PA", b"last words", why="data")
    flow.send("FA", why="and the FIN")
    flow.expect("A", ack=flow.snd_nxt, within=ANSWER_S, why="data and FIN acknowledged")
    assert dut.recv(connection.sock, 100) == b"last words"
    assert dut.recv(connection.sock, 100) == b"", "no end of file after the data"


@requirement("RFC9293-3.6h")
def test_simultaneous_close(dut: Dut, tb: Testbench) -> None:
    """Crossing FINs: the DUT acknowledges the tester's FIN (CLOSING) and, once its own
    FIN is acknowledged, answers a retransmitted FIN from TIME-WAIT."""
    connection = enter_state(dut, tb, "CLOSING", PORT)
    flow = connection.flow
    flow.send("A", why="ACK of the DUT's FIN: CLOSING becomes TIME-WAIT")
    flow.send("FA", seq=flow.snd_nxt - 1, why="the tester's FIN again")
    flow.expect("A", ack=flow.snd_nxt, within=ANSWER_S, why="TIME-WAIT acknowledges it")


@requirement("RFC9293-3.6c", "RFC1122-4.2.2.13h")
def test_close_with_unread_data_sends_rst(dut: Dut, tb: Testbench) -> None:
    """close() while received data is unread resets the connection instead of a FIN."""
    connection = enter_state(dut, tb, "ESTABLISHED", PORT)
    flow = connection.flow
    flow.send("PA", b"never read", why="data the application will not read")
    flow.expect("A", ack=flow.snd_nxt, within=ANSWER_S, why="the data acknowledged")
    dut.close(connection.sock)
    answer = tb.expect([flow.template("R"), flow.template("RA"), flow.template("FA")],
                       within=ANSWER_S, why="an RST (data lost) rather than a FIN")
    tb.observe("close_with_unread_data", "reset" if answer[TCP].flags.R else "fin")
    assert answer[TCP].flags.R, "close with unread data sent a FIN, not an RST"


@requirement("RFC9293-3.6c", "RFC1122-4.2.2.13h")
def test_data_after_close_draws_rst(dut: Dut, tb: Testbench) -> None:
    """Data arriving after close() (nobody can read it) is answered with an RST."""
    connection = enter_state(dut, tb, "ESTABLISHED", PORT)
    flow = connection.flow
    dut.close(connection.sock)
    flow.expect("FA", within=ANSWER_S, why="the DUT's FIN")
    flow.send("PA", b"nobody reads this", why="data after the DUT closed")
    answer = tb.expect([flow.template("R"), flow.template("RA"),
                        flow.template("A", ack=flow.snd_nxt)], within=ANSWER_S,
                       why="an RST: the data is lost")
    tb.observe("data_after_close", "reset" if answer[TCP].flags.R else "ack")
    assert answer[TCP].flags.R, "data after close was acknowledged, not reset"


@requirement("RFC9293-3.10.5a")
def test_abort_sends_rst(dut: Dut, tb: Testbench) -> None:
    """close() with SO_LINGER {on, 0} while sent data is unacknowledged aborts:
    <SEQ=SND.NXT><CTL=RST>, and neither the data nor a FIN follows."""
    connection = enter_state(dut, tb, "ESTABLISHED", PORT)
    flow = connection.flow
    # Data in flight, so that the close is an ABORT on every socket API: lwIP's SO_LINGER 0
    # resets only a connection with data queued (api_msg.c) and closes an idle one with a
    # FIN, which POSIX allows.
    assert dut.send(connection.sock, b"in flight") == len(b"in flight")
    next_data(flow, within=ANSWER_S, why="data the tester leaves unacknowledged")
    dut.setsockopt(connection.sock, "SO_LINGER", {"onoff": 1, "linger": 0})
    dut.close(connection.sock)
    reset = tb.expect(flow.template(), within=ANSWER_S, why="the abort's RST")
    assert reset[TCP].flags.R, f"abort sent {reset[TCP].flags}, not an RST"
    assert flow.relative_seq(reset) == flow.rcv_nxt, "the RST's SEQ is not SND.NXT"
    flow.expect_none(why="nothing after the RST: the queued data is flushed, no FIN")


@requirement("RFC9293-3.6a", "RFC1122-4.2.2.13f")
def test_fin_is_reported_as_end_of_file(dut: Dut, tb: Testbench) -> None:
    """A recv waiting on the connection returns end of file when the FIN arrives."""
    connection = enter_state(dut, tb, "ESTABLISHED", PORT)
    assert recv_woken_by(dut, connection, "FA", why="the tester's FIN", what="the FIN") == b""
