"""The kinds of DUT the tester can run its suites against: the built-in ones, and those
other packages register in the entry point group `conformance.targets` (each entry
point names a callable, such as a Target class, that returns a Target)."""

from collections.abc import Callable
from importlib import metadata

from conformance.errors import UsageError
from conformance.targets.base import Target
from conformance.targets.external import ExternalTarget, LwipTarget
from conformance.targets.gvisor import GvisorTarget
from conformance.targets.linux import LinuxTarget
from conformance.targets.ref import RefTarget

ENTRY_POINT_GROUP = "conformance.targets"

BUILT_IN: dict[str, Callable[[], Target]] = {
    "ref": RefTarget, "linux": LinuxTarget, "external": ExternalTarget, "lwip": LwipTarget,
    "gvisor": GvisorTarget,
}


def registered_targets() -> dict[str, Callable[[], Target]]:
    """Every target by name; a registered name that a built-in target has is ignored."""
    found: dict[str, Callable[[], Target]] = {}
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name not in BUILT_IN:
            found[entry_point.name] = _loader(entry_point)
    return {**found, **BUILT_IN}


def _loader(entry_point: metadata.EntryPoint) -> Callable[[], Target]:
    def load() -> Target:
        try:
            factory = entry_point.load()
            target: Target = factory()
        except Exception as error:  # a third-party package's fault, reported as such
            raise UsageError(f"target {entry_point.name!r} ({entry_point.value}, from the "
                             f"entry point group {ENTRY_POINT_GROUP}) cannot be loaded: "
                             f"{type(error).__name__}: {error}") from error
        target.name = entry_point.name
        return target
    return load


def get_target(name: str) -> Target:
    if name in BUILT_IN:  # no scan of the installed packages' entry points (3 ms a case)
        return BUILT_IN[name]()
    targets = registered_targets()
    try:
        factory = targets[name]
    except KeyError:
        known = ", ".join(sorted(targets))
        raise UsageError(f"unknown target {name!r} (known: {known})") from None
    return factory()
