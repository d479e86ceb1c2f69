"""What every target provides: a started DUT on a lab's wire, driven through an agent."""

from dataclasses import dataclass, field
from typing import Any, Protocol

from conformance.agent.client import AgentClient
from conformance.errors import HarnessError
from conformance.lab.addressing import Host
from conformance.lab.netns import Lab
from conformance.wire.capture import Wire

# An agent's barrier grace is capped: a longer one would hide nothing more, only slow.
MAX_BARRIER_GRACE_MS = 1000.0


@dataclass
class StartedDut:
    """A running DUT: where its frames go, how to drive it, how to describe it."""

    host: Host
    wire: Wire
    agent: AgentClient
    lab: Lab
    hello: dict[str, Any] = field(default_factory=dict)  # the agent's answer to hello

    @property
    def barrier_grace_s(self) -> float:
        """The agent's `barrier_grace_ms` (docs/agent-protocol.md) in seconds, held to
        0-1000 ms; 0 when it gives none or no number."""
        grace = self.hello.get("barrier_grace_ms", 0)
        if isinstance(grace, bool) or not isinstance(grace, int | float):
            return 0.0
        return min(max(float(grace), 0.0), MAX_BARRIER_GRACE_MS) / 1000

    def snapshot(self) -> dict[str, Any]:
        """The DUT's state for the evidence (sockets, settings); never fails the case."""
        try:
            result = self.agent.call("snapshot", {}, timeout=5.0)
        except Exception as error:  # the snapshot is evidence, not a step of the case
            return {"unavailable": str(error)}
        return result if isinstance(result, dict) else {"unavailable": str(result)}

    def stop(self) -> None:
        self.agent.close()
        self.wire.close()


@dataclass(frozen=True)
class TargetOptions:
    """How the user asked the DUT to be set up. Each target takes the options that apply
    to it and refuses the others (`Target.check_options`, before any lab)."""

    sysctls: dict[str, str] = field(default_factory=dict)  # linux: net.* sysctls
    settings: dict[str, str] = field(default_factory=dict)  # ref: stack.settings.Settings
    patches: tuple[str, ...] = ()  # ref: FILE:FUNCTION applied to the stack, in order (tests)
    agent: tuple[str, ...] = ()  # external: the agent's command line


class Target(Protocol):
    """A kind of DUT. `start` builds its part of the lab and returns it running."""

    name: str

    def check_options(self, options: TargetOptions) -> None:
        """UsageError unless every option given applies to this target."""
        ...

    def applicable(self, options: TargetOptions) -> TargetOptions:
        """The options that apply to this target (`compare --targets` offers both the
        options of both targets)."""
        ...

    def start(self, lab: Lab, options: TargetOptions) -> StartedDut:
        """The DUT running on `lab`, set up with `options` (checked: `check_options`)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Facts for the run header (kernel release, stack version, ...)."""
        ...


def start_agent(
    argv: list[str], *, name: str, pass_fds: tuple[int, ...] = (),
    env: dict[str, str] | None = None,
) -> tuple[AgentClient, dict[str, Any]]:
    """An agent process, started and greeted: its client and its answer to `hello`.
    HarnessError, with the agent's stderr, when it does not start or speaks another
    protocol."""
    agent = AgentClient(argv, name=name, pass_fds=pass_fds, env=env)
    try:
        hello = agent.hello()
        if hello.get("protocol") != 1:
            raise HarnessError(f"it speaks protocol {hello.get('protocol')!r}, not 1")
    except Exception as error:
        agent.close()
        stderr = agent.stderr_text.strip()[-2000:]
        shown = f"\nits stderr:\n{stderr}" if stderr and stderr not in str(error) else ""
        raise HarnessError(f"the {name} did not start: {error}{shown}") from error
    return agent, hello
