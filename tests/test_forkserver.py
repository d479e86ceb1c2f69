"""The fork server: agents forked from a pre-imported process behave as if started by
`subprocess` (their descriptors, exit status, stderr, kill), and leave nothing behind."""

import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.agent import forkserver
from conformance.agent.client import AgentClient

LINUX_AGENT = [sys.executable, "-m", "conformance.agent.linux"]
REF_STACK = [sys.executable, "-m", "stack.io"]


def test_only_python_dash_m_of_a_preloaded_module_is_forked() -> None:
    assert forkserver._preloaded_module(LINUX_AGENT) == "conformance.agent.linux"
    assert forkserver._preloaded_module([*REF_STACK, "--tap-fd", "5"]) == "stack.io.__main__"
    assert forkserver._preloaded_module(["python3", "-m", "stack.io"]) is None
    assert forkserver._preloaded_module([sys.executable, "-m", "json.tool"]) is None
    assert forkserver._preloaded_module(["/usr/bin/lwip-agent"]) is None


def test_a_forked_agent_answers_and_exits_0_when_its_stdin_closes() -> None:
    agent = AgentClient(LINUX_AGENT, name="forked linux agent")
    assert isinstance(agent._process, forkserver.ForkedProcess)
    assert agent.hello()["protocol"] == 1
    assert agent.exit_status is None
    agent.close()
    assert agent.exit_status == 0


def test_its_exit_status_and_stderr_come_back() -> None:
    with tempfile.TemporaryFile() as stderr:
        process = forkserver.launch([*REF_STACK, "--no-such-option"], stderr=stderr)
        assert process.wait(10.0) == 2  # argparse's usage error
        assert process.poll() == 2
        stderr.seek(0)
        assert b"the following arguments are required" in stderr.read()


def test_a_killed_agent_reports_the_signal() -> None:
    agent = AgentClient(LINUX_AGENT, name="forked linux agent")
    agent.hello()
    agent._process.kill()
    assert agent._process.wait(10.0) == -signal.SIGKILL
    agent.close()


def test_passed_descriptors_keep_their_numbers_and_nothing_else_leaks() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    # A number the server itself is unlikely to use for anything else.
    number = os.dup2(theirs.fileno(), 47, inheritable=False)
    try:
        argv = [*REF_STACK, "--tap-fd", str(number), "--mac", "02:00:00:00:00:01",
                "--address", "192.0.2.1/24"]
        agent = AgentClient(argv, name="forked ref stack", pass_fds=(number,))
        try:
            assert agent.hello()["protocol"] == 1
            descriptors = {int(fd): os.readlink(f"/proc/{agent.pid}/fd/{fd}")
                           for fd in os.listdir(f"/proc/{agent.pid}/fd")}
            assert descriptors[number] == f"socket:[{os.fstat(number).st_ino}]"
            # stdin, stdout, stderr, the TAP descriptor, and what the stack opened
            # itself (an epoll, a wakeup pipe): none of the server's or this process's.
            server_socket = {f"socket:[{os.fstat(fd).st_ino}]"
                             for fd in (forkserver._shared_server()._socket.fileno(),)}
            assert not server_socket & set(descriptors.values())
            assert os.getsid(agent.pid) == agent.pid
        finally:
            agent.close()
    finally:
        os.close(number)
        ours.close()
        theirs.close()


def test_the_server_ends_with_its_tester_and_takes_no_agent_with_it(tmp_path: Path) -> None:
    """A tester killed with SIGKILL: its fork server sees its socket close and exits;
    the agent it forked ends with its stdin."""
    script = tmp_path / "tester.py"
    script.write_text(
        "import sys, time\n"
        "from conformance.agent.client import AgentClient\n"
        f"agent = AgentClient({LINUX_AGENT!r})\n"
        "agent.hello()\n"
        "print(agent.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    tester = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert tester.stdout is not None
        agent_pid = int(tester.stdout.readline())
        server_pid = _parent_of(agent_pid)
        assert b"conformance.agent.forkserver" in Path(f"/proc/{server_pid}/cmdline") \
            .read_bytes()
        pidfds = [os.pidfd_open(pid) for pid in (server_pid, agent_pid)]
    finally:
        tester.kill()
        tester.wait()
    for pidfd in pidfds:
        readable, _, _ = select.select([pidfd], [], [], 10.0)  # readable once it exited
        assert readable, "still running 10 s after the tester died"
        os.close(pidfd)


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


@pytest.fixture(autouse=True)
def _no_stray_children() -> Iterator[None]:
    """Each test ends with no agent still forked by this process's server."""
    yield
    server = forkserver._server
    if server is not None:
        with server.exits:
            assert server.exits.wait_for(lambda: not server._children, 10.0), \
                server._children
