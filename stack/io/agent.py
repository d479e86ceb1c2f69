"""The reference stack's agent: the calls of docs/agent-protocol.md on `SocketApi`.

Everything runs on the event loop's one thread. A call that would block is parked and
tried again each time the stack changes, until it completes or its deadline passes, so
"background" requests need nothing special: no call ever holds up another.
"""

from __future__ import annotations

import base64
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any, Final

from conformance.agent.protocol import (
    CALLS,
    FILE_STATUS_FLAGS,
    IOCTL_REQUESTS,
    MESSAGE_FLAGS,
    PMTUDISC_MODES,
    POLL_EVENTS,
    PROTOCOL_VERSION,
    SHUTDOWN_HOW,
    SOCKET_OPTIONS,
)
from conformance.agent.requests import (
    Args,
    BadRequest,
    MalformedRequest,
    NotSupported,
    ResponseWriter,
    parse_request,
)
from stack.errors import SocketError, Unsupported
from stack.sockets import SocketApi
from stack.timing import MILLISECOND, Nanoseconds, earliest
from stack.udp import Endpoint, Message

AGENT_NAME: Final = "ref"
SOCKET_TYPES: Final = ("udp", "tcp")

Handler = Callable[[Args, Nanoseconds], Any]


class Blocked(Exception):
    """The call has to wait. It is tried again whenever the stack changes; at
    ``deadline`` (None: never) it answers ``on_deadline`` instead."""

    def __init__(
        self, deadline: Nanoseconds | None = None, on_deadline: Any = None,
        retry: Callable[[Nanoseconds], Any] | None = None,
    ) -> None:
        super().__init__()
        self.deadline = deadline
        self.on_deadline = on_deadline
        # What to call instead of the handler when tried again (a call half done, such as
        # a TCP connect whose SYN is out); it may raise Blocked again.
        self.retry = retry


@dataclass
class _Parked:
    request_id: int
    call: str
    args: Args
    deadline: Nanoseconds | None
    on_deadline: Any
    retry: Callable[[Nanoseconds], Any] | None = None


def _continuation(retry: Callable[[Nanoseconds], Any]) -> Handler:
    return lambda args, now: retry(now)


def endpoint_json(endpoint: Endpoint | None) -> dict[str, Any]:
    if endpoint is None:
        return {"addr": None, "port": None}
    return {"addr": str(endpoint[0]), "port": endpoint[1]}


def data_json(data: bytes) -> str:
    return base64.b64encode(data).decode()


def ancillary_json(message: Message) -> dict[str, Any]:
    """The control messages of recvmsg (docs/agent-protocol.md): those the stack gave."""
    ancillary: dict[str, Any] = {}
    if message.options is not None:
        ancillary["options"] = data_json(message.options)
    if message.tos is not None:
        ancillary["tos"] = message.tos
    if message.pktinfo is not None:
        info = message.pktinfo
        ancillary["pktinfo"] = {
            "ifindex": info.ifindex, "spec_dst": str(info.spec_dst), "addr": str(info.addr),
        }
    return ancillary


class RefAgent:
    def __init__(self, api: SocketApi, writer: ResponseWriter) -> None:
        self.api = api
        self.writer = writer
        self.parked: list[_Parked] = []
        self.handlers: dict[str, Handler] = {call: getattr(self, f"call_{call}") for call in CALLS}

    # --- requests -----------------------------------------------------------------------

    def handle_line(self, line: bytes, now: Nanoseconds) -> None:
        try:
            request = parse_request(line)
        except MalformedRequest as problem:
            self.writer.send(problem.response)
            return
        # "background" needs nothing here: a call that would block is parked anyway.
        self._attempt(_Parked(request.id, request.call, Args(request.args), None, None), now,
                      first=True)

    def retry(self, now: Nanoseconds) -> None:
        """Try every parked call again, after the stack changed or time passed."""
        parked, self.parked = self.parked, []
        for call in parked:
            if call.deadline is not None and call.deadline <= now:
                self.writer.send({"id": call.request_id, "result": call.on_deadline})
            else:
                self._attempt(call, now, first=False)

    def next_deadline(self) -> Nanoseconds | None:
        return earliest(*(call.deadline for call in self.parked))

    def _attempt(self, call: _Parked, now: Nanoseconds, *, first: bool) -> None:
        handler = self.handlers.get(call.call)
        if call.retry is not None:
            handler = _continuation(call.retry)
        if handler is None:
            self.writer.send({"id": call.request_id, "unsupported": f"unknown call {call.call!r}"})
            return
        try:
            response: dict[str, Any] = {"result": handler(call.args, now)}
        except Blocked as blocked:
            if first:  # the deadline counts from the call, not from a retry
                call.deadline, call.on_deadline = blocked.deadline, blocked.on_deadline
            if blocked.retry is not None:
                call.retry = blocked.retry
            self.parked.append(call)
            return
        except SocketError as error:
            response = {"errno": error.errno}
        except (Unsupported, NotSupported) as error:
            response = {"unsupported": str(error)}
        except BadRequest as error:
            response = {"error": str(error)}
        except Exception as error:  # a bug in the stack: the harness must hear of it
            traceback.print_exc(file=sys.stderr)
            response = {"error": f"{call.call}: {type(error).__name__}: {error}"}
        self.writer.send({"id": call.request_id, **response})

    # --- helpers ------------------------------------------------------------------------

    def _endpoint(self, args: Args) -> tuple[IPv4Address, int]:
        address, port = args.endpoint()
        return IPv4Address(address), port

    def _flags(self, args: Args) -> set[str]:
        return args.name_set("flags", MESSAGE_FLAGS, optional=True)

    def _receive(self, args: Args, now: Nanoseconds) -> Message:
        handle, flags = args.integer("sock"), self._flags(args)
        try:
            return self.api.recvmsg(handle, args.integer("size"), flags, now)
        except SocketError as error:
            if error.errno == "EAGAIN" and self.api.would_block(handle, flags):
                raise Blocked() from None
            raise

    # --- calls --------------------------------------------------------------------------

    def call_hello(self, args: Args, now: Nanoseconds) -> dict[str, Any]:
        return {"agent": AGENT_NAME, "protocol": PROTOCOL_VERSION, "calls": list(CALLS)}

    def call_socket(self, args: Args, now: Nanoseconds) -> int:
        kind = args.text("type")
        if kind not in SOCKET_TYPES:
            raise NotSupported(f"unknown type {kind!r}")
        return self.api.socket(kind)

    def call_bind(self, args: Args, now: Nanoseconds) -> None:
        self.api.bind(args.integer("sock"), *self._endpoint(args))

    def call_connect(self, args: Args, now: Nanoseconds) -> None:
        handle = args.integer("sock")
        try:
            self.api.connect(handle, *self._endpoint(args), now)
        except SocketError as error:
            # A blocking TCP connect waits for the handshake to end (tcp(7)).
            if error.errno != "EINPROGRESS" or not self.api.would_block(handle, set()):
                raise

            def finish(now: Nanoseconds) -> None:
                if not self.api.finish_connect(handle):
                    raise Blocked() from None

            raise Blocked(retry=finish) from None

    def call_listen(self, args: Args, now: Nanoseconds) -> None:
        self.api.listen(args.integer("sock"), args.integer("backlog"), now)

    def call_accept(self, args: Args, now: Nanoseconds) -> dict[str, Any]:
        handle = args.integer("sock")
        try:
            accepted = self.api.accept(handle)
        except SocketError as error:
            if error.errno == "EAGAIN" and self.api.would_block(handle, set()):
                raise Blocked() from None
            raise
        return {"sock": accepted.handle, **endpoint_json(accepted.peer)}

    def call_send(self, args: Args, now: Nanoseconds) -> int:
        return self._send(args.integer("sock"), args.data(), None, self._flags(args), now)

    def call_sendto(self, args: Args, now: Nanoseconds) -> int:
        return self._send(
            args.integer("sock"), args.data(), self._endpoint(args), self._flags(args), now
        )

    def _send(self, handle: int, data: bytes, destination: Endpoint | None,
              flags: set[str], now: Nanoseconds) -> int:
        """A blocking TCP send returns once all of ``data`` is in the send buffer."""
        sent = 0

        def attempt(now: Nanoseconds) -> int:
            nonlocal sent
            blocking = self.api.is_tcp(handle) and self.api.would_block(handle, flags)
            while True:
                try:
                    sent += self.api.sendto(handle, data[sent:], destination, flags, now)
                except SocketError as error:
                    if error.errno == "EAGAIN" and blocking:
                        raise Blocked(retry=attempt) from None
                    if sent:
                        return sent  # Linux: what was sent counts; the error comes next
                    raise
                if sent >= len(data) or not blocking:
                    return sent

        return attempt(now)

    def call_recv(self, args: Args, now: Nanoseconds) -> dict[str, Any]:
        return {"data": data_json(self._receive(args, now).data)}

    def call_recvfrom(self, args: Args, now: Nanoseconds) -> dict[str, Any]:
        message = self._receive(args, now)
        return {"data": data_json(message.data), **endpoint_json(message.address)}

    def call_recvmsg(self, args: Args, now: Nanoseconds) -> dict[str, Any]:
        message = self._receive(args, now)
        error = message.error
        errqueue = None
        if error is not None:
            errqueue = {
                "errno": error.errno,
                "origin": error.origin,
                "type": error.type,
                "code": error.code,
                "info": error.info,
                "data": 0,
                "offender": None if error.offender is None else endpoint_json(error.offender),
            }
        return {
            "data": data_json(message.data),
            "flags": message.flags,
            **endpoint_json(message.address),
            "errqueue": errqueue,
            "ancillary": ancillary_json(message),
        }

    def call_setsockopt(self, args: Args, now: Nanoseconds) -> None:
        name = args.text("name")
        option = SOCKET_OPTIONS.get(name)
        if option is None:
            raise NotSupported(f"unknown socket option {name!r}")
        if not option.settable:
            raise BadRequest(f"{name} cannot be set")
        value = args.value("value")
        if option.kind == "bytes":
            raise NotSupported(f"{name}: the stack sends no IP options of the application")
        if option.kind == "pmtudisc_mode":
            args.choice("value", PMTUDISC_MODES)
        elif option.kind == "linger":
            if not isinstance(value, dict):
                raise BadRequest(f"SO_LINGER value must be {{onoff, linger}}, not {value!r}")
            linger = Args(value)
            value = (linger.integer("onoff"), linger.integer("linger"))
        elif not isinstance(value, int):
            raise NotSupported(f"{name} with value {value!r}")
        self.api.setsockopt(args.integer("sock"), name, int(value) if isinstance(value, bool)
                            else value, now)

    def call_getsockopt(self, args: Args, now: Nanoseconds) -> Any:
        name = args.text("name")
        if name not in SOCKET_OPTIONS:
            raise NotSupported(f"unknown socket option {name!r}")
        value = self.api.getsockopt(args.integer("sock"), name, now)
        if isinstance(value, tuple):
            return {"onoff": value[0], "linger": value[1]}
        return value

    def call_ioctl(self, args: Args, now: Nanoseconds) -> int:
        request = args.text("request")
        if request not in IOCTL_REQUESTS:
            raise NotSupported(f"unknown ioctl request {request!r}")
        return self.api.ioctl(args.integer("sock"), request)

    def call_fcntl(self, args: Args, now: Nanoseconds) -> list[str] | None:
        handle, command = args.integer("sock"), args.text("cmd")
        if command == "F_GETFL":
            return ["O_NONBLOCK"] if self.api.get_nonblocking(handle) else []
        if command == "F_SETFL":
            flags = args.name_set("flags", FILE_STATUS_FLAGS)
            self.api.set_nonblocking(handle, "O_NONBLOCK" in flags)
            return None
        raise NotSupported(f"unknown fcntl cmd {command!r}")

    def call_shutdown(self, args: Args, now: Nanoseconds) -> None:
        how = args.text("how")
        if how not in SHUTDOWN_HOW:
            raise NotSupported(f"unknown how {how!r}")
        self.api.shutdown(args.integer("sock"), how, now)

    def call_close(self, args: Args, now: Nanoseconds) -> None:
        linger = self.api.close(args.integer("sock"), now)
        if linger is not None and not linger.done():
            # SO_LINGER: close waits until the FIN is acknowledged or the time is up.
            def wait(now: Nanoseconds) -> None:
                if not linger.done():
                    raise Blocked()

            raise Blocked(linger.deadline, on_deadline=None, retry=wait)

    def call_poll(self, args: Args, now: Nanoseconds) -> list[str]:
        events = args.name_set("events", POLL_EVENTS)
        timeout_ms = args.integer("timeout_ms")
        returned = self.api.poll(args.integer("sock"), events)
        if not returned and timeout_ms != 0:
            deadline = None if timeout_ms < 0 else now + timeout_ms * MILLISECOND
            raise Blocked(deadline, on_deadline=[])
        return [name for name in POLL_EVENTS if name in returned]  # the protocol's order

    def call_getsockname(self, args: Args, now: Nanoseconds) -> dict[str, Any]:
        return endpoint_json(self.api.getsockname(args.integer("sock")))

    def call_getpeername(self, args: Args, now: Nanoseconds) -> dict[str, Any]:
        return endpoint_json(self.api.getpeername(args.integer("sock")))

    def call_snapshot(self, args: Args, now: Nanoseconds) -> dict[str, Any]:
        return self.api.snapshot(now)

