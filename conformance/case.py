"""What a case module imports: the requirement and choices markers, the DUT's result
types."""

import pytest

from conformance.targets.dut import Errno, ErrQueueEntry, Message, Unsupported
from conformance.testbench.bench import ExpectationFailed, Received
from conformance.testbench.tcp import TcpFlow

requirement = pytest.mark.requirement
slow = pytest.mark.slow
# Frame aspects the RFCs leave to the DUT in a case (conformance.testbench.observed).
choices = pytest.mark.choices
# What any TCP segment of the DUT may differ in, its checks aside (module `pytestmark`):
# PSH placement, the options its SYN offers, the window it offers.
tcp_segment_choices = choices("frame.psh", "frame.syn_options", "frame.window")

__all__ = [
    "ErrQueueEntry", "Errno", "ExpectationFailed", "Message", "Received", "TcpFlow",
    "Unsupported", "choices", "requirement", "slow", "tcp_segment_choices",
]
