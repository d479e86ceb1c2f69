"""The event loop: frames from the TAP device, requests from the tester, timers.

One thread. Each turn runs the stack's timers, tries parked agent calls again, writes
what the stack has to send, sleeps in select() until the next frame, request or timer,
and hands what arrived to the stack with the time it was read.
"""

from __future__ import annotations

import os
import select
import time
from typing import Final

from stack.host import Host
from stack.io.agent import RefAgent
from stack.timing import SECOND, earliest

FRAMES_PER_TURN: Final = 64
MAX_FRAME: Final = 65536


class EventLoop:
    def __init__(self, host: Host, agent: RefAgent, tap_fd: int, requests_fd: int) -> None:
        self.host = host
        self.agent = agent
        self.tap_fd = tap_fd
        self.requests_fd = requests_fd
        self._partial_line = b""
        os.set_blocking(tap_fd, False)

    def run(self) -> None:
        """Serve until the tester closes the request pipe."""
        while True:
            now = time.monotonic_ns()
            self.host.poll(now)
            self.agent.retry(now)
            self._flush()
            deadline = earliest(self.host.next_timer(), self.agent.next_deadline())
            timeout = None if deadline is None else max(0, deadline - now) / SECOND
            readable, _, _ = select.select([self.tap_fd, self.requests_fd], [], [], timeout)
            if self.tap_fd in readable:
                self._read_frames()
            if self.requests_fd in readable and not self._read_requests():
                return

    def _read_frames(self) -> None:
        for _ in range(FRAMES_PER_TURN):
            try:
                frame = os.read(self.tap_fd, MAX_FRAME)
            except BlockingIOError:
                break
            self.host.receive(frame, time.monotonic_ns())

    def _read_requests(self) -> bool:
        """Handle the complete request lines that arrived; False at end of input."""
        data = os.read(self.requests_fd, MAX_FRAME)
        if not data:
            return False
        lines = (self._partial_line + data).split(b"\n")
        self._partial_line = lines.pop()
        for line in lines:
            if line.strip():
                self.agent.receive(line, time.monotonic_ns())
                self._flush()
        return True

    def _flush(self) -> None:
        for frame in self.host.take_frames():
            os.write(self.tap_fd, frame)
