"""Lab namespaces: created per case, removed on every exit path, found again by name.

A lab is a network namespace named `cf-<pid>-<n>` (the pid of the tester process that
owns it), with the devices the target needs. A lab whose owner is dead is stale: the
next run and `conformance cleanup` remove it, with any process still inside.
"""

import atexit
import contextlib
import ctypes
import fcntl
import os
import queue
import re
import signal
import socket
import struct
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pyroute2 import IPRoute, netns

from conformance.errors import EnvironmentProblem, HarnessError
from conformance.lab.addressing import Host
from conformance.lab.tap import open_tap

T = TypeVar("T")

LAB_PREFIX = "cf-"
LAB_NAME = re.compile(r"^cf-(\d+)-(\d+)$")
NETNS_DIR = Path("/run/netns")
# unshare(2) and mount(2) flags (linux/sched.h, linux/mount.h).
CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1  # linux/sockios.h, linux/if.h
_libc = ctypes.CDLL(None, use_errno=True)

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
    # Held while removing: a second remover (exit handlers) waits for the first to finish.
    _removing: threading.RLock = field(default_factory=threading.RLock, repr=False,
                                       compare=False)

    @classmethod
    def create(cls) -> "Lab":
        name = _next_lab_name()
        lab = cls(name)
        # Registered before it exists: an interruption while it is created must still
        # find it and remove it.
        _live_labs[name] = lab
        try:
            def create_and_set_up() -> None:
                _create_namespace_on_this_thread(name)
                # No IPv6 until it is in scope: no router or neighbour solicitations.
                _write_sysctls({"net.ipv6.conf.all.disable_ipv6": "1",
                                "net.ipv6.conf.default.disable_ipv6": "1"})
                _bring_up("lo")

            _on_a_thread_of_its_own(f"new-{name}", create_and_set_up)
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
        # IFNAMSIZ allows 15 characters. The name need only be unique in the lab; it
        # names the owner so that its agents can be traced to it (CF_TAP).
        ifname = f"cf{owner}t{int(number) % 1000}x{index}"

        def create_and_configure() -> int:
            # Opened from inside the namespace, the device is created there: no move
            # between namespaces (a move costs ~30 ms of device re-registration).
            fd = open_tap(ifname)
            self.fds.append(fd)  # removed with the lab if what follows fails
            with IPRoute() as ipr:
                link = ipr.link_lookup(ifname=ifname)[0]
                if host is not None:
                    ipr.link("set", index=link, address=host.mac)
                ipr.link("set", index=link, mtu=mtu, state="up")
                if host is not None:
                    ipr.addr("add", index=link, address=host.ip, prefixlen=24)
                for destination, gateway in routes:
                    ipr.route("add", dst=destination, gateway=gateway)
            return fd

        return run_in_namespace(self.name, create_and_configure), ifname

    def set_sysctls(self, values: dict[str, str]) -> None:
        """Write net.* sysctls inside the namespace; the host's values never change."""
        run_in_namespace(self.name, lambda: _write_sysctls(values))

    def remove(self) -> None:
        """Close the descriptors (their TAP devices vanish), kill what runs inside, delete."""
        with self._removing:
            if self.removed:
                return
            self.removed = True
            for fd in self.fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self.fds.clear()
            _remove_namespace(self.name)
            _live_labs.pop(self.name, None)

    def remove_soon(self) -> None:
        """Remove the lab on this process's remover thread, off the caller's critical
        path: a TAP device's unregistration alone takes 25-35 ms. The lab stays
        registered until it is gone, so `remove_live_labs` (at exit) finishes the job."""
        _remover().put(self)

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _write_sysctls(values: dict[str, str]) -> None:
    """Write net.* sysctls from a thread inside a namespace (`run_in_namespace`)."""
    for name, value in values.items():
        sysctl_path(name).write_text(value)


def sysctl_path(name: str) -> Path:
    if not name.startswith("net."):
        # Only per-namespace settings: anything else would change the host.
        raise HarnessError(f"{name}: only net.* sysctls can be set inside a lab")
    return Path("/proc/sys") / name.replace(".", "/")


def _create_namespace_on_this_thread(name: str) -> None:
    """Move the calling thread into a new network namespace, named `name` as
    `ip netns add` names one (a bind mount on /run/netns/NAME). unshare() changes only
    the calling thread, so no child process is forked for it (pyroute2's netns.create
    forks one: 4 ms more a lab)."""
    NETNS_DIR.mkdir(exist_ok=True)
    directory = bytes(NETNS_DIR)
    # As iproute2 does: /run/netns a shared mount point, so the mounts show everywhere.
    if _libc.mount(b"", directory, b"none", MS_SHARED | MS_REC, None) != 0:
        _check(_libc.mount(directory, directory, b"none", MS_BIND | MS_REC, None),
               "bind-mount /run/netns")
        _check(_libc.mount(b"", directory, b"none", MS_SHARED | MS_REC, None),
               "share /run/netns")
    path = NETNS_DIR / name
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    _check(_libc.unshare(CLONE_NEWNET), "unshare the network namespace")
    _check(_libc.mount(b"/proc/thread-self/ns/net", bytes(path), b"none", MS_BIND, None),
           f"bind-mount the namespace on {path}")


def _bring_up(ifname: str) -> None:
    """Set IFF_UP on an interface of the calling thread's namespace, with the interface
    ioctls (a netlink socket through pyroute2 costs 3 ms more)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:
        request = struct.pack("16sH", ifname.encode(), 0)
        flags = struct.unpack_from("16sH", fcntl.ioctl(control, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(control, SIOCSIFFLAGS, struct.pack("16sH", ifname.encode(), flags | IFF_UP))


def _check(result: int, what: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"cannot {what}: {os.strerror(number)}")


def run_in_namespace(name: str, work: Callable[[], T]) -> T:
    """Run `work` on a thread that has entered the namespace; its result.

    setns() changes only the calling thread, and /proc/sys/net shows the namespace of the
    thread that opens it (so do the netlink sockets and TAP devices it opens), so a lab
    is set up without a child process.
    """
    def enter_and_work() -> T:
        netns.setns(name, flags=0)  # never create one that is missing
        return work()

    return _on_a_thread_of_its_own(f"in-{name}", enter_and_work, namespace=name)


def _on_a_thread_of_its_own(thread_name: str, work: Callable[[], T], *,
                            namespace: str | None = None) -> T:
    """Run `work` on a new thread (whose namespace it may change) and return its result;
    its error, as a HarnessError naming the namespace when it is not one already."""
    failure: list[BaseException] = []
    results: list[T] = []

    def run() -> None:
        try:
            results.append(work())
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=run, name=thread_name)
    thread.start()
    try:
        thread.join()
    except BaseException:
        thread.join()  # an interrupt waits for what the thread creates, to remove it
        raise
    if failure:
        error = failure[0]
        if isinstance(error, HarnessError) or namespace is None:
            raise error
        raise HarnessError(f"in namespace {namespace}: {error}") from error
    return results[0]


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


_removals: "queue.SimpleQueue[Lab] | None" = None
_removals_owner = 0
_removals_lock = threading.Lock()


def _remover() -> "queue.SimpleQueue[Lab]":
    """This process's queue of labs to remove, and the daemon thread that empties it."""
    global _removals, _removals_owner
    with _removals_lock:
        if _removals is None or _removals_owner != os.getpid():
            _removals = queue.SimpleQueue()
            _removals_owner = os.getpid()
            threading.Thread(target=_remove_queued, args=(_removals,), name="lab-remover",
                             daemon=True).start()
        return _removals


def _remove_queued(removals: "queue.SimpleQueue[Lab]") -> None:
    while True:
        lab = removals.get()
        try:
            lab.remove()
        except Exception as error:  # no case to fail any more; cleanup_labs finds it later
            print(f"conformance: cannot remove lab {lab.name}: {error}", file=sys.stderr)


def remove_live_labs() -> None:
    """Remove the labs this process created, those queued by `remove_soon` included. A
    forked child (pyroute2 forks to create a namespace) inherits the registry but owns
    none of it, and must not touch it."""
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
