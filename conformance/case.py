"""What a case module imports: the requirement marker and the DUT's result types."""

import pytest

from conformance.targets.dut import Errno, ErrQueueEntry, Message, Unsupported
from conformance.testbench.bench import ExpectationFailed, Received
from conformance.testbench.tcp import TcpFlow

requirement = pytest.mark.requirement
slow = pytest.mark.slow

__all__ = [
    "ErrQueueEntry", "Errno", "ExpectationFailed", "Message", "Received", "TcpFlow",
    "Unsupported", "requirement", "slow",
]
