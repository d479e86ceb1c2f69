"""The reference agent's TCP calls: which ones park and what wakes them (docs/agent-
protocol.md), driven on the virtual clock with the stack on a virtual link."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

from scapy.layers.inet import TCP

from agent_protocol.responses import ResponseWriter
from stack.io.agent import RefAgent
from stack.timing import MILLISECOND, SECOND
from tests.stack_link import PEER_IP, Link
from tests.stack_tcp import DUT_PORT, PEER_PORT, Peer


class AgentOnLink:
    def __init__(self) -> None:
        self.link = Link()
        self.stream = io.BytesIO()
        self.agent = RefAgent(self.link.api, ResponseWriter(self.stream))
        self.next_id = 1
        self.read_up_to = 0

    def request(self, call: str, **args: Any) -> int:
        request_id, self.next_id = self.next_id, self.next_id + 1
        line = json.dumps({"id": request_id, "call": call, "args": args}).encode()
        self.agent.receive(line, self.link.now)
        return request_id

    def responses(self) -> dict[int, dict[str, Any]]:
        """Responses written since the last look, by id (the event loop's turn: the
        agent retries parked calls first)."""
        self.agent.retry(self.link.now)
        lines = self.stream.getvalue()[self.read_up_to:].splitlines()
        self.read_up_to = len(self.stream.getvalue())
        return {entry["id"]: entry for entry in map(json.loads, lines)}

    def call(self, call: str, **args: Any) -> dict[str, Any]:
        request_id = self.request(call, **args)
        return self.responses()[request_id]


def test_blocking_connect_waits_for_the_handshake() -> None:
    bench = AgentOnLink()
    sock = bench.call("socket", type="tcp")["result"]
    connecting = bench.request("connect", sock=sock, addr=PEER_IP, port=PEER_PORT)
    assert connecting not in bench.responses()
    syn = bench.link.sent()[0][TCP]
    peer = Peer(bench.link, sport=PEER_PORT, dport=syn.sport)
    peer.flow.arrived(syn)
    peer.send("SA")
    assert bench.responses()[connecting] == {"id": connecting, "result": None}


def test_nonblocking_connect_is_einprogress_then_ealready() -> None:
    bench = AgentOnLink()
    sock = bench.call("socket", type="tcp")["result"]
    bench.call("fcntl", sock=sock, cmd="F_SETFL", flags=["O_NONBLOCK"])
    assert bench.call("connect", sock=sock, addr=PEER_IP, port=PEER_PORT)["errno"] == \
        "EINPROGRESS"
    assert bench.call("connect", sock=sock, addr=PEER_IP, port=PEER_PORT)["errno"] == \
        "EALREADY"


def test_accept_waits_for_a_connection() -> None:
    bench = AgentOnLink()
    listener = bench.call("socket", type="tcp")["result"]
    bench.call("bind", sock=listener, addr="0.0.0.0", port=DUT_PORT)
    bench.call("listen", sock=listener, backlog=4)
    accepting = bench.request("accept", sock=listener)
    assert accepting not in bench.responses()
    Peer(bench.link).open_to_listener()
    result = bench.responses()[accepting]["result"]
    assert result["addr"] == PEER_IP and result["port"] == 40000


def established(bench: AgentOnLink) -> tuple[Peer, int]:
    listener = bench.call("socket", type="tcp")["result"]
    bench.call("bind", sock=listener, addr="0.0.0.0", port=DUT_PORT)
    bench.call("listen", sock=listener, backlog=4)
    peer = Peer(bench.link)
    peer.open_to_listener()
    return peer, bench.call("accept", sock=listener)["result"]["sock"]


def test_a_blocking_send_returns_once_all_of_it_is_buffered() -> None:
    bench = AgentOnLink()
    peer, sock = established(bench)
    data = bytes(200_000)  # more than the send buffer holds
    sending = bench.request("send", sock=sock, data=base64.b64encode(data).decode())
    assert sending not in bench.responses()
    while sending not in (answered := bench.responses()):
        segments = peer.received()
        assert segments, "the sender stalled"
        peer.send("A")
    assert answered[sending]["result"] == len(data)


def test_close_with_linger_waits_for_the_ack_of_the_fin_or_the_time() -> None:
    bench = AgentOnLink()
    peer, sock = established(bench)
    bench.call("setsockopt", sock=sock, name="SO_LINGER", value={"onoff": 1, "linger": 2})
    assert bench.call("getsockopt", sock=sock, name="SO_LINGER")["result"] == \
        {"onoff": 1, "linger": 2}
    closing = bench.request("close", sock=sock)
    assert closing not in bench.responses()
    assert peer.received_one().flags == "FA"
    bench.link.advance(2 * SECOND - 1)
    assert closing not in bench.responses()
    bench.link.advance(1)
    assert bench.responses()[closing] == {"id": closing, "result": None}


def test_a_poll_timeout_is_not_restarted_by_activity() -> None:
    bench = AgentOnLink()
    peer, sock = established(bench)
    polling = bench.request("poll", sock=sock, events=["POLLPRI"], timeout_ms=500)
    bench.link.advance(300 * MILLISECOND)
    peer.send("A")  # the stack changes: the poll is tried again
    assert polling not in bench.responses()
    bench.link.advance(200 * MILLISECOND)
    assert bench.responses()[polling]["result"] == []
