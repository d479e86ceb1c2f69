"""The agent server base of agent_protocol: dispatch, the error mapping, hello and the
decoding of socket option values (docs/agent-protocol.md, "Writing an agent in Python")."""

from __future__ import annotations

import errno
import io
import json
import socket
import threading
from typing import Any

import pytest

from agent_protocol.requests import Args, BadRequest, NotSupported
from agent_protocol.responses import ResponseWriter
from agent_protocol.server import (
    AgentServer,
    HandleTable,
    option_value,
    settable_option,
    socket_option,
)


class Raising(AgentServer):
    """An agent whose `socket` raises what it is told to and whose `close` is seen."""

    name = "raising"

    def __init__(self) -> None:
        self.stream = io.BytesIO()
        self.raise_next: Exception | None = None
        self.closed = False
        self.background_thread = ""
        super().__init__(ResponseWriter(self.stream))

    def call_socket(self, args: Args) -> int:
        if self.raise_next is not None:
            raise self.raise_next
        return args.integer("answer")

    def call_recv(self, args: Args) -> str:
        self.background_thread = threading.current_thread().name
        return "done"

    def close(self) -> None:
        self.closed = True

    def answers(self, *requests: dict[str, Any]) -> list[dict[str, Any]]:
        self.serve([json.dumps(request).encode() + b"\n" for request in requests])
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


def answer_to(error: Exception) -> dict[str, Any]:
    agent = Raising()
    agent.raise_next = error
    return agent.answers({"id": 1, "call": "socket", "args": {}})[0]


def test_a_call_answers_its_result_and_the_input_end_closes_the_agent() -> None:
    agent = Raising()
    assert agent.answers({"id": 4, "call": "socket", "args": {"answer": 9}}) == [
        {"id": 4, "result": 9}
    ]
    assert agent.closed


def test_hello_names_the_agent_and_the_calls_it_has() -> None:
    (hello,) = Raising().answers({"id": 1, "call": "hello"})
    assert hello["result"] == {
        "agent": "raising",
        "protocol": 1,
        "calls": ["hello", "socket", "recv"],
    }


def test_an_unknown_call_is_unsupported_and_a_malformed_line_an_error() -> None:
    agent = Raising()
    agent.serve([b"{not json\n", b'{"id": 2, "call": "listen"}\n'])
    first, second = map(json.loads, agent.stream.getvalue().splitlines())
    assert first["id"] is None and first["error"].startswith("request is not JSON")
    assert second == {"id": 2, "unsupported": "unknown call 'listen'"}


@pytest.mark.parametrize(
    ("error", "answer"),
    [
        (NotSupported("unknown type 'sctp'"), {"unsupported": "unknown type 'sctp'"}),
        (BadRequest("missing argument 'sock'"), {"error": "missing argument 'sock'"}),
        (OSError(errno.EWOULDBLOCK, "would block"), {"errno": "EAGAIN"}),
        (OSError("no errno"), {"error": "socket: no errno"}),
        (socket.gaierror("bad name"), {"error": "address lookup failed: bad name"}),
        (KeyError("bug"), {"error": "socket: KeyError: 'bug'"}),
    ],
)
def test_what_a_call_raises_becomes_its_answer(error: Exception, answer: dict[str, Any]) -> None:
    assert answer_to(error) == {"id": 1, **answer}


def test_a_background_request_is_answered_from_a_thread_of_its_own() -> None:
    agent = Raising()
    request = {"id": 3, "call": "recv", "args": {}, "background": True}
    agent.handle_line(json.dumps(request).encode())
    for thread in threading.enumerate():
        if thread.name == "recv-3":
            thread.join()
    assert json.loads(agent.stream.getvalue()) == {"id": 3, "result": "done"}
    assert agent.background_thread == "recv-3"


def decoded(name: str, value: Any) -> Any:
    args = Args({"name": name, "value": value})
    option_name, option = settable_option(args)
    return option_value(args, option_name, option)


def test_setsockopt_values_are_decoded_by_the_kind_of_the_option() -> None:
    assert decoded("SO_RCVBUF", 4096) == 4096
    assert decoded("TCP_NODELAY", True) == 1
    assert decoded("SO_LINGER", {"onoff": 1, "linger": 0}) == (1, 0)
    assert decoded("IP_MTU_DISCOVER", "IP_PMTUDISC_DO") == "IP_PMTUDISC_DO"
    assert decoded("IP_OPTIONS", "AQEBAQ==") == b"\x01\x01\x01\x01"


def test_bad_setsockopt_values_are_refused() -> None:
    with pytest.raises(BadRequest, match=r"SO_LINGER value must be \{onoff, linger\}"):
        decoded("SO_LINGER", 5)
    with pytest.raises(BadRequest, match="SO_RCVBUF value must be an integer"):
        decoded("SO_RCVBUF", "big")
    with pytest.raises(NotSupported, match="unknown value 'IP_PMTUDISC_MAYBE'"):
        decoded("IP_MTU_DISCOVER", "IP_PMTUDISC_MAYBE")
    with pytest.raises(BadRequest, match="SO_ERROR cannot be set"):
        decoded("SO_ERROR", 0)
    with pytest.raises(NotSupported, match="unknown socket option 'SO_MAGIC'"):
        socket_option(Args({"name": "SO_MAGIC"}))


def test_an_unknown_handle_is_a_bad_request() -> None:
    table: HandleTable[str] = HandleTable()
    table.add(7, "seven")
    assert table.get(7) == "seven" and table.items() == [(7, "seven")]
    with pytest.raises(BadRequest, match="unknown socket handle 8"):
        table.get(8)
    assert table.remove(7) == "seven" and table.clear() == []
