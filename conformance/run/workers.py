"""pytest-xdist workers forked from a process that has imported and collected the suites.

A worker started as a new interpreter spends about 1.8 s of CPU before its first case
(pytest, scapy, pyroute2 and the tester imported, then the suites collected), and a
parallel run starts all its workers at once, on two cores here. Instead the run forks a
worker server once it has collected the suites itself, and execnet starts each worker
through worker_launcher.py, which hands its standard streams to the server over a Unix
socket: the server forks a worker onto them that runs execnet's bootstrap as
`python -u -c` would, with everything imported already.

A worker starts as a new interpreter would: descriptors 0-2 only, the signal
dispositions of a new process, no exit handlers but its own, its own random state, the
launcher's working directory. Its launcher stands in for it towards execnet (see
worker_launcher.py); a launcher that goes away takes its worker with it (SIGKILL, as
execnet kills a worker that does not stop). The server ends when the run closes it, is
sent SIGTERM or loses the run: workers still running are sent SIGTERM (they remove
their labs), and SIGKILL after a grace.
"""

import atexit
import contextlib
import ctypes
import fcntl
import functools
import gc
import importlib
import json
import os
import random
import selectors
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conformance.agent import forkserver
from conformance.run import worker_launcher

LAUNCHER = Path(worker_launcher.__file__)
# What a worker imports beyond the suites (xdist's worker code arrives as source), and
# what its agent fork server does.
PRELOADED_MODULES = ("execnet", "xdist.plugin", "xdist.remote", *forkserver.PRELOADED_MODULES)
PR_SET_NAME = 15  # linux/prctl.h
_libc = ctypes.CDLL(None, use_errno=True)
MAX_MESSAGE = worker_launcher.MAX_MESSAGE
STOP_GRACE_S = 2.0  # for workers sent SIGTERM to end, before SIGKILL
CLOSE_TIMEOUT_S = 10.0  # for the server to end once closed


class WorkerServer:
    """The process a run's pytest-xdist workers are forked from."""

    def __init__(self, pid: int, control: int, directory: Path) -> None:
        self.pid = pid
        self._control = control  # the server ends when this closes
        self._directory = directory

    @property
    def socket_path(self) -> Path:
        return self._directory / "socket"

    @property
    def python(self) -> str:
        """What execnet is to start as a worker's Python (`popen//python=...`)."""
        return shlex.join([sys.executable, "-I", "-S", str(LAUNCHER), str(self.socket_path)])

    @classmethod
    def start(cls, prepare: Callable[[], object] | None = None) -> "WorkerServer | None":
        """Fork the server from this process, which must have imported what workers need;
        `prepare` runs first in the server (a collection, to import the suites). None when
        this process runs threads: a fork would copy locks they hold."""
        if threading.active_count() > 1:
            return None
        directory = Path(tempfile.mkdtemp(prefix="conformance-workers-"))
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(str(directory / "socket"))
        listener.listen(64)
        control_read, control_write = os.pipe2(os.O_CLOEXEC)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(control_write)
                code = _serve(listener, control_read, prepare)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(control_read)
        listener.close()
        return cls(pid, control_write, directory)

    def kill(self) -> None:
        """End a server that never served a worker at once (SIGKILL), and wait for it."""
        os.kill(self.pid, signal.SIGKILL)
        self.close()

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """End the server (its workers still running first) and wait for it."""
        if self._control < 0:
            return
        os.close(self._control)
        self._control = -1
        pidfd = os.pidfd_open(self.pid)
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(pidfd, selectors.EVENT_READ)
                ended = bool(selector.select(timeout_s))
            if not ended:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        finally:
            os.close(pidfd)
            with contextlib.suppress(OSError):
                self.socket_path.unlink()
                self._directory.rmdir()


# --- the server's side -------------------------------------------------------------------


def _serve(listener: socket.socket, control: int,
           prepare: Callable[[], object] | None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the run and its workers
    if prepare is not None:
        prepare()
    for module in PRELOADED_MODULES:
        importlib.import_module(module)
    atexit._clear()  # the run's exit handlers are neither the server's nor its workers'
    gc.freeze()  # the workers share these pages instead of copying them at their first gc
    wakeup_read, wakeup_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wakeup_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(control, selectors.EVENT_READ)
    selector.register(wakeup_read, selectors.EVENT_READ)
    workers: dict[socket.socket, int] = {}  # a launcher's connection: its worker's pid
    pidfds: dict[int, int] = {}
    while not stopping:
        for key, _ in selector.select():
            if key.fileobj is listener:
                connection, _ = listener.accept()
                selector.register(connection, selectors.EVENT_READ)
            elif key.fileobj == control:
                stopping.append(0)  # closed: the run is done with its workers, or gone
            elif key.fileobj == wakeup_read:
                with contextlib.suppress(BlockingIOError):
                    os.read(wakeup_read, 4096)
            else:
                launcher = key.fileobj
                assert isinstance(launcher, socket.socket)
                if launcher in workers:  # readable again: the launcher is gone
                    _signal(pidfds, workers.pop(launcher), signal.SIGKILL)
                    selector.unregister(launcher)
                    launcher.close()
                    continue
                pid = _start(launcher, pidfds, listener.getsockname())
                if pid is None:
                    selector.unregister(launcher)
                    launcher.close()
                else:
                    workers[launcher] = pid
        _reap(workers, pidfds, selector)
    _stop(workers, pidfds, selector)
    path = Path(listener.getsockname())  # gone with the server, even if the run is gone
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()
    return 0


def _start(connection: socket.socket, pidfds: dict[int, int], server_path: str) -> int | None:
    """Fork what a connection's first message asks for and send back its pid and a
    pidfd: a worker onto the streams a launcher sent (its pid returned, to report its
    end to the launcher), or a worker's agent fork server on the socket end it sent."""
    try:
        message, fds, _, _ = socket.recv_fds(connection, MAX_MESSAGE, 3)
        request = json.loads(message) if message else {}
    except (OSError, ValueError):
        return None
    wanted = 1 if "agent_server_for" in request else 3
    if len(fds) != wanted:
        for fd in fds:
            os.close(fd)
        with contextlib.suppress(OSError):
            connection.send(json.dumps({"error": f"expected {wanted} descriptors, got "
                                                 f"{len(fds)}"}).encode())
        return None
    if wanted == 1:
        # Named before the fork, so that the child is never seen unnamed.
        own_name = Path("/proc/self/comm").read_text().strip()
        _set_process_name(f"cfa{int(request['agent_server_for'])}")
    pid = os.fork()
    if pid == 0:
        if wanted == 1:
            _run_agent_server(fds[0])
        _run_worker(request, fds, server_path)
    if wanted == 1:
        _set_process_name(own_name)
    for fd in fds:
        os.close(fd)
    pidfds[pid] = os.pidfd_open(pid)  # before any reaping: it cannot name another process
    with contextlib.suppress(OSError):
        socket.send_fds(connection, [json.dumps({"pid": pid}).encode()], [pidfds[pid]])
    return pid if wanted == 3 else None


def _signal(pidfds: dict[int, int], pid: int, signum: int) -> None:
    with contextlib.suppress(KeyError, ProcessLookupError):
        signal.pidfd_send_signal(pidfds[pid], signum)


def _reap(workers: dict[socket.socket, int], pidfds: dict[int, int],
          selector: selectors.BaseSelector) -> None:
    """Collect ended workers and report each one's exit status to its launcher."""
    launchers = {pid: connection for connection, pid in workers.items()}
    for pid, returncode in forkserver.reaped_children():
        with contextlib.suppress(KeyError):
            os.close(pidfds.pop(pid))
        connection = launchers.get(pid)
        if connection is not None:
            del workers[connection]
            with contextlib.suppress(OSError):
                connection.send(json.dumps({"returncode": returncode}).encode())
            selector.unregister(connection)
            connection.close()


def _stop(workers: dict[socket.socket, int], pidfds: dict[int, int],
          selector: selectors.BaseSelector) -> None:
    """SIGTERM to the workers still running, SIGKILL to those that outlast the grace."""
    for pid in list(pidfds):
        _signal(pidfds, pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    killed = False
    while pidfds:
        remaining = deadline - time.monotonic()
        if remaining <= 0 and not killed:
            for pid in list(pidfds):
                _signal(pidfds, pid, signal.SIGKILL)
            killed = True
        with selectors.DefaultSelector() as waiting:
            for pidfd in pidfds.values():
                waiting.register(pidfd, selectors.EVENT_READ)
            waiting.select(max(remaining, 0.0) if not killed else None)
        _reap(workers, pidfds, selector)


def _keep_only(fds: list[int], *, also: int = -1) -> None:
    """Descriptors 0, 1, 2 become `fds` (when given), and every other one but `also` is
    closed."""
    if fds:
        # Above every number in use first, so that no dup2 overwrites a stream yet to move.
        floor = max([*fds, 2]) + 1
        moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, floor) for fd in fds]
        for number, fd in enumerate(moved):
            os.dup2(fd, number)
    for open_fd in map(int, os.listdir("/proc/self/fd")):
        if open_fd > 2 and open_fd != also:
            with contextlib.suppress(OSError):  # the listing's own, closed already
                os.close(open_fd)


def _run_agent_server(control: int) -> None:
    """In a forked child: the agent fork server of a worker, on `control`."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # SIGINT stays ignored: the tester's
        kept = fcntl.fcntl(control, fcntl.F_DUPFD, 3)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        _keep_only([], also=kept)
        forkserver.serve(socket.socket(fileno=kept))
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def _set_process_name(name: str) -> None:
    """This process's comm (prctl PR_SET_NAME, 15 characters): what `ps -o comm` shows,
    and what a leak check finds it and the agents it forks by."""
    _libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


class ForkedAgentServer:
    """A worker's agent fork server, forked by the worker server (its parent): waited for
    through a pidfd; its exit status is its parent's to know."""

    def __init__(self, pid: int, pidfd: int) -> None:
        self.pid = pid
        self._pidfd = pidfd

    def wait(self, timeout: float | None = None) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._pidfd, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise subprocess.TimeoutExpired(f"agent fork server {self.pid}", timeout or 0.0)
        os.close(self._pidfd)
        self._pidfd = -1

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)


def _agent_server_from(server_path: str, theirs: socket.socket) -> ForkedAgentServer:
    """Ask the worker server at `server_path` for an agent fork server on `theirs`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as connection:
        connection.settimeout(forkserver.START_TIMEOUT_S)
        connection.connect(server_path)
        socket.send_fds(connection, [json.dumps({"agent_server_for": os.getpid()}).encode()],
                        [theirs.fileno()])
        message, fds, _, _ = socket.recv_fds(connection, MAX_MESSAGE, 1)
    reply = json.loads(message) if message else {}
    if "pid" not in reply or not fds:
        for fd in fds:
            os.close(fd)
        raise OSError(f"the worker server did not start an agent fork server: {reply}")
    return ForkedAgentServer(int(reply["pid"]), fds[0])


def _run_worker(request: dict[str, Any], fds: list[int], server_path: str) -> None:
    """In the forked worker: the launcher's streams as 0-2, then execnet's bootstrap."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _keep_only(fds)
        forkserver.start_servers_with(functools.partial(_agent_server_from, server_path))
        # New stream objects: nothing the server buffered (execnet reads its bootstrap
        # from sys.stdin).
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", encoding="utf-8", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", buffering=1,  # noqa: SIM115
                          errors="backslashreplace", closefd=False)
        random.seed()  # not the server's state: each worker draws its own ports and ISNs
        os.chdir(request["cwd"])
        argv: list[str] = request["argv"]
        source = argv[argv.index("-c") + 1]
        sys.argv = ["-c", *argv[argv.index("-c") + 2:]]
        exec(compile(source, "<string>", "exec"), {"__name__": "__main__"})
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except KeyboardInterrupt:
        code = -signal.SIGINT  # as an interpreter ends on an uncaught Ctrl-C
    except BaseException:
        traceback.print_exc()
    finally:
        _exit_as_an_interpreter(code)


def _exit_as_an_interpreter(code: int) -> None:
    """End as a Python process ends: its threads joined, its exit handlers run, its
    streams flushed; an uncaught Ctrl-C as death by SIGINT."""
    with contextlib.suppress(BaseException):
        getattr(threading, "_shutdown", lambda: None)()
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    with contextlib.suppress(BaseException):
        sys.stdout.flush()
        sys.stderr.flush()
    if code == -signal.SIGINT:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code & 0xFF)
