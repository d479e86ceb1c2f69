"""The Linux kernel of this machine as the DUT, inside a private network namespace.

The kernel owns the TAP interface and the DUT address; the tester holds the TAP
descriptor, so every frame the kernel sends comes to the tester and every frame the
tester writes arrives at the kernel as received on the wire.
"""

import os
import sys
from collections.abc import Iterable
from typing import Any

from conformance.agent.client import AgentClient
from conformance.errors import UsageError
from conformance.lab import addressing
from conformance.lab.netns import Lab
from conformance.targets.base import StartedDut, TargetOptions, start_agent
from conformance.wire.capture import TapWire


def parse_sysctls(assignments: Iterable[str]) -> dict[str, str]:
    """`--sysctl NAME=VALUE` assignments: per-namespace net.* settings only."""
    sysctls: dict[str, str] = {}
    for assignment in assignments:
        name, equals, value = assignment.partition("=")
        if not equals or not name.startswith("net."):
            raise UsageError(
                f"{assignment}: want net.NAME=VALUE (only per-namespace net.* settings, "
                "set inside the DUT namespace; the host is never changed)"
            )
        sysctls[name] = value
    return sysctls


class LinuxTarget:
    name = "linux"

    def check_options(self, options: TargetOptions) -> None:
        if options.settings:
            raise UsageError("--ref-setting applies to the ref target only")
        if options.patches:
            raise UsageError("--ref-patch applies to the ref target only")
        if options.agent:
            raise UsageError("--agent applies to the external target only")

    def applicable(self, options: TargetOptions) -> TargetOptions:
        return TargetOptions(sysctls=options.sysctls)

    def start(self, lab: Lab, options: TargetOptions) -> StartedDut:
        if options.sysctls:
            lab.set_sysctls(options.sysctls)
        fd = lab.add_tap(
            host=addressing.DUT,
            routes=[(str(addressing.OFF_LINK), addressing.ROUTER.ip)],
            mtu=addressing.LINK_MTU,
        )
        agent, hello = self.start_agent(lab)
        return StartedDut(host=addressing.DUT, wire=TapWire(fd), agent=agent, lab=lab,
                          hello=hello)

    def start_agent(self, lab: Lab) -> tuple[AgentClient, dict[str, Any]]:
        """The Linux agent inside the lab's namespace, checked with `hello`."""
        return start_agent(
            [sys.executable, "-m", "conformance.agent.linux", "--netns", lab.name],
            name=f"linux agent in {lab.name}",
        )

    def describe(self) -> dict[str, Any]:
        uname = os.uname()
        return {"kernel": uname.release, "machine": uname.machine, "version": uname.version}


