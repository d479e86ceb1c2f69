"""What a case leaves behind: observations, the DUT call log, the frames, the verdict."""

import time
from dataclasses import dataclass, field
from typing import Any

from conformance.testbench.wire import WireFrame


@dataclass
class CallRecord:
    sequence: int
    call: str
    args: dict[str, Any]
    outcome: str  # "result", "errno", "unsupported" or "error"
    value: Any
    started_s: float  # seconds since the case started
    finished_s: float | None


@dataclass
class CaseRecord:
    case_id: str
    target: str
    requirements: list[str]
    level: str
    started_monotonic_ns: int = field(default_factory=time.monotonic_ns)
    observations: dict[str, Any] = field(default_factory=dict)
    calls: list[CallRecord] = field(default_factory=list)
    frames: list[WireFrame] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    agent_log: str = ""

    def observe(self, name: str, value: Any) -> None:
        """Record a named observation; names are stable so that targets compare."""
        if name in self.observations:
            raise ValueError(f"observation {name!r} recorded twice")
        self.observations[name] = value

    def seconds_since_start(self) -> float:
        return (time.monotonic_ns() - self.started_monotonic_ns) / 1e9
