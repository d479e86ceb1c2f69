"""The base of an agent written in Python: the request loop, dispatch through one handler
table, the mapping of exceptions to responses, `hello`, and socket option values.

A subclass names itself, defines one ``call_<name>(args)`` method per call of `CALLS`
it performs (a missing one answers "unsupported"), and maps its own exceptions in
`failure`; docs/agent-protocol.md, "Writing an agent in Python", has an example.
"""

from __future__ import annotations

import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Generic, TypeVar

from agent_protocol.names import (
    CALLS,
    PMTUDISC_MODES,
    PROTOCOL_VERSION,
    SOCKET_OPTIONS,
    SocketOption,
    errno_name,
)
from agent_protocol.requests import (
    Args,
    BadRequest,
    MalformedRequest,
    NotSupported,
    Request,
    parse_request,
)
from agent_protocol.responses import ResponseWriter

Handler = Callable[[Args], Any]

# A setsockopt value as decoded from JSON, by the option's kind: an integer (booleans as
# 0 or 1), a PMTUDISC_MODES name, (onoff, linger) or raw bytes.
OptionValue = int | str | tuple[int, int] | bytes

Held = TypeVar("Held")


class AgentServer:
    """Reads requests, performs each through its ``call_<name>`` method and answers."""

    name: ClassVar[str]  # the "agent" of hello

    def __init__(self, writer: ResponseWriter) -> None:
        self.writer = writer
        self.handlers: dict[str, Handler] = {
            call: getattr(self, f"call_{call}") for call in CALLS if hasattr(self, f"call_{call}")
        }

    def serve(self, lines: Iterable[bytes]) -> None:
        """Answers every request line until the input ends, then closes what is held."""
        try:
            for line in lines:
                if line.strip():
                    self.handle_line(line)
        finally:
            self.close()

    def close(self) -> None:
        """Releases what the agent holds once the tester has gone."""

    def handle_line(self, line: bytes) -> None:
        """Parses one request line and starts it; a malformed one is answered "error"."""
        try:
            request = parse_request(line)
        except MalformedRequest as problem:
            self.writer.send(problem.response)
            return
        self.start(request)

    def start(self, request: Request) -> None:
        """Answers now, or on a thread of its own if the request is background."""
        if request.background:
            threading.Thread(
                target=lambda: self.writer.send(self.respond(request)),
                name=f"{request.call}-{request.id}",
                daemon=True,
            ).start()
        else:
            self.writer.send(self.respond(request))

    def respond(self, request: Request) -> dict[str, Any]:
        """Performs one call and builds its response."""
        handler = self.handlers.get(request.call)
        if handler is None:
            return self.unknown_call(request)
        try:
            return {"id": request.id, "result": handler(Args(request.args))}
        except Exception as error:
            return {"id": request.id, **self.failure(request.call, error)}

    def unknown_call(self, request: Request) -> dict[str, Any]:
        """A call this agent lacks is "unsupported", so that the tester may add calls."""
        return {"id": request.id, "unsupported": f"unknown call {request.call!r}"}

    def failure(self, call: str, error: Exception) -> dict[str, Any]:
        """The response body for a call that raised: an errno name, "unsupported" or
        "error". Subclasses map their own stack's exceptions first."""
        if isinstance(error, NotSupported):
            return {"unsupported": str(error)}
        if isinstance(error, BadRequest):
            return {"error": str(error)}
        if isinstance(error, (socket.gaierror, socket.herror)):
            return {"error": f"address lookup failed: {error}"}
        if isinstance(error, OSError):
            if error.errno is None:
                return {"error": f"{call}: {error}"}
            return {"errno": errno_name(error.errno)}
        # A bug or a value the agent did not foresee: the tester must hear of it.
        traceback.print_exception(error, file=sys.stderr)
        return {"error": f"{call}: {type(error).__name__}: {error}"}

    def call_hello(self, args: Args) -> dict[str, Any]:
        """Names the agent, the protocol version and the calls it performs."""
        return {"agent": self.name, "protocol": PROTOCOL_VERSION, "calls": list(self.handlers)}


class HandleTable(Generic[Held]):
    """What an agent holds by handle (a socket, for most); safe from any thread. An
    unknown handle is a bad request: the tester named a socket it never got."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, Held] = {}

    def add(self, handle: int, item: Held) -> int:
        with self._lock:
            self._held[handle] = item
        return handle

    def get(self, handle: int) -> Held:
        with self._lock:
            item = self._held.get(handle)
        if item is None:
            raise BadRequest(f"unknown socket handle {handle}")
        return item

    def remove(self, handle: int) -> Held:
        with self._lock:
            item = self._held.pop(handle, None)
        if item is None:
            raise BadRequest(f"unknown socket handle {handle}")
        return item

    def items(self) -> list[tuple[int, Held]]:
        """Everything held, by handle in ascending order."""
        with self._lock:
            return sorted(self._held.items(), key=lambda entry: entry[0])

    def clear(self) -> list[Held]:
        """Forgets everything held and returns it, to be released."""
        with self._lock:
            held = list(self._held.values())
            self._held.clear()
        return held


def socket_option(args: Args) -> tuple[str, SocketOption]:
    """The option a setsockopt or getsockopt request names."""
    name = args.text("name")
    option = SOCKET_OPTIONS.get(name)
    if option is None:
        raise NotSupported(f"unknown socket option {name!r}")
    return name, option


def settable_option(args: Args) -> tuple[str, SocketOption]:
    """The option a setsockopt request names; a get-only one is a bad request."""
    name, option = socket_option(args)
    if not option.settable:
        raise BadRequest(f"{name} cannot be set")
    return name, option


def option_value(args: Args, name: str, option: SocketOption) -> OptionValue:
    """The `value` of a setsockopt request, decoded by the option's kind."""
    value = args.value("value")
    if option.kind == "pmtudisc_mode":
        args.choice("value", PMTUDISC_MODES)
        return args.text("value")
    if option.kind == "linger":
        if not isinstance(value, dict):
            raise BadRequest(f"SO_LINGER value must be {{onoff, linger}}, not {value!r}")
        linger = Args(value)
        return linger.integer("onoff"), linger.integer("linger")
    if option.kind == "bytes":
        return args.data("value")
    if isinstance(value, int):  # JSON true/false count as 1/0
        return int(value)
    raise BadRequest(f"{name} value must be an integer, not {value!r}")
