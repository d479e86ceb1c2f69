"""What a case leaves behind: observations, the DUT call log, the frames, the verdict."""

import time
from dataclasses import dataclass, field
from typing import Any

from conformance.wire.capture import WireFrame


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
    # Observations (by name) and frame aspects (`frame.psh`, ...) that the case names as
    # choices the RFCs leave open: `compare` allows them to differ.
    choices: list[str] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    frames: list[WireFrame] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    agent_log: str = ""

    def observe(self, name: str, value: Any, *, choice: bool = False) -> None:
        """Record a named observation; names are stable so that targets compare.
        `choice`: the value is the DUT's to choose (the RFCs leave it open)."""
        if name in self.observations:
            raise ValueError(f"observation {name!r} recorded twice")
        self.observations[name] = value
        if choice:
            self.choose(name)

    def choose(self, name: str) -> None:
        """Name an observation already recorded as a choice the RFCs leave open."""
        if name not in self.observations:
            raise ValueError(f"no observation {name!r} to name as a choice")
        self.choices.append(name)

    def seconds_since_start(self) -> float:
        return (time.monotonic_ns() - self.started_monotonic_ns) / 1e9
