"""Agents started by forking a pre-imported process instead of a new interpreter.

An agent written in Python (`python -m stack.io`, `python -m conformance.agent.linux`)
spends most of its start importing itself: about 260 ms of CPU for the reference stack,
150 ms for the Linux agent, per case. A tester process starts one fork server, which
imports those modules once and then forks a child per agent. The child gets the
descriptors the tester sends it (stdin, stdout, stderr and the `pass_fds`, each at the
number the tester gave it), a session of its own, and runs the module's `main(argv)`.

The server is the children's parent: it reaps them and reports each exit status, and
hands the tester a pidfd per child so that signals never reach a recycled pid. It exits
when the tester's end of its socket closes, whatever way the tester ended; its children
end with their stdin as they do when started by `subprocess`.

Run as `python -m conformance.agent.forkserver FD --tester PID`, PID the tester's pid: it
names the server and, since a fork keeps the command line, every agent it forked, so
that a leak check finds them (`ps -ef | grep 'forkserver.*--tester PID'`). A tester
forked by a run's worker server (conformance.run.workers) has its fork server forked
from that server instead, where these modules are imported already (`start_servers_with`):
named `cfa<PID>` (its comm, as `ps -o comm` shows), and so is every agent it forks.
`launch` is the tester's side.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import gc
import importlib
import json
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import IO, Any, Protocol

# The agents a fork server serves: their modules are imported before the first fork.
PRELOADED_MODULES = ("stack.io.__main__", "conformance.agent.linux")
MAX_MESSAGE = 1 << 16
MAX_FDS = 16
START_TIMEOUT_S = 30.0


class AgentProcess(Protocol):
    """What `AgentClient` needs of an agent process: `subprocess.Popen`'s members."""

    pid: int
    stdin: IO[bytes] | None
    stdout: IO[bytes] | None
    returncode: int | None

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def kill(self) -> None: ...


def launch(
    argv: list[str], *, stderr: IO[bytes], pass_fds: tuple[int, ...] = (),
    env: dict[str, str] | None = None,
) -> AgentProcess:
    """The agent process for `argv`, its stdin and stdout pipes to this process: forked
    from the fork server when `argv` is `python -m` of a preloaded module (in this
    process's environment), started with `subprocess` otherwise. OSError when it cannot
    start."""
    module = _preloaded_module(argv)
    if module is None or env is not None:
        return subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
            pass_fds=pass_fds, env=env, start_new_session=True,
        )
    return _shared_server().spawn(module, argv, stderr=stderr, pass_fds=pass_fds)


def _preloaded_module(argv: list[str]) -> str | None:
    if len(argv) < 3 or argv[0] != sys.executable or argv[1] != "-m":
        return None
    for module in PRELOADED_MODULES:
        if argv[2] in (module, module.removesuffix(".__main__")):
            return module
    return None


# --- the tester's side -------------------------------------------------------------------


class ForkedProcess:
    """An agent forked by the fork server; its exit status comes from the server."""

    def __init__(self, server: ForkServer, argv: list[str], pid: int, pidfd: int,
                 stdin: IO[bytes], stdout: IO[bytes]) -> None:
        self.args = argv
        self.pid = pid
        self.stdin: IO[bytes] | None = stdin
        self.stdout: IO[bytes] | None = stdout
        self.returncode: int | None = None
        self._server = server
        self.pidfd = pidfd

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        with self._server.exits:
            if not self._server.exits.wait_for(lambda: self.returncode is not None,
                                               timeout):
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        with self._server.exits:
            if self.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    def exited(self, returncode: int) -> None:
        """Called by the server's reader, holding `exits`."""
        self.returncode = returncode
        os.close(self.pidfd)


class ServerProcess(Protocol):
    """What `ForkServer` needs of its server's process."""

    pid: int

    def wait(self, timeout: float | None = None) -> object: ...
    def kill(self) -> None: ...


# Starts a fork server on the given end of its socket, in a process already importing
# the agents' modules (set in the workers a run's worker server forks); None: a new
# interpreter per tester process.
ServerStarter = Callable[[socket.socket], ServerProcess]
_server_starter: ServerStarter | None = None


def start_servers_with(starter: ServerStarter | None) -> None:
    """How this process starts its fork server (see the module's docstring)."""
    global _server_starter
    _server_starter = starter


class ForkServer:
    """One fork server process and the reader of its reports."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            self._process = _start_server(theirs)
        self._socket = ours
        self._owner = os.getpid()
        self._spawn_lock = threading.Lock()  # one spawn at a time: replies come in order
        self.exits = threading.Condition()  # guards _children, _replies, _gone
        self._children: dict[int, ForkedProcess] = {}
        self._early_exits: dict[int, int] = {}  # exits reported before the spawn returned
        self._replies: list[tuple[dict[str, Any], list[int]]] = []
        self._gone: str | None = None
        self._reader = threading.Thread(target=self._read, name="forkserver", daemon=True)
        self._reader.start()

    @property
    def server_pid(self) -> int:
        return self._process.pid

    def spawn(self, module: str, argv: list[str], *, stderr: IO[bytes],
              pass_fds: tuple[int, ...]) -> ForkedProcess:
        stdin_read, stdin_write = os.pipe()
        stdout_read, stdout_write = os.pipe()
        try:
            request = {"module": module, "argv": argv[3:], "fds": [0, 1, 2, *pass_fds]}
            fds = [stdin_read, stdout_write, stderr.fileno(), *pass_fds]
            with self._spawn_lock:
                try:
                    socket.send_fds(self._socket, [json.dumps(request).encode()], fds)
                except OSError as error:
                    raise OSError(f"the fork server is gone: {error}") from error
                reply, reply_fds = self._next_reply()
        finally:
            os.close(stdin_read)
            os.close(stdout_write)
        if "error" in reply:
            os.close(stdin_write)
            os.close(stdout_read)
            raise OSError(f"the fork server cannot start {module}: {reply['error']}")
        child = ForkedProcess(self, argv, reply["pid"], reply_fds[0],
                              os.fdopen(stdin_write, "wb"), os.fdopen(stdout_read, "rb"))
        with self.exits:
            self._children[child.pid] = child
            if child.pid in self._early_exits:
                child.exited(self._early_exits.pop(child.pid))
                del self._children[child.pid]
                self.exits.notify_all()
        return child

    def close(self) -> None:
        if os.getpid() != self._owner:
            return  # a forked copy of the tester (at exit): a shutdown would end the server
        # shutdown first: the reader thread's recv holds the socket open past a close.
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        try:
            self._process.wait(START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _next_reply(self) -> tuple[dict[str, Any], list[int]]:
        with self.exits:
            if not self.exits.wait_for(lambda: self._replies or self._gone,
                                       START_TIMEOUT_S):
                raise OSError("the fork server did not answer")
            if self._replies:
                return self._replies.pop(0)
            raise OSError(f"the fork server is gone: {self._gone}")

    def _read(self) -> None:
        while True:
            try:
                message, fds, _, _ = socket.recv_fds(self._socket, MAX_MESSAGE, MAX_FDS)
            except OSError as error:
                message, fds = b"", []
                gone = str(error)
            else:
                gone = "it closed its socket"
            if not message:
                break
            report = json.loads(message)
            with self.exits:
                if "exited" in report:
                    child = self._children.pop(report["exited"], None)
                    if child is None:
                        self._early_exits[report["exited"]] = report["returncode"]
                    else:
                        child.exited(report["returncode"])
                else:
                    self._replies.append((report, fds))
                self.exits.notify_all()
        with self.exits:
            # Children whose parent is gone could no longer be accounted for: killed.
            self._gone = gone
            for child in self._children.values():
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(child.pidfd, signal.SIGKILL)
                child.exited(-signal.SIGKILL)
            self._children.clear()
            self.exits.notify_all()


def _start_server(theirs: socket.socket) -> ServerProcess:
    if _server_starter is not None:
        with contextlib.suppress(OSError):  # the run's worker server is gone: a new one
            return _server_starter(theirs)
    return subprocess.Popen(
        [sys.executable, "-m", "conformance.agent.forkserver", str(theirs.fileno()),
         "--tester", str(os.getpid())],
        stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),),
    )


_server: ForkServer | None = None
_server_owner = 0
_server_lock = threading.Lock()


def _shared_server() -> ForkServer:
    """This process's fork server, started on first use (a forked tester gets its own)."""
    global _server, _server_owner
    with _server_lock:
        if _server is None or _server_owner != os.getpid():
            _server = ForkServer()
            _server_owner = os.getpid()
            atexit.register(_server.close)
        return _server


# --- the server's side -------------------------------------------------------------------


def serve(control: socket.socket) -> None:
    for module in PRELOADED_MODULES:
        importlib.import_module(module)
    gc.freeze()  # the children share these pages instead of copying them at their first gc
    wakeup_read, wakeup_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wakeup_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wakeup_read, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is control:
                try:
                    message, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE, MAX_FDS)
                except ConnectionResetError:
                    message, fds = b"", []
                if not message:
                    return  # the tester is gone
                _spawn(control, json.loads(message), fds)
            else:
                with contextlib.suppress(BlockingIOError):
                    os.read(wakeup_read, 4096)
        _reap(control)


def _spawn(control: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
    if len(fds) != len(request["fds"]):
        _send(control, {"error": f"got {len(fds)} descriptors for {request['fds']}"})
    else:
        pid = os.fork()
        if pid == 0:
            _run_child(request["module"], request["argv"], fds, request["fds"])
        pidfd = os.pidfd_open(pid)  # before any reaping: it cannot name another process
        _send(control, {"pid": pid}, [pidfd])
        os.close(pidfd)
    for fd in fds:
        os.close(fd)


def reaped_children() -> Iterator[tuple[int, int]]:
    """The children of this process that have ended, reaped as they are yielded: their
    pid and exit status (negative: the signal that ended it, as subprocess has it)."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, os.waitstatus_to_exitcode(status)


def _reap(control: socket.socket) -> None:
    for pid, returncode in reaped_children():
        _send(control, {"exited": pid, "returncode": returncode})


def _send(control: socket.socket, report: dict[str, Any], fds: list[int] | None = None) -> None:
    with contextlib.suppress(OSError):  # the tester is gone: the select loop ends
        socket.send_fds(control, [json.dumps(report).encode()], fds or [])


def _run_child(module: str, argv: list[str], fds: list[int], numbers: list[int]) -> None:
    """In the forked child: the descriptors at their numbers, then the agent's main."""
    code = 1
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        # Above every number in use first, so that no dup2 overwrites a descriptor yet
        # to be placed.
        floor = max([*fds, *numbers]) + 1
        moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, floor) for fd in fds]
        for fd, number in zip(moved, numbers, strict=True):
            os.dup2(fd, number)
        for open_fd in map(int, os.listdir("/proc/self/fd")):
            if open_fd not in numbers:
                with contextlib.suppress(OSError):  # the listing's own, closed already
                    os.close(open_fd)
        random.seed()  # not the server's state: each agent draws its own ports and ISNs
        sys.argv = [module.removesuffix(".__main__"), *argv]
        code = importlib.import_module(module).main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the tester's to handle
    serve(socket.socket(fileno=int(sys.argv[1])))


if __name__ == "__main__":
    main()
