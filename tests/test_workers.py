"""pytest-xdist workers forked from the run's worker server (conformance.run.workers).

Each test runs a program in a new interpreter (a pytest-xdist worker runs threads, and
the server is forked only from a process that runs none): it starts the server, opens
execnet gateways through the launcher as pytest-xdist does, and prints what it saw.
"""

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]

PROLOGUE = """
import json, os, signal, sys, time
import execnet
import scapy.layers.inet  # imported before the fork: a worker finds it imported
from conformance.run.workers import WorkerServer

server = WorkerServer.start()
assert server is not None

def gateway():
    return execnet.makegateway(f"popen//python={server.python}")

def launcher_of(gw):
    return gw._io.popen

def gone(pid, within=10.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}") or " Z " in open(f"/proc/{pid}/stat").read():
            return True
        time.sleep(0.01)
    return False

out = {"server": server.pid}
"""


def probe(body: str) -> dict[str, Any]:
    """Run PROLOGUE then `body` (which fills `out`) in a new interpreter: `out`."""
    program = PROLOGUE + textwrap.dedent(body) + "\nserver.close()\nprint(json.dumps(out))\n"
    result = subprocess.run([sys.executable, "-c", program], cwd=REPOSITORY,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_a_worker_is_forked_from_the_server_with_its_imports_and_a_new_process_state() -> None:
    out = probe("""
        workers = []
        for _ in range(2):
            gw = gateway()
            channel = gw.remote_exec('''
                import atexit, os, random, signal, sys
                channel.send({
                    "pid": os.getpid(), "parent": os.getppid(),
                    "scapy_imported": "scapy.layers.inet" in sys.modules,
                    "sigint_raises": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
                    "sigterm_default": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
                    "random": random.random(), "cwd": os.getcwd(),
                })
            ''')
            workers.append(channel.receive(timeout=30))
            gw.exit()
            workers[-1]["launcher_exit"] = launcher_of(gw).wait(timeout=10)
        out["workers"] = workers
        out["cwd"] = os.getcwd()
    """)
    first, second = out["workers"]
    for worker in (first, second):
        assert worker["parent"] == out["server"]
        assert worker["scapy_imported"]
        assert worker["sigint_raises"] and worker["sigterm_default"]
        assert worker["cwd"] == out["cwd"]
        assert worker["launcher_exit"] == 0
    assert first["pid"] != second["pid"]
    assert first["random"] != second["random"], "each worker draws its own random state"


def test_a_workers_agent_fork_server_is_forked_by_the_server_and_ends_with_it() -> None:
    out = probe("""
        gw = gateway()
        channel = gw.remote_exec('''
            import os
            from conformance.agent.forkserver import ForkServer
            agents = ForkServer()
            channel.send((os.getpid(), agents.server_pid))
            channel.receive()
            agents.close()
            channel.send("closed")
        ''')
        worker, agents = channel.receive(timeout=30)
        with open(f"/proc/{agents}/stat") as stat:
            out["agents_parent"] = int(stat.read().rpartition(")")[2].split()[1])
        with open(f"/proc/{agents}/comm") as comm:
            out["agents_name"] = comm.read().strip()
        out["worker"] = worker
        channel.send("close")
        out["closed"] = channel.receive(timeout=30)
        out["agents_gone"] = gone(agents)
        gw.exit()
    """)
    assert out["agents_parent"] == out["server"], "forked by the worker server"
    assert out["agents_name"] == f"cfa{out['worker']}"[:15]
    assert out["closed"] == "closed" and out["agents_gone"]


def test_the_launcher_ends_as_its_worker_ends() -> None:
    out = probe("""
        codes = {}
        for name, code in [("exit 3", "os._exit(3)"),
                           ("SIGKILL", "os.kill(os.getpid(), signal.SIGKILL)")]:
            gw = gateway()
            gw.remote_exec("import os, signal\\n" + code)
            codes[name] = launcher_of(gw).wait(timeout=30)
        out["codes"] = codes
    """)
    assert out["codes"] == {"exit 3": 3, "SIGKILL": -9}


def test_a_killed_launcher_takes_its_worker_and_sigterm_reaches_it() -> None:
    out = probe("""
        gw = gateway()
        channel = gw.remote_exec("import os; channel.send(os.getpid()); channel.receive()")
        worker = channel.receive(timeout=30)
        launcher_of(gw).kill()
        out["killed_launcher_took_worker"] = gone(worker)

        gw = gateway()
        channel = gw.remote_exec("import os; channel.send(os.getpid()); channel.receive()")
        worker = channel.receive(timeout=30)
        launcher_of(gw).terminate()
        out["sigterm"] = launcher_of(gw).wait(timeout=30)
        out["terminated_worker_gone"] = gone(worker)
    """)
    assert out["killed_launcher_took_worker"]
    assert out["sigterm"] == -15
    assert out["terminated_worker_gone"]


def test_closing_the_server_stops_its_running_workers() -> None:
    out = probe("""
        gw = gateway()
        channel = gw.remote_exec("import os; channel.send(os.getpid()); channel.receive()")
        worker = channel.receive(timeout=30)
        server.close()
        out["worker_gone"] = gone(worker, within=0.1)
        out["launcher_exit"] = launcher_of(gw).wait(timeout=30)
        out["server_gone"] = not os.path.exists(f"/proc/{server.pid}")
        out["socket_left"] = os.path.exists(server.socket_path.parent)
    """)
    assert out["worker_gone"], "close() returns once its workers have ended"
    assert out["launcher_exit"] == -15
    assert out["server_gone"]
    assert not out["socket_left"]


def test_a_server_whose_run_is_gone_stops_its_workers_and_removes_its_socket() -> None:
    """The run killed (SIGKILL: no close): the server sees its control pipe close."""
    program = PROLOGUE + textwrap.dedent("""
        gw = gateway()
        channel = gw.remote_exec("import os; channel.send(os.getpid()); channel.receive()")
        print(json.dumps({"server": server.pid, "worker": channel.receive(timeout=30),
                          "socket": str(server.socket_path)}), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    run = subprocess.Popen([sys.executable, "-c", program], cwd=REPOSITORY,
                           stdout=subprocess.PIPE, text=True)
    assert run.stdout is not None
    seen = json.loads(run.stdout.readline())
    assert run.wait(timeout=30) == -9
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and not (ended(seen["server"]) and ended(seen["worker"])):
        time.sleep(0.01)  # bounded poll: no event tells a stranger's process has ended
    assert ended(seen["worker"])
    assert ended(seen["server"])
    assert not Path(seen["socket"]).exists()


def ended(pid: int) -> bool:
    """No process `pid`, or only its zombie (an orphan's reaper may be slow)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


def test_no_server_is_forked_from_a_process_running_threads() -> None:
    program = textwrap.dedent("""
        import threading
        from conformance.run.workers import WorkerServer
        stop = threading.Event()
        thread = threading.Thread(target=stop.wait)
        thread.start()
        print(WorkerServer.start() is None)
        stop.set()
        thread.join()
    """)
    result = subprocess.run([sys.executable, "-c", program], cwd=REPOSITORY,
                            capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "True"
