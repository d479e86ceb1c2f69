"""Frames the stack refused, each with a machine-readable reason.

Reasons read ``"<layer>.<problem>"``, the same convention as ``WireError.reason``, so
that tests and the agent's snapshot can say exactly why a frame went nowhere.
"""

from collections import Counter, deque
from dataclasses import dataclass
from typing import Final

from stack.timing import Nanoseconds

RECENT_DROPS_KEPT: Final = 64


@dataclass(frozen=True)
class Drop:
    at: Nanoseconds
    reason: str
    detail: str = ""


class DropLog:
    """Counts every drop by reason and keeps the most recent ones."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.recent: deque[Drop] = deque(maxlen=RECENT_DROPS_KEPT)

    def record(self, now: Nanoseconds, reason: str, detail: str = "") -> None:
        self.counts[reason] += 1
        self.recent.append(Drop(now, reason, detail))

    def reasons(self) -> list[str]:
        """The reasons of the recent drops, oldest first."""
        return [drop.reason for drop in self.recent]
