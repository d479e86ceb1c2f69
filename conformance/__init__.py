"""Packet-level TCP/UDP/IPv4 conformance tester.

What a case of your own imports (`conformance run --suite DIR`, README "Your own
cases"): the markers (`requirement`, `choices`, `slow`), the DUT and the testbench the
`dut` and `tb` fixtures give, `TcpFlow`, `step`, the set-ups of `scenarios`, the result
types and `ANSWER_S`. They load on first use, so that `import conformance` (the command
line) stays cheap.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

PUBLIC = {
    "requirement": "conformance.case", "choices": "conformance.case",
    "slow": "conformance.case", "tcp_segment_choices": "conformance.case",
    "Errno": "conformance.targets.dut", "Message": "conformance.targets.dut",
    "Unsupported": "conformance.targets.dut", "Dut": "conformance.targets.dut",
    "Testbench": "conformance.testbench.bench", "ExpectationFailed": "conformance.testbench.bench",
    "Received": "conformance.testbench.bench", "step": "conformance.testbench.bench",
    "ANSWER_S": "conformance.testbench.bench", "TcpFlow": "conformance.testbench.tcp",
    "open_passive": "conformance.testbench.scenarios",
    "open_active": "conformance.testbench.scenarios",
    "bound_socket": "conformance.testbench.scenarios",
    "connected_socket": "conformance.testbench.scenarios",
}
__all__ = ["__version__", *PUBLIC]


def __getattr__(name: str) -> Any:
    if name in PUBLIC:
        return getattr(import_module(PUBLIC[name]), name)
    raise AttributeError(f"module 'conformance' has no attribute {name!r}")
