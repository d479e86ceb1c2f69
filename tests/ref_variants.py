"""The reference stack made deaf or slow, for the meta-tests (tests/test_ref_suites.py).

`mute` hears nothing at all: every frame from the wire is dropped, while the agent still
answers. No case may pass it or call its silence `info`. `late` is correct but sends every
frame 0.6 s after the stack produced it, in order: every verdict must be that of the
normal stack, except where a case judges how soon the DUT answers. Loaded by path inside
the stack's process (`--ref-patch FILE:FUNCTION`), so it reads the clock itself.
"""

from __future__ import annotations

import time
from collections import deque

from stack.host import Host
from stack.timing import Nanoseconds, earliest

LATE_NS = 600_000_000


def mute(host: Host) -> None:
    """Every received frame is dropped: the stack hears nothing."""

    def receive(raw: bytes, now: Nanoseconds) -> None:
        del raw, now

    host.receive = receive  # type: ignore[method-assign]


def late(host: Host) -> None:
    """Every frame the stack sends leaves LATE_NS after the stack produced it."""
    held: deque[tuple[int, bytes]] = deque()
    take_frames, next_timer = host.take_frames, host.next_timer

    def delayed_frames() -> list[bytes]:
        now = time.monotonic_ns()
        held.extend((now + LATE_NS, frame) for frame in take_frames())
        due = []
        while held and held[0][0] <= now:
            due.append(held.popleft()[1])
        return due

    def next_timer_or_release() -> Nanoseconds | None:
        return earliest(next_timer(), held[0][0] if held else None)

    host.take_frames = delayed_frames  # type: ignore[method-assign]
    host.next_timer = next_timer_or_release  # type: ignore[method-assign]
