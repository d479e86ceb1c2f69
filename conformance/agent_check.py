"""`conformance agent-check`: whether an agent keeps the contract of docs/agent-protocol.md,
and what it supports.

Each check performs a few calls on a started DUT and ends in a `CheckResult` (passed or
not, with a one-paragraph detail and, when it failed, the end of the agent's stderr).
The checks run in the order of `check_agent`; "end of input" closes the agent, so it comes
last but one, and "stdout" judges everything the agent wrote, so it comes last. The
probes of what the agent supports (`Probe`) are data, never a failure.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import signal
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from agent_protocol.names import CALLS, IOCTL_REQUESTS, SOCKET_OPTIONS
from agent_protocol.names import SOL_UDP as SOL_UDP_LEVEL
from conformance.agent.client import (
    AgentClient,
    AgentError,
    Errno,
    Pending,
    StillBlocked,
    Unsupported,
)
from conformance.lab.addressing import DUT, TESTER
from conformance.lab.netns import Lab
from conformance.targets.base import StartedDut, Target, TargetOptions

UNKNOWN_CALL = "no_such_call_agent_check"  # a call no version of the protocol will have
CALL_TIMEOUT_S = 5.0  # a foreground call's answer; every agent here needs milliseconds
DATAGRAM_TIMEOUT_S = 5.0  # from the datagram on the wire to the background recv's answer
END_OF_INPUT_TIMEOUT_S = 5.0  # from stdin closed to the agent's exit
BACKGROUND_PORT = 40001  # the port the background recv waits on (no call learns it)
PAYLOAD = b"agent-check: background recv"
STDERR_TAIL_LINES = 12

SocketKind = Literal["udp", "tcp"]
KINDS: tuple[SocketKind, ...] = ("udp", "tcp")
ProbeOutcome = Literal["supported", "unsupported", "errno", "error", "not probed"]


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str
    stderr_tail: str = ""  # the end of the agent's stderr, for a failed check


@dataclass(frozen=True)
class Probe:
    """How the agent answered one getsockopt or ioctl: the value, the reason for
    "unsupported", the errno name or the harness error."""

    outcome: ProbeOutcome
    detail: str = ""


@dataclass
class AgentCheckReport:
    agent: str
    checks: list[CheckResult] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # as hello lists them
    # name -> socket kind -> probe; an option is probed on the kinds it applies to.
    options: dict[str, dict[str, Probe]] = field(default_factory=dict)
    ioctls: dict[str, dict[str, Probe]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def missing_calls(self) -> list[str]:
        return [call for call in CALLS if call not in self.calls]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed, "missing_calls": self.missing_calls}


class CheckFailed(Exception):
    """A check's finding: the agent broke the contract as the message says."""


def check_target(target: Target, options: TargetOptions) -> AgentCheckReport:
    """Builds a lab, starts the target's DUT in it, checks its agent, removes the lab."""
    with Lab.create() as lab:
        dut = target.start(lab, options)
        try:
            return check_agent(dut)
        finally:
            dut.stop()


def check_agent(dut: StartedDut) -> AgentCheckReport:
    """Every check and probe on a started DUT; leaves its agent closed."""
    agent = dut.agent
    hello = dut.hello
    report = AgentCheckReport(agent=str(hello.get("agent", "?")))
    calls = hello.get("calls")
    if isinstance(calls, list):
        report.calls = [str(call) for call in calls]
    steps: list[tuple[str, Callable[[], str]]] = [
        ("hello", lambda: check_hello(hello)),
        ("unknown-call", lambda: check_unknown_call(agent)),
        ("errno-names", lambda: check_errno_names(agent)),
        ("background-calls", lambda: check_background_calls(dut)),
    ]
    for name, step in steps:
        report.checks.append(_run_check(agent, name, step))
    report.options, report.ioctls = probe_supports(agent)
    report.checks.append(_run_check(agent, "end-of-input", lambda: check_end_of_input(agent)))
    report.checks.append(_run_check(agent, "stdout", lambda: check_stdout(agent)))
    return report


def _run_check(agent: AgentClient, name: str, step: Callable[[], str]) -> CheckResult:
    try:
        return CheckResult(name, True, step())
    except (CheckFailed, AgentError, Unsupported) as failure:
        detail = str(failure).splitlines()[0] if str(failure) else type(failure).__name__
        if isinstance(failure, Unsupported):
            detail = f"a call the check needs answered unsupported: {detail}"
        return CheckResult(name, False, detail, _stderr_tail(agent))


def _stderr_tail(agent: AgentClient) -> str:
    lines = agent.stderr_text.strip().splitlines()
    return "\n".join(lines[-STDERR_TAIL_LINES:]) if lines else "(the agent wrote nothing on stderr)"


# --- the checks: each returns what it saw, or raises CheckFailed ------------------------


def check_hello(hello: dict[str, Any]) -> str:
    """protocol 1, `agent` a string, `calls` a list of strings."""
    if hello.get("protocol") != 1:
        raise CheckFailed(f"protocol is {hello.get('protocol')!r}, not 1")
    if not isinstance(hello.get("agent"), str):
        raise CheckFailed(f"agent is {hello.get('agent')!r}, not a string")
    calls = hello.get("calls")
    if not isinstance(calls, list) or not all(isinstance(call, str) for call in calls):
        raise CheckFailed(f"calls is {calls!r}, not a list of strings")
    missing = [call for call in CALLS if call not in calls]
    extra = [call for call in calls if call not in CALLS]
    return (
        f"agent {hello['agent']!r}, {len(calls)} calls"
        + (f"; lacks {', '.join(missing)}" if missing else "; every call of the protocol")
        + (f"; also lists {', '.join(extra)}, which the protocol lacks" if extra else "")
    )


def check_unknown_call(agent: AgentClient) -> str:
    """A call name the protocol lacks is answered `unsupported` (not `error`, not silence),
    so that the tester may add calls without breaking older agents."""
    try:
        result = agent.call(UNKNOWN_CALL, {}, timeout=CALL_TIMEOUT_S)
    except Unsupported as reason:
        return f"{UNKNOWN_CALL} answered unsupported ({reason})"
    except StillBlocked as silence:
        raise CheckFailed(f"{UNKNOWN_CALL} was not answered: {silence}") from silence
    except AgentError as error:
        raise CheckFailed(f"{UNKNOWN_CALL} was not answered unsupported: {error}") from error
    raise CheckFailed(f"{UNKNOWN_CALL} answered {_shown(result)}, not unsupported")


def check_errno_names(agent: AgentClient) -> str:
    """A non-blocking recv on an empty UDP socket answers {"errno": "EAGAIN"}: a name,
    never a number, and the first of the pair EAGAIN/EWOULDBLOCK."""
    sock = _socket(agent, "udp")
    try:
        _call(agent, "bind", sock=sock, addr=DUT.ip, port=0)
        try:
            _call(agent, "fcntl", sock=sock, cmd="F_SETFL", flags=["O_NONBLOCK"])
            how, flags = "O_NONBLOCK", []
        except Unsupported:  # the flag does the same for this one call
            how, flags = "MSG_DONTWAIT", ["MSG_DONTWAIT"]
        try:
            answer = agent.call(
                "recv", {"sock": sock, "size": 64, "flags": flags}, timeout=CALL_TIMEOUT_S
            )
        except StillBlocked as blocked:
            raise CheckFailed(f"a recv with {how} blocked: {blocked}") from blocked
        except AgentError as error:  # a number in "errno" is a malformed response
            raise CheckFailed(f"recv with {how} on an empty socket: {error}") from error
    finally:
        _close_quietly(agent, sock)
    if not isinstance(answer, Errno):
        raise CheckFailed(
            f"recv with {how} on an empty socket answered {_shown(answer)}, not an errno"
        )
    if answer.name not in errno.errorcode.values():
        raise CheckFailed(
            f"recv with {how} answered errno {answer.name!r}, which names no errno of errno.h"
        )
    if answer.name != "EAGAIN":
        raise CheckFailed(
            f"recv with {how} on an empty socket answered {answer.name}, not "
            "EAGAIN (of a pair of names, the protocol wants the first)"
        )
    return f"recv with {how} on an empty UDP socket answered errno EAGAIN"


def check_background_calls(dut: StartedDut) -> str:
    """A background recv blocks; a foreground call is answered meanwhile; a datagram on
    the wire wakes the recv, which returns exactly its payload."""
    agent = dut.agent
    sock = _socket(agent, "udp")
    try:
        _call(agent, "bind", sock=sock, addr=DUT.ip, port=BACKGROUND_PORT)
        pending = agent.start("recv", {"sock": sock, "size": 2048})
        problem = None
        try:
            name = agent.call("getsockname", {"sock": sock}, timeout=CALL_TIMEOUT_S)
            if pending.done():
                problem = (
                    f"the background recv returned before any datagram came: "
                    f"{_shown(_outcome(pending))}"
                )
        except StillBlocked as blocked:
            problem = (
                f"getsockname was not answered while a background recv waited "
                f"(answers in the order of the requests?): {blocked}"
            )
        # The datagram goes out in any case: the recv must not stay blocked for what follows.
        frame = (
            Ether(src=TESTER.mac, dst=DUT.mac)
            / IP(src=TESTER.ip, dst=DUT.ip)
            / UDP(sport=BACKGROUND_PORT, dport=BACKGROUND_PORT)
            / PAYLOAD
        )
        dut.wire.write_frame(bytes(frame))
        if problem is not None:
            pending.wait(DATAGRAM_TIMEOUT_S)
            raise CheckFailed(problem)
        if not pending.wait(DATAGRAM_TIMEOUT_S):
            raise CheckFailed(
                f"the background recv did not return within "
                f"{DATAGRAM_TIMEOUT_S} s of a datagram to port "
                f"{BACKGROUND_PORT}"
            )
        answer = _outcome(pending)
    finally:
        _close_quietly(agent, sock)
    if not isinstance(answer, dict) or "data" not in answer:
        raise CheckFailed(f"the background recv answered {_shown(answer)}, not {{data}}")
    data = base64.b64decode(answer["data"])
    if data != PAYLOAD:
        raise CheckFailed(f"the background recv returned {data!r}, not {PAYLOAD!r}")
    return (
        f"getsockname answered {_shown(name)} while a background recv waited; the recv "
        f"returned the {len(PAYLOAD)} octets of the datagram"
    )


def check_end_of_input(agent: AgentClient) -> str:
    """With sockets open and a background call pending, closing stdin ends the agent,
    with status 0, within END_OF_INPUT_TIMEOUT_S."""
    for kind in KINDS:
        _socket(agent, kind)
    listener = _socket(agent, "tcp")
    _call(agent, "bind", sock=listener, addr=DUT.ip, port=BACKGROUND_PORT)
    _call(agent, "listen", sock=listener, backlog=1)
    pending = agent.start("accept", {"sock": listener})
    if pending.wait(0):
        raise CheckFailed(f"accept returned without a connection: {_shown(_outcome(pending))}")
    agent.close(timeout=END_OF_INPUT_TIMEOUT_S)
    status = agent.exit_status
    if status == 0:
        return (
            "with 3 sockets open and an accept pending, the agent exited with status 0 "
            "once its stdin closed"
        )
    if status == -signal.SIGKILL:
        raise CheckFailed(
            f"the agent had not exited {END_OF_INPUT_TIMEOUT_S} s after its stdin closed (killed)"
        )
    raise CheckFailed(f"the agent exited with status {status} when its stdin closed, not 0")


def check_stdout(agent: AgentClient) -> str:
    """Nothing but responses on stdout over the whole session."""
    if agent.protocol_faults:
        raise CheckFailed("; ".join(agent.protocol_faults))
    return "every line on stdout was a response to a request"


# --- what the agent supports -------------------------------------------------------------


def option_kinds(level: int) -> tuple[SocketKind, ...]:
    """The kinds of socket an option of `level` applies to."""
    if level == socket.IPPROTO_TCP:
        return ("tcp",)
    if level == SOL_UDP_LEVEL:
        return ("udp",)
    return KINDS


def probe_supports(
    agent: AgentClient,
) -> tuple[dict[str, dict[str, Probe]], dict[str, dict[str, Probe]]]:
    """Every socket option by getsockopt and every ioctl request, on a new socket of each
    kind it applies to. An agent that stops answering leaves the rest "not probed"."""
    options: dict[str, dict[str, Probe]] = {name: {} for name in SOCKET_OPTIONS}
    ioctls: dict[str, dict[str, Probe]] = {name: {} for name in IOCTL_REQUESTS}
    stuck = False
    for kind in KINDS:
        try:
            sock, unavailable = _socket(agent, kind), ""
        except (CheckFailed, AgentError, Unsupported) as failure:
            sock, unavailable = -1, str(failure).splitlines()[0]
        probes = [
            (options[name], "getsockopt", {"name": name})
            for name, option in SOCKET_OPTIONS.items()
            if kind in option_kinds(option.level)
        ]
        probes += [(ioctls[name], "ioctl", {"request": name}) for name in IOCTL_REQUESTS]
        for table, call, args in probes:
            if unavailable:
                table[kind] = Probe("error", f"no {kind} socket: {unavailable}")
            elif stuck:
                table[kind] = Probe("not probed")
            else:
                try:
                    table[kind] = _probe(agent, call, {"sock": sock, **args})
                except StillBlocked as blocked:  # every later call would wait as long
                    table[kind], stuck = Probe("error", str(blocked)), True
        if not unavailable and not stuck:
            _close_quietly(agent, sock)
    return options, ioctls


def _probe(agent: AgentClient, call: str, args: dict[str, Any]) -> Probe:
    try:
        answer = agent.call(call, args, timeout=CALL_TIMEOUT_S)
    except Unsupported as reason:
        return Probe("unsupported", str(reason))
    except StillBlocked:
        raise
    except AgentError as error:
        return Probe("error", str(error).splitlines()[0])
    if isinstance(answer, Errno):
        return Probe("errno", answer.name)
    return Probe("supported", json.dumps(answer))


# --- plumbing ----------------------------------------------------------------------------


def _call(agent: AgentClient, call: str, **args: Any) -> Any:
    """A call the check relies on: an errno is a finding, not a value."""
    answer = agent.call(call, args, timeout=CALL_TIMEOUT_S)
    if isinstance(answer, Errno):
        raise CheckFailed(f"{call} {_shown(args)} answered {answer.name}")
    return answer


def _socket(agent: AgentClient, kind: SocketKind) -> int:
    handle = _call(agent, "socket", type=kind)
    if not isinstance(handle, int):
        raise CheckFailed(f"socket answered {_shown(handle)}, not an integer handle")
    return handle


def _close_quietly(agent: AgentClient, sock: int) -> None:
    """Closes a socket the check made; the check's own finding matters more."""
    with contextlib.suppress(AgentError, Unsupported):
        agent.call("close", {"sock": sock}, timeout=CALL_TIMEOUT_S)


def _outcome(pending: Pending) -> Any:
    """A finished background call's answer, with unsupported and errors as text."""
    try:
        return pending.result(0)
    except (AgentError, Unsupported) as failure:
        return f"{type(failure).__name__}: {failure}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
