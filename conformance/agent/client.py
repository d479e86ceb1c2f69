"""The tester's side of the agent protocol (docs/agent-protocol.md).

`AgentClient` starts an agent process and performs calls on it. A call returns the raw
JSON result, or an `Errno` when the DUT's call failed; every other outcome is an
exception: `Unsupported` (not applicable) or `AgentError` (a harness fault).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from typing import IO, Any

from conformance.agent import forkserver

STDERR_TAIL_CHARS = 2000
# The longest response line taken (docs/agent-protocol.md): far above any case's data in
# base64, and a bound on what an agent that never ends its line makes the tester hold.
MAX_LINE_BYTES = 16 * 1024 * 1024
# Calls a stack may legitimately keep waiting (for a handshake, data, buffer space, a
# lingering close, poll's timeout). Any other call unanswered means the agent hung.
CALLS_THAT_MAY_BLOCK = frozenset(
    {"accept", "connect", "send", "sendto", "recv", "recvfrom", "recvmsg", "poll", "close"})
LIVENESS_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Errno:
    """An errno the DUT's call returned, by name: data, not a failure of the harness."""

    name: str

    def __str__(self) -> str:
        return self.name


class AgentError(Exception):
    """A harness fault: the agent died, timed out, answered "error" or sent bad JSON."""


class StillBlocked(AgentError):
    """The agent is alive but the call has not returned: the DUT never let it finish."""


def describe_exit(returncode: int, who: str = "agent") -> str:
    """`agent was killed by SIGKILL` or `agent exited with status 3` (a Popen returncode)."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"{who} was killed by {name}"
    return f"{who} exited with status {returncode}"


class Unsupported(Exception):
    """The agent answered "unsupported"; the message is its reason."""


class _Waiter:
    """Where the reader thread leaves the response to one request."""

    def __init__(self, request_id: int, call: str, *, background: bool) -> None:
        self.request_id = request_id
        self.call = call
        self.background = background
        self.event = threading.Event()
        self.response: dict[str, Any] | None = None
        self.failure: str | None = None

    def deliver(self, response: dict[str, Any]) -> None:
        self.response = response
        self.event.set()

    def fail(self, why: str) -> None:
        self.failure = why
        self.event.set()


class Pending:
    """A background call; its response may come while other calls run."""

    def __init__(self, client: AgentClient, waiter: _Waiter) -> None:
        self._client = client
        self._waiter = waiter

    def result(self, timeout: float) -> Any:
        """The raw JSON result or an Errno, waiting at most `timeout` seconds."""
        return self._client._outcome(self._waiter, timeout)

    def done(self) -> bool:
        return self._waiter.event.is_set()

    def wait(self, timeout: float) -> bool:
        """Whether the call finished within `timeout` seconds. A call still running then
        is the DUT's doing (it was never woken), not a harness fault."""
        return self._waiter.event.wait(timeout)


class AgentClient:
    """One agent process, driven over its stdin and stdout."""

    def __init__(
        self, argv: list[str], *, name: str = "agent", pass_fds: tuple[int, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        # Lines on stdout that break the protocol; the first one ends the session.
        self.protocol_faults: list[str] = []
        # Open until close(), which keeps what it holds in _stderr_after_close.
        self._stderr = tempfile.TemporaryFile(buffering=0)  # noqa: SIM115
        self._stderr_after_close: str | None = None
        # O_APPEND: the agent's writes never land where our reads left the shared offset.
        flags = fcntl.fcntl(self._stderr.fileno(), fcntl.F_GETFL)
        fcntl.fcntl(self._stderr.fileno(), fcntl.F_SETFL, flags | os.O_APPEND)
        try:
            # A session of its own: close() ends the agent's children with it.
            self._process = forkserver.launch(
                argv, stderr=self._stderr, pass_fds=pass_fds, env=env)
        except OSError as exc:
            self._stderr.close()
            raise AgentError(f"{name}: cannot start {argv!r}: {exc}") from exc
        self._next_id = 1  # the id the next request gets
        self._answered: set[int] = set()  # ids a response came for
        self._lock = threading.Lock()  # guards _waiters, _gone and the writes to stdin
        self._waiters: dict[int, _Waiter] = {}
        self._gone: str | None = None  # why no further response can come
        self._closed = False
        self._death: str | None = None  # how the agent ended before close(), if it did
        self._reader = threading.Thread(
            target=self._read_responses, name=f"{name}-reader", daemon=True
        )
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def exit_status(self) -> int | None:
        """The agent's exit status; None while it runs."""
        return self._process.poll()

    @property
    def death(self) -> str | None:
        """How the agent ended on its own, before `close()` (killed by a signal, exited,
        closed its output), with the end of its stderr; None if it ran until closed."""
        return self._death

    @property
    def stderr_text(self) -> str:
        if self._stderr_after_close is not None:
            return self._stderr_after_close
        size = os.fstat(self._stderr.fileno()).st_size
        return os.pread(self._stderr.fileno(), size, 0).decode(errors="replace")

    def hello(self) -> dict[str, Any]:
        result = self.call("hello", {})
        if not isinstance(result, dict):
            raise AgentError(f"{self.name}: hello answered {result!r}, not an object")
        return result

    def call(self, call: str, args: dict[str, Any], *, timeout: float = 10.0) -> Any:
        """Performs a call in order with the other foreground calls."""
        waiter = self._send(call, args, background=False)
        try:
            return self._outcome(waiter, timeout)
        finally:
            with self._lock:
                self._waiters.pop(waiter.request_id, None)

    def start(self, call: str, args: dict[str, Any]) -> Pending:
        """Starts a call that may block; collect it with `Pending.result`."""
        return Pending(self, self._send(call, args, background=True))

    def close(self, timeout: float = 3.0) -> None:
        """Closes the agent's stdin and waits for it to exit; kills it if it does not."""
        if self._closed:
            return
        self._closed = True
        # A writer stuck on a full pipe holds the lock; then only killing frees it.
        if self._lock.acquire(timeout=timeout):
            try:
                self._gone = "the client was closed"
                if self._process.stdin is not None:
                    self._process.stdin.close()
            except OSError:
                pass  # the agent is already gone: the wait below collects it
            finally:
                self._lock.release()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        # Whatever the agent started and left behind goes with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._reader.join(timeout)
        self._fail_all(f"agent closed (exit status {self._process.returncode})", gone=True)
        if not self._reader.is_alive():  # else it may still read both
            if self._process.stdout is not None:
                self._process.stdout.close()
            # The agent's process group is gone: nothing writes to its stderr any more.
            self._stderr_after_close = self.stderr_text
            self._stderr.close()

    # --- internals ----------------------------------------------------------------------

    def _send(self, call: str, args: dict[str, Any], *, background: bool) -> _Waiter:
        request: dict[str, Any] = {"id": 0, "call": call, "args": args}
        if background:
            request["background"] = True
        with self._lock:
            if self._gone is not None:
                raise AgentError(f"{self.name}: cannot send {call}: {self._gone}")
            request_id = self._next_id
            self._next_id += 1
            request["id"] = request_id
            waiter = _Waiter(request_id, call, background=background)
            self._waiters[request_id] = waiter
            try:
                line = json.dumps(request).encode() + b"\n"
                stdin: IO[bytes] | None = self._process.stdin
                assert stdin is not None
                stdin.write(line)
                stdin.flush()
            except (OSError, ValueError, TypeError) as exc:
                del self._waiters[request_id]
                raise AgentError(
                    f"{self.name}: cannot send {call}: {exc}{self._stderr_tail()}"
                ) from exc
        return waiter

    def _outcome(self, waiter: _Waiter, timeout: float) -> Any:
        """The result of a response, or the exception it stands for."""
        if not waiter.event.wait(timeout):
            late = (f"{self.name}: {waiter.call} (id {waiter.request_id}) got no response "
                    f"within {timeout} s")
            if self._process.poll() is not None:
                raise AgentError(f"{late}{self._stderr_tail()}")
            if waiter.call not in CALLS_THAT_MAY_BLOCK:
                raise AgentError(f"{late}, and it never blocks: the agent hung"
                                 f"{self._stderr_tail()}")
            if waiter.background and not self._answers():
                raise AgentError(f"{late}, and the agent answers nothing else either"
                                 f"{self._stderr_tail()}")
            # The agent is alive and answering: the DUT never let the call finish.
            raise StillBlocked(late)
        if waiter.failure is not None:
            raise AgentError(
                f"{self.name}: {waiter.call} (id {waiter.request_id}): {waiter.failure}"
                f"{self._stderr_tail()}"
            )
        response = waiter.response
        assert response is not None
        if "result" in response:
            return response["result"]
        if isinstance(response.get("errno"), str):
            return Errno(response["errno"])
        if "unsupported" in response:
            raise Unsupported(str(response["unsupported"]))
        if "error" in response:
            raise AgentError(f"{self.name}: {waiter.call} rejected: {response['error']}")
        raise AgentError(f"{self.name}: {waiter.call}: malformed response {response!r}")

    def _answers(self) -> bool:
        """Whether the agent still answers a foreground call (hello) at once."""
        try:
            self.call("hello", {}, timeout=LIVENESS_TIMEOUT_S)
        except (AgentError, Unsupported):
            return False
        return True

    def _read_responses(self) -> None:
        """Reader thread: hands each response to the waiter of its id."""
        stdout = self._process.stdout
        assert stdout is not None
        while line := stdout.readline(MAX_LINE_BYTES + 1):
            if len(line) > MAX_LINE_BYTES:
                self._protocol_fault(f"agent wrote a line longer than {MAX_LINE_BYTES} bytes")
                while len(stdout.readline(MAX_LINE_BYTES)) == MAX_LINE_BYTES:
                    pass  # the rest of that line, read and dropped
                continue
            try:
                response = json.loads(line)
            except ValueError:
                self._protocol_fault(f"agent wrote a line that is not JSON: {line[:200]!r}")
                continue
            request_id = response.get("id") if isinstance(response, dict) else None
            if not isinstance(request_id, int):  # cannot be paired with any request
                self._protocol_fault(f"agent sent a response without an id: "
                                     f"{str(response)[:200]}")
                continue
            with self._lock:
                waiter = self._waiters.pop(request_id, None)
                known = 0 < request_id < self._next_id
                repeated = request_id in self._answered
                self._answered.add(request_id)
            if repeated:  # exactly one response per request
                self._protocol_fault(f"agent answered id {request_id} twice")
            elif waiter is not None:
                waiter.deliver(response)
            elif not known:  # an unknown id (a known one: a call that timed out, late)
                self._protocol_fault(f"agent answered id {request_id}, never asked")
        with self._lock:
            on_its_own = not self._closed
        try:
            why = describe_exit(self._process.wait(timeout=1.0))
        except subprocess.TimeoutExpired:
            why = "agent closed its output"
        if on_its_own:  # final once close() has joined this thread
            self._death = f"{self.name} (pid {self.pid}): {why}{self._stderr_tail()}"
        self._fail_all(why, gone=True)

    def _protocol_fault(self, why: str) -> None:
        """Output that is not a response: the agent cannot be trusted with any further
        call (the docs: nothing but responses on stdout), so every call fails."""
        self.protocol_faults.append(why)
        self._fail_all(why, gone=True)

    def _fail_all(self, why: str, *, gone: bool = False) -> None:
        """Fails every request still waiting; with `gone`, all later ones too."""
        with self._lock:
            waiters = list(self._waiters.values())
            self._waiters.clear()
            if gone and self._gone is None:
                self._gone = why
        for waiter in waiters:
            waiter.fail(why)

    def _stderr_tail(self) -> str:
        text = self.stderr_text.strip()
        if not text:
            return ""
        return f"\nagent stderr (end):\n{text[-STDERR_TAIL_CHARS:]}"
