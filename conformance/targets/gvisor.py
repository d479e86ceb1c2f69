"""gVisor's netstack as the DUT: Debian's golang-gvisor-gvisor-dev through agents/gvisor."""

from conformance.targets.external import BundledTarget, bundled_agent

GVISOR_AGENT = bundled_agent("gvisor")


class GvisorTarget(BundledTarget):
    """gVisor netstack (December 2022 snapshot, Debian), through agents/gvisor."""

    def __init__(self) -> None:
        super().__init__("gvisor", "netstack of golang-gvisor-gvisor-dev (Debian, 2022-12)")
