"""gVisor's netstack as the DUT: Debian's golang-gvisor-gvisor-dev through agents/gvisor."""

from pathlib import Path

from conformance.errors import UsageError
from conformance.targets.base import TargetOptions
from conformance.targets.external import ExternalTarget

GVISOR_AGENT = (Path(__file__).resolve().parents[2] / "agents" / "gvisor" / "build"
                / "cf-gvisor-agent")


class GvisorTarget(ExternalTarget):
    """gVisor netstack (December 2022 snapshot, Debian), through agents/gvisor."""

    def __init__(self) -> None:
        super().__init__("gvisor", [str(GVISOR_AGENT)],
                         {"version": "netstack of golang-gvisor-gvisor-dev (Debian, 2022-12)"})

    def build_hint(self) -> str:
        return "build it: bash scripts/setup.sh, or make -C agents/gvisor"

    def check_options(self, options: TargetOptions) -> None:
        if options.agent:
            raise UsageError("--agent applies to the external target only "
                             "(the gvisor target runs agents/gvisor)")
        super().check_options(options)
