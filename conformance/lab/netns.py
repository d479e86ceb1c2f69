"""Lab namespaces: created per case, removed on every exit path, found again by name.

A lab is a network namespace named `cf-<pid>-<n>` (the pid of the tester process that
owns it), with the devices the target needs. A lab whose owner is dead is stale: the
next run and `conformance cleanup` remove it, with any process still inside.
"""

import atexit
import contextlib
import os
import re
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pyroute2 import IPRoute, NetNS, netns

from conformance.errors import EnvironmentProblem, HarnessError
from conformance.lab.addressing import Host
from conformance.lab.tap import open_tap

LAB_PREFIX = "cf-"
LAB_NAME = re.compile(r"^cf-(\d+)-(\d+)$")
NETNS_DIR = Path("/run/netns")

_live_labs: dict[str, "Lab"] = {}
_counter_lock = threading.Lock()
_counter = 0


def _next_lab_name() -> str:
    global _counter
    with _counter_lock:
        _counter += 1
        return f"{LAB_PREFIX}{os.getpid()}-{_counter}"


@dataclass
class Lab:
    """One network namespace and the descriptors the tester holds for it."""

    name: str
    fds: list[int] = field(default_factory=list)
    removed: bool = False

    @classmethod
    def create(cls) -> "Lab":
        name = _next_lab_name()
        lab = cls(name)
        # Registered before it exists: an interruption while pyroute2's forked child
        # creates the namespace must still find it and remove it.
        _live_labs[name] = lab
        try:
            netns.create(name)
            lab.set_sysctls(
                {
                    # No IPv6 until it is in scope: no router or neighbour solicitations.
                    "net.ipv6.conf.all.disable_ipv6": "1",
                    "net.ipv6.conf.default.disable_ipv6": "1",
                }
            )
            with NetNS(name) as ns:
                ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
        except BaseException as error:
            lab.remove()
            if isinstance(error, OSError):
                raise EnvironmentProblem(
                    f"cannot create network namespace {name}: {error.strerror or error}"
                ) from error
            raise
        return lab

    def add_tap(
        self, *, host: Host, routes: Iterable[tuple[str, str]] = (), mtu: int = 1500
    ) -> int:
        """A TAP device inside the namespace that owns `host`'s address and MAC.

        Returns the descriptor of the wire end, held by the caller (the tester for the
        Linux target). `routes` are (destination network, gateway) pairs.
        """
        fd, _ = self._tap_in_namespace(mtu=mtu, host=host, routes=routes)
        return fd

    def add_bare_tap(self, *, mtu: int = 1500) -> tuple[int, str]:
        """A TAP device inside the namespace with no address: the kernel there stays
        silent on it. Returns the descriptor (for a user-space stack to hold) and the
        interface name (for the tester's packet socket on the kernel side)."""
        return self._tap_in_namespace(mtu=mtu, host=None, routes=())

    def _tap_in_namespace(
        self, *, mtu: int, host: Host | None, routes: Iterable[tuple[str, str]]
    ) -> tuple[int, str]:
        index = len(self.fds)
        owner, number = self.name.removeprefix(LAB_PREFIX).split("-")
        # IFNAMSIZ allows 15 characters; the device lives in the root namespace only
        # until it is moved, so the lab number modulo 1000 is unique enough.
        ifname = f"cf{owner}t{int(number) % 1000}x{index}"
        fd = open_tap(ifname)
        self.fds.append(fd)
        with IPRoute() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], net_ns_fd=self.name)
        with NetNS(self.name) as ns:
            link = ns.link_lookup(ifname=ifname)[0]
            if host is not None:
                ns.link("set", index=link, address=host.mac)
            ns.link("set", index=link, mtu=mtu, state="up")
            if host is not None:
                ns.addr("add", index=link, address=host.ip, prefixlen=24)
            for destination, gateway in routes:
                ns.route("add", dst=destination, gateway=gateway)
        return fd, ifname

    def set_sysctls(self, values: dict[str, str]) -> None:
        """Write net.* sysctls inside the namespace; the host's values never change."""

        def write() -> None:
            for name, value in values.items():
                sysctl_path(name).write_text(value)

        run_in_namespace(self.name, write)

    def remove(self) -> None:
        """Close the descriptors (their TAP devices vanish), kill what runs inside, delete."""
        if self.removed:
            return
        self.removed = True
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()
        _remove_namespace(self.name)
        _live_labs.pop(self.name, None)

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def sysctl_path(name: str) -> Path:
    if not name.startswith("net."):
        # Only per-namespace settings: anything else would change the host.
        raise HarnessError(f"{name}: only net.* sysctls can be set inside a lab")
    return Path("/proc/sys") / name.replace(".", "/")


def run_in_namespace(name: str, work: Callable[[], None]) -> None:
    """Run `work` on a thread that has entered the namespace.

    setns() changes only the calling thread, and /proc/sys/net shows the namespace of the
    thread that opens it, so sysctls are read and written without a child process.
    """
    failure: list[BaseException] = []

    def enter_and_work() -> None:
        try:
            netns.setns(name, flags=0)  # never create one that is missing
            work()
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=enter_and_work, name=f"in-{name}")
    thread.start()
    thread.join()
    if failure:
        error = failure[0]
        if isinstance(error, HarnessError):
            raise error
        raise HarnessError(f"in namespace {name}: {error}") from error


def _pids_in_namespace(name: str) -> list[int]:
    try:
        target = os.stat(NETNS_DIR / name).st_ino
    except OSError:
        return []
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if os.stat(entry / "ns" / "net").st_ino == target:
                pids.append(int(entry.name))
    return pids


def _remove_namespace(name: str) -> None:
    for pid in _pids_in_namespace(name):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        netns.remove(name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_labs() -> list[str]:
    return sorted(name for name in netns.listnetns() if LAB_NAME.match(name))


def cleanup_labs(*, everything: bool = False) -> list[str]:
    """Remove stale labs (owner process dead), or every lab with `everything`."""
    removed = []
    for name in list_labs():
        match = LAB_NAME.match(name)
        assert match is not None
        owner = int(match.group(1))
        if everything or (owner != os.getpid() and not _alive(owner)):
            _remove_namespace(name)
            removed.append(name)
    return removed


def remove_live_labs() -> None:
    """Remove the labs this process created. A forked child (pyroute2 forks to create a
    namespace) inherits the registry but owns none of it, and must not touch it."""
    for lab in list(_live_labs.values()):
        if lab.name.startswith(f"{LAB_PREFIX}{os.getpid()}-"):
            lab.remove()


def _on_sigterm(signum: int, frame: object) -> None:
    if os.getpid() != _handler_owner:
        # A forked child being stopped: die as if no handler were installed.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    # Unwind like Ctrl-C so that fixtures and `finally` blocks remove their labs.
    raise KeyboardInterrupt(f"signal {signum}")


_handler_owner = 0


def install_exit_handlers() -> None:
    """Remove this process's labs at exit and on SIGTERM (call from the main thread)."""
    global _handler_owner
    if _handler_owner == os.getpid():
        return
    _handler_owner = os.getpid()
    atexit.register(remove_live_labs)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
