"""Time in the reference stack: integer nanoseconds from an arbitrary origin.

Every stateful call takes ``now`` in these units; only ``stack/io`` reads a clock.
"""

from typing import Final

Nanoseconds = int

MILLISECOND: Final = 1_000_000
SECOND: Final = 1_000_000_000


def earliest(*deadlines: Nanoseconds | None) -> Nanoseconds | None:
    """The earliest of the deadlines that are set, or None when none is."""
    pending = [deadline for deadline in deadlines if deadline is not None]
    return min(pending) if pending else None
