"""What the machine must offer a run (CAP_NET_ADMIN, /dev/net/tun, network namespaces),
checked before a run starts, and what `conformance doctor` reports besides."""

import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from conformance import __version__
from conformance.lab.netns import Lab, list_labs
from conformance.report.console import Check

CAP_NET_ADMIN = 12  # bit in the capability sets of /proc/self/status


def _has_net_admin() -> bool:
    """CAP_NET_ADMIN in the effective set (root has it unless a container dropped it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    except (OSError, ValueError, IndexError):
        pass
    return os.geteuid() == 0


def privilege_check() -> Check:
    name = "root / CAP_NET_ADMIN"
    who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
    if _has_net_admin():
        return Check(name, "ok", f"{who}, CAP_NET_ADMIN effective", required=True)
    remedy = ("the container or the parent process dropped it" if os.geteuid() == 0
              else "run as root (sudo)")
    return Check(name, "missing", f"{who} without CAP_NET_ADMIN, which network namespaces "
                 f"and TAP devices need: {remedy}", required=True)


def tun_check() -> Check:
    name, tun = "/dev/net/tun", Path("/dev/net/tun")
    if not tun.exists():
        return Check(name, "missing", "/dev/net/tun is missing (modprobe tun; in a container, "
                     "pass the device in)", required=True)
    try:
        os.close(os.open(tun, os.O_RDWR))
    except OSError as error:
        return Check(name, "missing", f"cannot open /dev/net/tun: {error.strerror}",
                     required=True)
    return Check(name, "ok", "present and openable", required=True)


def namespace_support_check() -> Check:
    name = "network namespace support"
    if not Path("/proc/self/ns/net").exists():
        return Check(name, "missing", "the kernel has no network namespaces "
                     "(/proc/self/ns/net is missing)", required=True)
    return Check(name, "ok", "/proc/self/ns/net present", required=True)


def environment_problem(*, wireshark: bool = True) -> str | None:
    """Why this machine cannot build a lab or read its captures (with `wireshark`: with
    Wireshark's dissectors), or None; checked before a run starts."""
    checks = [privilege_check(), tun_check(), namespace_support_check()]
    for check in checks + ([tshark_check()] if wireshark else []):
        if check.status == "missing":
            return check.detail
    return None


def namespace_check() -> Check:
    name = "network namespaces"
    try:
        lab = Lab.create()
    except Exception as error:  # a probe: any failure is the answer
        return Check(name, "missing", f"cannot create one: {error}", required=True)
    try:
        lab.remove()
    except Exception as error:
        return Check(name, "missing", f"created {lab.name} but cannot remove it: {error}",
                     required=True)
    return Check(name, "ok", f"created and removed {lab.name}", required=True)


def tshark_check() -> Check:
    """Every case's capture is read with Wireshark's dissectors (evidence/wireshark.py)."""
    path = shutil.which("tshark")
    if path is None:
        return Check("tshark", "missing", "tshark not found: every case's capture is read "
                     "with Wireshark's dissectors (apt install tshark)", required=True)
    try:
        completed = subprocess.run([path, "--version"], capture_output=True, text=True,
                                   timeout=20, check=False)
        version = completed.stdout.strip().split("\n")[0]
    except (OSError, subprocess.TimeoutExpired) as error:
        return Check("tshark", "missing", f"{path}: cannot run it: {error}", required=True)
    if completed.returncode != 0 or not version:
        return Check("tshark", "missing", f"{path} --version failed: "
                     f"{completed.stderr.strip()[:200]}", required=True)
    return Check("tshark", "ok", f"{path}: {version}", required=True)


def _package_version(package: str) -> Check:
    try:
        return Check(package, "info", metadata.version(package))
    except metadata.PackageNotFoundError:
        return Check(package, "missing", "not installed", required=True)


def doctor_checks() -> list[Check]:
    """Everything `conformance doctor` reports: privileges, TUN, namespaces (tried for
    real when the privilege is there), tshark, the labs present, versions."""
    checks = [privilege_check(), tun_check(), namespace_support_check()]
    if checks[0].status == "ok":
        checks.append(namespace_check())
    else:
        checks.append(Check("network namespaces", "missing", "not tried: needs CAP_NET_ADMIN",
                            required=True))
    checks.append(tshark_check())
    labs = list_labs()
    checks.append(Check("labs present", "info", f"{len(labs)}" + (
        " (stale ones go with `conformance cleanup`)" if labs else "")))
    checks.append(Check("kernel", "info", platform.release()))
    checks.append(Check("python", "info", f"{platform.python_version()} ({sys.executable})"))
    checks.append(Check("conformance", "info", __version__))
    checks.extend(_package_version(package) for package in (
        "scapy", "pyroute2", "pytest", "pytest-xdist", "rich", "click", "pyshark"))
    return checks
