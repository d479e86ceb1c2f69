"""The kinds of DUT the tester can run its suites against."""

from conformance.errors import UsageError
from conformance.targets.base import Target
from conformance.targets.linux import LinuxTarget
from conformance.targets.ref import RefTarget

TARGETS: dict[str, type[Target]] = {"ref": RefTarget, "linux": LinuxTarget}


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]()
    except KeyError:
        known = ", ".join(sorted(TARGETS))
        raise UsageError(f"unknown target {name!r} (known: {known})") from None
