"""The reference stack's agent: the calls of docs/agent-protocol.md on `SocketApi`.

Everything runs on the event loop's one thread. A call that would block is parked and
tried again each time the stack changes, until it completes or its deadline passes, so
"background" requests need nothing special: no call ever holds up another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any, Final

from agent_protocol.names import (
    FILE_STATUS_FLAGS,
    IOCTL_REQUESTS,
    MESSAGE_FLAGS,
    POLL_EVENTS,
    SHUTDOWN_HOW,
)
from agent_protocol.requests import Args, NotSupported, Request
from agent_protocol.responses import ResponseWriter
from agent_protocol.server import AgentServer, option_value, settable_option, socket_option
from agent_protocol.values import data_json, endpoint_json, errqueue_json, linger_json, pktinfo_json
from stack.endpoints import Endpoint, Message
from stack.errors import SocketError, Unsupported
from stack.sockets import SocketApi
from stack.timing import MILLISECOND, Nanoseconds, earliest

SOCKET_TYPES: Final = ("udp", "tcp")

Continuation = Callable[[], Any]


class Blocked(Exception):
    """The call has to wait. It is tried again whenever the stack changes; at
    ``deadline`` (None: never) it answers ``on_deadline`` instead."""

    def __init__(
        self,
        deadline: Nanoseconds | None = None,
        on_deadline: Any = None,
        retry: Continuation | None = None,
    ) -> None:
        super().__init__()
        self.deadline = deadline
        self.on_deadline = on_deadline
        # What to call instead of the handler when tried again (a call half done, such as
        # a TCP connect whose SYN is out); it may raise Blocked again.
        self.retry = retry


@dataclass
class _Parked:
    request: Request
    deadline: Nanoseconds | None = None
    on_deadline: Any = None
    retry: Continuation | None = None


def ancillary_json(message: Message) -> dict[str, Any]:
    """The control messages of recvmsg (docs/agent-protocol.md): those the stack gave."""
    ancillary: dict[str, Any] = {}
    if message.options is not None:
        ancillary["options"] = data_json(message.options)
    if message.tos is not None:
        ancillary["tos"] = message.tos
    if message.pktinfo is not None:
        info = message.pktinfo
        ancillary["pktinfo"] = pktinfo_json(info.ifindex, info.spec_dst, info.addr)
    return ancillary


class RefAgent(AgentServer):
    """Performs requests on the stack's `SocketApi` at the time `now` the loop gives."""

    name = "ref"

    def __init__(self, api: SocketApi, writer: ResponseWriter) -> None:
        self.api = api
        self.now: Nanoseconds = 0
        self.parked: list[_Parked] = []
        super().__init__(writer)

    # --- requests -----------------------------------------------------------------------

    def receive(self, line: bytes, now: Nanoseconds) -> None:
        """One request line, read at ``now``."""
        self.now = now
        self.handle_line(line)

    def start(self, request: Request) -> None:
        # "background" needs nothing here: a call that would block is parked anyway.
        self._attempt(_Parked(request), first=True)

    def retry(self, now: Nanoseconds) -> None:
        """Try every parked call again, after the stack changed or time passed."""
        self.now = now
        parked, self.parked = self.parked, []
        for call in parked:
            if call.deadline is not None and call.deadline <= now:
                self.writer.send({"id": call.request.id, "result": call.on_deadline})
            else:
                self._attempt(call, first=False)

    def next_deadline(self) -> Nanoseconds | None:
        return earliest(*(call.deadline for call in self.parked))

    def _attempt(self, call: _Parked, *, first: bool) -> None:
        request = call.request
        handler = self.handlers.get(request.call)
        if handler is None:
            self.writer.send(self.unknown_call(request))
            return
        try:
            result = call.retry() if call.retry is not None else handler(Args(request.args))
        except Blocked as blocked:
            if first:  # the deadline counts from the call, not from a retry
                call.deadline, call.on_deadline = blocked.deadline, blocked.on_deadline
            if blocked.retry is not None:
                call.retry = blocked.retry
            self.parked.append(call)
            return
        except Exception as error:
            self.writer.send({"id": request.id, **self.failure(request.call, error)})
            return
        self.writer.send({"id": request.id, "result": result})

    def failure(self, call: str, error: Exception) -> dict[str, Any]:
        if isinstance(error, SocketError):
            return {"errno": error.errno}
        if isinstance(error, Unsupported):
            return {"unsupported": str(error)}
        return super().failure(call, error)

    # --- helpers ------------------------------------------------------------------------

    def _endpoint(self, args: Args) -> tuple[IPv4Address, int]:
        address, port = args.endpoint()
        return IPv4Address(address), port

    def _flags(self, args: Args) -> set[str]:
        return args.name_set("flags", MESSAGE_FLAGS, optional=True)

    def _receive(self, args: Args) -> Message:
        handle, flags = args.integer("sock"), self._flags(args)
        try:
            return self.api.recvmsg(handle, args.integer("size"), flags, self.now)
        except SocketError as error:
            if error.errno == "EAGAIN" and self.api.would_block(handle, flags):
                raise Blocked() from None
            raise

    # --- calls --------------------------------------------------------------------------

    def call_socket(self, args: Args) -> int:
        kind = args.text("type")
        if kind not in SOCKET_TYPES:
            raise NotSupported(f"unknown type {kind!r}")
        return self.api.socket(kind)

    def call_bind(self, args: Args) -> None:
        self.api.bind(args.integer("sock"), *self._endpoint(args))

    def call_connect(self, args: Args) -> None:
        handle = args.integer("sock")
        try:
            self.api.connect(handle, *self._endpoint(args), self.now)
        except SocketError as error:
            # A blocking TCP connect waits for the handshake to end (tcp(7)).
            if error.errno != "EINPROGRESS" or not self.api.would_block(handle, set()):
                raise

            def finish() -> None:
                if not self.api.finish_connect(handle):
                    raise Blocked() from None

            raise Blocked(retry=finish) from None

    def call_listen(self, args: Args) -> None:
        self.api.listen(args.integer("sock"), args.integer("backlog"), self.now)

    def call_accept(self, args: Args) -> dict[str, Any]:
        handle = args.integer("sock")
        try:
            accepted = self.api.accept(handle)
        except SocketError as error:
            if error.errno == "EAGAIN" and self.api.would_block(handle, set()):
                raise Blocked() from None
            raise
        return {"sock": accepted.handle, **endpoint_json(accepted.peer)}

    def call_send(self, args: Args) -> int:
        return self._send(args.integer("sock"), args.data(), None, self._flags(args))

    def call_sendto(self, args: Args) -> int:
        return self._send(
            args.integer("sock"), args.data(), self._endpoint(args), self._flags(args)
        )

    def _send(self, handle: int, data: bytes, destination: Endpoint | None, flags: set[str]) -> int:
        """A blocking TCP send returns once all of ``data`` is in the send buffer."""
        sent = 0

        def attempt() -> int:
            nonlocal sent
            blocking = self.api.is_tcp(handle) and self.api.would_block(handle, flags)
            while True:
                try:
                    sent += self.api.sendto(handle, data[sent:], destination, flags, self.now)
                except SocketError as error:
                    if error.errno == "EAGAIN" and blocking:
                        raise Blocked(retry=attempt) from None
                    if sent:
                        return sent  # Linux: what was sent counts; the error comes next
                    raise
                if sent >= len(data) or not blocking:
                    return sent

        return attempt()

    def call_recv(self, args: Args) -> dict[str, Any]:
        return {"data": data_json(self._receive(args).data)}

    def call_recvfrom(self, args: Args) -> dict[str, Any]:
        message = self._receive(args)
        return {"data": data_json(message.data), **endpoint_json(message.address)}

    def call_recvmsg(self, args: Args) -> dict[str, Any]:
        message = self._receive(args)
        error = message.error
        errqueue = None
        if error is not None:
            errqueue = errqueue_json(
                error.errno, error.origin, error.type, error.code, error.info, 0, error.offender
            )
        return {
            "data": data_json(message.data),
            "flags": message.flags,
            **endpoint_json(message.address),
            "errqueue": errqueue,
            "ancillary": ancillary_json(message),
        }

    def call_setsockopt(self, args: Args) -> None:
        name, option = settable_option(args)
        if option.kind == "int" and not isinstance(args.value("value"), int):
            raise NotSupported(f"{name} with value {args.value('value')!r}")
        value = option_value(args, name, option)
        if isinstance(value, bytes):
            raise NotSupported(f"{name}: the stack sends no IP options of the application")
        self.api.setsockopt(args.integer("sock"), name, value, self.now)

    def call_getsockopt(self, args: Args) -> Any:
        name, _ = socket_option(args)
        value = self.api.getsockopt(args.integer("sock"), name, self.now)
        if isinstance(value, tuple):
            return linger_json(*value)
        return value

    def call_ioctl(self, args: Args) -> int:
        request = args.text("request")
        if request not in IOCTL_REQUESTS:
            raise NotSupported(f"unknown ioctl request {request!r}")
        return self.api.ioctl(args.integer("sock"), request)

    def call_fcntl(self, args: Args) -> list[str] | None:
        handle, command = args.integer("sock"), args.text("cmd")
        if command == "F_GETFL":
            return ["O_NONBLOCK"] if self.api.get_nonblocking(handle) else []
        if command == "F_SETFL":
            flags = args.name_set("flags", FILE_STATUS_FLAGS)
            self.api.set_nonblocking(handle, "O_NONBLOCK" in flags)
            return None
        raise NotSupported(f"unknown fcntl cmd {command!r}")

    def call_shutdown(self, args: Args) -> None:
        how = args.text("how")
        if how not in SHUTDOWN_HOW:
            raise NotSupported(f"unknown how {how!r}")
        self.api.shutdown(args.integer("sock"), how, self.now)

    def call_close(self, args: Args) -> None:
        linger = self.api.close(args.integer("sock"), self.now)
        if linger is not None and not linger.done():
            # SO_LINGER: close waits until the FIN is acknowledged or the time is up.
            def wait() -> None:
                if not linger.done():
                    raise Blocked()

            raise Blocked(linger.deadline, on_deadline=None, retry=wait)

    def call_poll(self, args: Args) -> list[str]:
        events = args.name_set("events", POLL_EVENTS)
        timeout_ms = args.integer("timeout_ms")
        returned = self.api.poll(args.integer("sock"), events)
        if not returned and timeout_ms != 0:
            deadline = None if timeout_ms < 0 else self.now + timeout_ms * MILLISECOND
            raise Blocked(deadline, on_deadline=[])
        return [name for name in POLL_EVENTS if name in returned]  # the protocol's order

    def call_getsockname(self, args: Args) -> dict[str, Any]:
        return endpoint_json(self.api.getsockname(args.integer("sock")))

    def call_getpeername(self, args: Args) -> dict[str, Any]:
        return endpoint_json(self.api.getpeername(args.integer("sock")))

    def call_snapshot(self, args: Args) -> dict[str, Any]:
        return self.api.snapshot(self.now)
