"""The interpreter execnet starts for a pytest-xdist worker of a parallel run.

execnet runs `<python> -u -c <bootstrap>` and talks to it over its standard input and
output. Here `<python>` is this file (run with -I -S: the standard library only, 30 ms):
it hands its standard streams to the run's worker server (conformance.run.workers),
which forks a worker onto them from a process that has imported and collected the
suites already, and then stands in for that worker: it ends with the worker's exit
status (a signal's death as that signal), passes SIGTERM on, and, killed itself, takes
the worker with it (the server sees its connection close).

Usage: python -I -S worker_launcher.py SOCKET -u -c BOOTSTRAP
"""

import contextlib
import json
import os
import signal
import socket
import sys

MAX_MESSAGE = 1 << 16
EXIT_SERVER_GONE = 70  # EX_SOFTWARE: the worker server ended before reporting the worker's end


def main() -> None:
    server_path, bootstrap_argv = sys.argv[1], sys.argv[2:]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the worker itself
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    connection.connect(server_path)
    request = {"argv": bootstrap_argv, "cwd": os.getcwd()}
    socket.send_fds(connection, [json.dumps(request).encode()], [0, 1, 2])
    # The worker holds execnet's pipes now: they must close when it ends, not with this.
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    message, fds, _, _ = socket.recv_fds(connection, MAX_MESSAGE, 1)
    started = json.loads(message) if message else {}
    if "pid" not in started or not fds:
        gone = started.get("error", "the worker server is gone")
        sys.exit(f"conformance worker launcher: {gone}")
    worker = fds[0]

    def pass_on(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):  # ended: its report follows
            signal.pidfd_send_signal(worker, signum)

    signal.signal(signal.SIGTERM, pass_on)
    message = connection.recv(MAX_MESSAGE)
    if not message:
        print("conformance worker launcher: the worker server ended before the worker",
              file=sys.stderr)
        sys.exit(EXIT_SERVER_GONE)
    returncode = int(json.loads(message)["returncode"])
    if returncode < 0:  # died of a signal: so does its stand-in, for execnet to see
        if -returncode not in (signal.SIGKILL, signal.SIGSTOP):  # those have no handler
            signal.signal(-returncode, signal.SIG_DFL)
        os.kill(os.getpid(), -returncode)
    sys.exit(returncode)


if __name__ == "__main__":
    main()
