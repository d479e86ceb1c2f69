"""The project's reference stack (`stack/`) as the DUT, the embedded default.

The stack runs in its own process holding the TAP descriptor and serves the agent
protocol itself. The tester sends and sniffs on the kernel side of the same device with
a packet socket, in a namespace where the kernel has no address and IPv6 is off, so the
kernel stays silent on the wire.
"""

import platform
import sys
from collections.abc import Iterable
from typing import Any

from conformance import __version__
from conformance.errors import HarnessError, UsageError
from conformance.lab import addressing
from conformance.lab.netns import Lab
from conformance.targets.base import StartedDut, TargetOptions, start_agent
from conformance.wire.packet_socket import PacketSocketWire
from stack.settings import Settings


def parse_settings(assignments: Iterable[str]) -> dict[str, str]:
    """`--ref-setting NAME=VALUE` assignments, each checked against stack/settings.py."""
    settings: dict[str, str] = {}
    for assignment in assignments:
        name, equals, value = assignment.partition("=")
        if not equals:
            raise UsageError(f"{assignment}: want NAME=VALUE")
        settings[name] = value
    try:
        Settings.with_overrides(settings)
    except ValueError as error:
        raise UsageError(str(error)) from error
    return settings


class RefTarget:
    name = "ref"

    def check_options(self, options: TargetOptions) -> None:
        if options.sysctls:
            raise UsageError("--sysctl applies to the linux target only")
        if options.agent:
            raise UsageError("--agent applies to the external target only")

    def applicable(self, options: TargetOptions) -> TargetOptions:
        return TargetOptions(settings=options.settings, patches=options.patches)

    def start(self, lab: Lab, options: TargetOptions) -> StartedDut:
        tap_fd, ifname = lab.add_bare_tap(mtu=addressing.LINK_MTU)
        wire = PacketSocketWire(lab, ifname)
        argv = [
            sys.executable, "-m", "stack.io",
            "--tap-fd", str(tap_fd),
            "--mac", addressing.DUT.mac,
            "--address", f"{addressing.DUT.ip}/{addressing.LINK.prefixlen}",
            "--mtu", str(addressing.LINK_MTU),
            "--route", f"{addressing.OFF_LINK}={addressing.ROUTER.ip}",
        ]
        for name, value in options.settings.items():
            argv += ["--setting", f"{name}={value}"]
        for patch in options.patches:
            argv += ["--patch", patch]
        try:
            agent, hello = start_agent(argv, name=f"reference stack in {lab.name}",
                                       pass_fds=(tap_fd,))
        except HarnessError:
            wire.close()
            raise
        return StartedDut(host=addressing.DUT, wire=wire, agent=agent, lab=lab, hello=hello)

    def describe(self) -> dict[str, Any]:
        return {"stack": "ref", "version": __version__, "python": platform.python_version()}
