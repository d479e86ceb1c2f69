"""The Linux kernel of this machine as the DUT, inside a private network namespace.

The kernel owns the TAP interface and the DUT address; the tester holds the TAP
descriptor, so every frame the kernel sends comes to the tester and every frame the
tester writes arrives at the kernel as received on the wire.
"""

import os
import sys
from typing import Any

from conformance.agent.client import AgentClient
from conformance.errors import HarnessError, UsageError
from conformance.lab import addressing
from conformance.lab.netns import Lab
from conformance.targets.base import StartedDut, TargetOptions
from conformance.wire.capture import TapWire


class LinuxTarget:
    name = "linux"

    def start(self, lab: Lab, options: TargetOptions) -> StartedDut:
        if options.settings or options.patches:
            raise UsageError("reference-stack settings and patches do not apply to linux")
        if options.sysctls:
            lab.set_sysctls(options.sysctls)
        fd = lab.add_tap(
            host=addressing.DUT,
            routes=[(str(addressing.OFF_LINK), addressing.ROUTER.ip)],
            mtu=addressing.LINK_MTU,
        )
        agent = self.start_agent(lab)
        return StartedDut(host=addressing.DUT, wire=TapWire(fd), agent=agent, lab=lab)

    def start_agent(self, lab: Lab) -> AgentClient:
        """The Linux agent inside the lab's namespace, checked with `hello`."""
        agent = AgentClient(
            [sys.executable, "-m", "conformance.agent.linux", "--netns", lab.name],
            name=f"linux agent in {lab.name}",
        )
        try:
            hello = agent.hello()
        except Exception as error:
            agent.close()
            raise HarnessError(f"the Linux agent did not start: {error}") from error
        if hello.get("protocol") != 1:
            agent.close()
            raise HarnessError(f"the Linux agent speaks protocol {hello.get('protocol')}")
        return agent

    def describe(self) -> dict[str, Any]:
        uname = os.uname()
        return {"kernel": uname.release, "machine": uname.machine, "version": uname.version}


