"""The DUT as a case sees it: POSIX-like socket calls that return values or errno as data.

Every call goes through the agent and lands in the case record with its result, so the
order of calls and what each returned is part of the evidence and of the observations.
A call the target cannot perform raises `Unsupported` (verdict: not applicable).
"""

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent_protocol.names import SOCKET_OPTIONS
from conformance.agent.client import (
    AgentClient,
    AgentError,
    Errno,
    Pending,
    StillBlocked,
    Unsupported,
)
from conformance.errors import HarnessError
from conformance.evidence.record import CallRecord, CaseRecord
from conformance.lab.addressing import Host, stable_port

__all__ = [
    "Ancillary", "Dut", "ErrQueueEntry", "Errno", "Message", "PacketInfo", "PendingCall",
    "Unsupported",
]

DEFAULT_CALL_TIMEOUT_S = 10.0
HANDLE_CALLS = ("socket", "accept")


@dataclass(frozen=True)
class ErrQueueEntry:
    """An extended error from the error queue (Linux struct sock_extended_err)."""

    errno: str
    origin: str
    type: int
    code: int
    info: int
    data: int
    offender: tuple[str, int] | None


@dataclass(frozen=True)
class PacketInfo:
    """IP_PKTINFO (Linux struct in_pktinfo): where a datagram came in."""

    ifindex: int
    spec_dst: str  # the local address a reply would come from
    addr: str  # the destination address of the datagram's header


@dataclass(frozen=True)
class Ancillary:
    """The control messages recvmsg returned; None where none came."""

    options: bytes | None = None  # IP_RECVOPTS: the options area as received
    tos: int | None = None  # IP_RECVTOS
    pktinfo: PacketInfo | None = None  # IP_PKTINFO


@dataclass(frozen=True)
class Message:
    data: bytes
    flags: list[str]
    address: tuple[str, int] | None
    errqueue: ErrQueueEntry | None
    ancillary: Ancillary = Ancillary()


def call_observation_name(entry: CallRecord) -> str:
    """`call.NN.<call>`: the observation a call's result or errno is recorded under."""
    return f"call.{entry.sequence:02d}.{entry.call}"


def _summarise(value: Any) -> Any:
    """What goes into the call log: data as its length and first bytes, not all of it."""
    if isinstance(value, dict):
        return {key: _summarise(item) for key, item in value.items()}
    if isinstance(value, Errno):
        return value.name
    return value


def _with_stable_ports(value: Any) -> Any:
    """A call's result as observed: a port the stack may have picked as `ephemeral`."""
    if isinstance(value, dict):
        return {key: stable_port(item) if key == "port" and isinstance(item, int)
                else _with_stable_ports(item) for key, item in value.items()}
    return value


def _data_arg(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _message(value: dict[str, Any]) -> Message:
    entry = value.get("errqueue")
    errqueue = None
    if entry:
        offender = entry.get("offender")
        errqueue = ErrQueueEntry(
            errno=entry["errno"], origin=entry["origin"], type=entry["type"],
            code=entry["code"], info=entry["info"], data=entry["data"],
            offender=(offender["addr"], offender["port"]) if offender else None,
        )
    raw = value.get("ancillary") or {}
    pktinfo = raw.get("pktinfo")
    ancillary = Ancillary(
        options=base64.b64decode(raw["options"]) if "options" in raw else None,
        tos=raw.get("tos"),
        pktinfo=PacketInfo(pktinfo["ifindex"], pktinfo["spec_dst"], pktinfo["addr"])
        if pktinfo else None,
    )
    return Message(
        data=base64.b64decode(value["data"]),
        flags=list(value.get("flags") or []),
        address=(value["addr"], value["port"]) if value.get("addr") else None,
        errqueue=errqueue,
        ancillary=ancillary,
    )


def _decode(call: str, value: Any) -> Any:
    """The agent's JSON result as the case wants it: bytes, tuples, a Message."""
    if isinstance(value, Errno) or value is None:
        return value
    if call == "recv":
        return base64.b64decode(value["data"])
    if call == "recvfrom":
        return base64.b64decode(value["data"]), (value["addr"], value["port"])
    if call == "recvmsg":
        return _message(value)
    if call == "accept":
        return value["sock"], (value["addr"], value["port"])
    if call in ("getsockname", "getpeername"):
        return value["addr"], value["port"]
    return value


class DutCallBlocked(AssertionError):
    """A DUT call that was still blocked at its deadline: a verdict on the DUT."""


class PendingCall:
    """A call started in the background (an accept waiting for a handshake, ...)."""

    def __init__(self, dut: "Dut", entry: CallRecord, pending: Pending, *,
                 observed: bool = True) -> None:
        self._dut = dut
        self._entry = entry
        self._pending = pending
        self._observed = observed

    def result(self, timeout: float = DEFAULT_CALL_TIMEOUT_S) -> Any:
        return self._dut._finish(self._entry, lambda: self._pending.result(timeout),
                                 observed=self._observed)

    def done(self) -> bool:
        return self._pending.done()

    def wait(self, timeout: float) -> bool:
        """Whether the call finished within `timeout` seconds (then `result` has it)."""
        return self._pending.wait(timeout)


class Dut:
    """The device under test: its address, and its socket API through the agent."""

    def __init__(self, agent: AgentClient, record: CaseRecord, host: Host) -> None:
        self.agent = agent
        self.record = record
        self.host = host

    @property
    def ip(self) -> str:
        return self.host.ip

    # ---- the calls -----------------------------------------------------------------------

    def socket(self, kind: str) -> Any:
        return self.call("socket", type=kind)

    def bind(self, sock: int, addr: str, port: int) -> Any:
        return self.call("bind", sock=sock, addr=addr, port=port)

    def connect(self, sock: int, addr: str, port: int) -> Any:
        return self.call("connect", sock=sock, addr=addr, port=port)

    def listen(self, sock: int, backlog: int) -> Any:
        return self.call("listen", sock=sock, backlog=backlog)

    def accept(self, sock: int) -> Any:
        return self.call("accept", sock=sock)

    def send(self, sock: int, data: bytes, flags: Sequence[str] = ()) -> Any:
        return self.call("send", sock=sock, data=_data_arg(data), flags=list(flags))

    def sendto(self, sock: int, data: bytes, addr: str, port: int,
               flags: Sequence[str] = ()) -> Any:
        return self.call("sendto", sock=sock, data=_data_arg(data), addr=addr, port=port,
                         flags=list(flags))

    def recv(self, sock: int, size: int, flags: Sequence[str] = (), *,
             observed: bool = True) -> Any:
        return self.call("recv", sock=sock, size=size, flags=list(flags), observed=observed)

    def recvfrom(self, sock: int, size: int, flags: Sequence[str] = ()) -> Any:
        return self.call("recvfrom", sock=sock, size=size, flags=list(flags))

    def recvmsg(self, sock: int, size: int, flags: Sequence[str] = ()) -> Any:
        return self.call("recvmsg", sock=sock, size=size, flags=list(flags))

    def setsockopt(self, sock: int, name: str, value: Any) -> Any:
        if isinstance(value, bytes):  # IP_OPTIONS: base64, as data is
            value = _data_arg(value)
        return self.call("setsockopt", sock=sock, name=name, value=value)

    def getsockopt(self, sock: int, name: str) -> Any:
        value = self.call("getsockopt", sock=sock, name=name)
        option = SOCKET_OPTIONS.get(name)
        if option is not None and option.kind == "bytes" and isinstance(value, str):
            return base64.b64decode(value)
        return value

    def ioctl(self, sock: int, request: str) -> Any:
        return self.call("ioctl", sock=sock, request=request)

    def set_nonblocking(self, sock: int, enabled: bool = True) -> Any:
        return self.call("fcntl", sock=sock, cmd="F_SETFL",
                         flags=["O_NONBLOCK"] if enabled else [])

    def shutdown(self, sock: int, how: str) -> Any:
        return self.call("shutdown", sock=sock, how=how)

    def close(self, sock: int) -> Any:
        return self.call("close", sock=sock)

    def poll(self, sock: int, events: Sequence[str], timeout_ms: int) -> Any:
        return self.call("poll", sock=sock, events=list(events), timeout_ms=timeout_ms)

    def getsockname(self, sock: int) -> Any:
        return self.call("getsockname", sock=sock)

    def getpeername(self, sock: int) -> Any:
        return self.call("getpeername", sock=sock)

    def last_result_is_a_choice(self) -> None:
        """The latest call's result is the DUT's to choose (the RFCs leave it open), so
        `conformance compare` allows it to differ."""
        entry = self.record.calls[-1]
        self.record.choose(call_observation_name(entry))

    # ---- plumbing -------------------------------------------------------------------------

    def call(self, call: str, *, timeout: float = DEFAULT_CALL_TIMEOUT_S,
             observed: bool = True, **args: Any) -> Any:
        """Perform one call and wait for its result (a value, or an `Errno`). With
        `observed` False the call log keeps it but no `call.*` observation is recorded:
        for reads whose split the DUT's timing decides, where the case observes the total."""
        entry = self._log(call, args)
        return self._finish(entry, lambda: self.agent.call(call, args, timeout=timeout),
                            observed=observed)

    def start(self, call: str, *, observed: bool = True, **args: Any) -> PendingCall:
        """Start a call that may block; collect it later with `.result(timeout)`."""
        entry = self._log(call, args)
        return PendingCall(self, entry, self.agent.start(call, args), observed=observed)

    def _log(self, call: str, args: dict[str, Any]) -> CallRecord:
        for name, value in args.items():
            if isinstance(value, Errno):
                raise HarnessError(f"{call}: argument {name} is {value}, from an earlier call")
        shown = {k: (f"<{len(base64.b64decode(v))} bytes>" if k == "data" else v)
                 for k, v in args.items()}
        entry = CallRecord(
            sequence=len(self.record.calls) + 1, call=call, args=shown, outcome="pending",
            value=None, started_s=self.record.seconds_since_start(), finished_s=None,
        )
        self.record.calls.append(entry)
        return entry

    def _finish(self, entry: CallRecord, wait: Any, *, observed: bool = True) -> Any:
        try:
            raw = wait()
        except Unsupported as reason:
            entry.outcome, entry.value = "unsupported", str(reason)
            raise
        except StillBlocked as blocked:
            # The agent answers other calls but this one never returned: the DUT never
            # woke it (no data, no error, no handshake), which the case judges.
            entry.outcome, entry.value = "blocked", str(blocked)
            raise DutCallBlocked(
                f"the DUT's {entry.call} (call {entry.sequence}) had not returned: {blocked}"
            ) from None
        except AgentError as error:
            entry.outcome, entry.value = "error", str(error)
            raise HarnessError(f"agent: {error}") from error
        finally:
            entry.finished_s = self.record.seconds_since_start()
        if isinstance(raw, Errno):
            entry.outcome, entry.value = "errno", raw.name
        else:
            entry.outcome = "result"
            entry.value = _summarise(
                {**raw, "data": f"<{len(base64.b64decode(raw['data']))} bytes>"}
                if isinstance(raw, dict) and "data" in raw else raw
            )
        if observed:
            # Handles are the agent's own numbers and differ between targets: "ok".
            value = "ok" if entry.call in HANDLE_CALLS or entry.value is None else entry.value
            self.record.observe(
                call_observation_name(entry),
                entry.value if entry.outcome == "errno" else _with_stable_ports(value),
            )
        return _decode(entry.call, raw)
