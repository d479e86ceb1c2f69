"""A stack someone else wrote as the DUT, driven through its own agent.

The lab is the ref target's: a namespace where the kernel has no address, a TAP device
whose descriptor the agent inherits (the stack under test owns the device), and the
tester's packet socket on the kernel side of it. The agent runs inside the namespace and
learns the lab from environment variables, or from `{CF_NAME}` placeholders in its
command line (docs/agent-protocol.md, "External targets").
"""

import os
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from conformance.errors import EnvironmentProblem, HarnessError, UsageError
from conformance.lab import addressing
from conformance.lab.netns import Lab
from conformance.targets.base import StartedDut, TargetOptions, start_agent
from conformance.wire.packet_socket import PacketSocketWire


def parse_agent(command: str | None) -> tuple[str, ...]:
    """`--agent "CMD ARGS"` split as a POSIX shell would split it."""
    if command is None:
        return ()
    try:
        argv = tuple(shlex.split(command))
    except ValueError as error:
        raise UsageError(f"--agent {command!r}: {error}") from error
    if not argv:
        raise UsageError("--agent: an empty command")
    return argv


def lab_environment(tap_name: str, tap_fd: int) -> dict[str, str]:
    """What an external agent is told about its lab (the CF_* variables)."""
    return {
        "CF_TAP": tap_name,
        "CF_TAP_FD": str(tap_fd),
        "CF_DUT_MAC": addressing.DUT.mac,
        "CF_DUT_ADDR": addressing.DUT.ip,
        "CF_PREFIX": str(addressing.LINK.prefixlen),
        "CF_GATEWAY": addressing.ROUTER.ip,
        "CF_MTU": str(addressing.LINK_MTU),
        "CF_ROUTES": f"{addressing.OFF_LINK} via {addressing.ROUTER.ip}",
    }


def substitute(argv: Sequence[str], environment: dict[str, str]) -> list[str]:
    """The command line with each `{CF_NAME}` replaced by that variable's value."""
    result = []
    for argument in argv:
        for name, value in environment.items():
            argument = argument.replace("{" + name + "}", value)
        result.append(argument)
    return result


class ExternalTarget:
    """Any stack whose agent speaks the protocol. `agent` is the command line used when
    the run gives no `--agent` (a registered target's own agent)."""

    def __init__(self, name: str = "external", agent: Sequence[str] = (),
                 facts: dict[str, Any] | None = None) -> None:
        self.name = name
        self.agent = tuple(agent)
        self.facts = dict(facts or {})

    def command(self, options: TargetOptions) -> tuple[str, ...]:
        return options.agent or self.agent

    def check_options(self, options: TargetOptions) -> None:
        if options.sysctls:
            raise UsageError("--sysctl applies to the linux target only")
        if options.settings or options.patches:
            raise UsageError("--ref-setting and --ref-patch apply to the ref target only")
        argv = self.command(options)
        if not argv:
            raise UsageError(f"--target {self.name} needs --agent CMD (the agent of the "
                             "stack under test; docs/agent-protocol.md)")
        executable = argv[0]
        if shutil.which(executable) is None:  # a path is checked as it is, a name on PATH
            raise EnvironmentProblem(
                f"{self.name} agent {executable}: no such executable"
                + ("" if options.agent else f" ({self.build_hint()})"))

    def build_hint(self) -> str:
        return "install or build the stack's agent"

    def applicable(self, options: TargetOptions) -> TargetOptions:
        return TargetOptions(agent=options.agent)

    def start(self, lab: Lab, options: TargetOptions) -> StartedDut:
        tap_fd, tap_name = lab.add_bare_tap(mtu=addressing.LINK_MTU)
        wire = PacketSocketWire(lab, tap_name)
        environment = lab_environment(tap_name, tap_fd)
        # The agent enters the DUT namespace by `ip netns exec`, which execs it: the
        # agent is the child the client started, and Lab.remove() ends it with the rest.
        argv = ["ip", "netns", "exec", lab.name,
                *substitute(self.command(options), environment)]
        try:
            agent, hello = start_agent(
                argv, name=f"{self.name} agent in {lab.name}", pass_fds=(tap_fd,),
                env={**os.environ, **environment},
            )
        except HarnessError:
            wire.close()
            raise
        return StartedDut(host=addressing.DUT, wire=wire, agent=agent, lab=lab, hello=hello)

    def describe(self) -> dict[str, Any]:
        return {"stack": self.name, "agent_command": list(self.agent), **self.facts}


AGENTS = Path(__file__).resolve().parents[2] / "agents"


def bundled_agent(name: str) -> Path:
    """Where `make -C agents/NAME` puts the agent of a stack this project ships."""
    return AGENTS / name / "build" / f"cf-{name}-agent"


class BundledTarget(ExternalTarget):
    """A third-party stack whose agent this project ships in agents/NAME."""

    def __init__(self, name: str, version: str) -> None:
        super().__init__(name, [str(bundled_agent(name))], {"version": version})

    def build_hint(self) -> str:
        return f"build it: bash scripts/setup.sh, or make -C agents/{self.name}"

    def check_options(self, options: TargetOptions) -> None:
        if options.agent:
            raise UsageError("--agent applies to the external target only "
                             f"(the {self.name} target runs agents/{self.name})")
        super().check_options(options)


LWIP_AGENT = bundled_agent("lwip")


class LwipTarget(BundledTarget):
    """lwIP 2.1.3 as Debian ships it (liblwip-dev), through agents/lwip."""

    def __init__(self) -> None:
        super().__init__("lwip", "2.1.3 (Debian liblwip-dev)")
