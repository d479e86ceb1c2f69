"""The wire: every frame both ways, read and timestamped by one thread, in order.

The capture thread reads frames the DUT sends as soon as they arrive (select on the
descriptor, no scapy sniff), stamps them, answers ARP for the tester's hosts at once,
and wakes whoever waits for a frame. Frames the tester writes go through `inject` so that
the capture holds both directions in wire order.
"""

import contextlib
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from conformance.errors import HarnessError

Sender = Literal["dut", "tester"]


class Wire(Protocol):
    """Where the tester meets the DUT: frames in, frames out."""

    def fileno(self) -> int: ...
    def read_frame(self) -> bytes | None: ...
    def write_frame(self, frame: bytes) -> None: ...
    def close(self) -> None: ...


class TapWire:
    """The wire end of a TAP device whose other end the DUT's kernel owns."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        return self._fd

    def read_frame(self) -> bytes | None:
        try:
            return os.read(self._fd, 65536)
        except BlockingIOError:
            return None

    def write_frame(self, frame: bytes) -> None:
        os.write(self._fd, frame)

    def close(self) -> None:
        """The lab owns the descriptor and closes it."""


@dataclass
class WireFrame:
    number: int  # 1-based, as Wireshark numbers frames
    sender: Sender
    data: bytes
    timestamp_ns: int  # wall clock, for the capture file
    monotonic_ns: int  # for timing judgements
    comments: list[str] = field(default_factory=list)
    claimed: bool = False  # matched by an expectation already

    @property
    def time_s(self) -> float:
        return self.monotonic_ns / 1e9


FrameHook = Callable[[WireFrame], None]

# No case needs a fraction of this (the busiest, 131 frames from lwIP): a DUT that
# sends more floods the wire, and the capture stops holding its frames (they are drained).
MAX_DUT_FRAMES = 5000


class DutFlooded(HarnessError):
    """The DUT sent more than MAX_DUT_FRAMES in one case: the case cannot be judged."""


class Capture:
    """Reads the wire on a thread; holds every frame; lets callers wait for frames."""

    def __init__(self, wire: Wire, on_dut_frame: FrameHook | None = None) -> None:
        self._wire = wire
        self.on_dut_frame = on_dut_frame
        self.frames: list[WireFrame] = []
        self._changed = threading.Condition()
        self._stop_read, self._stop_write = os.pipe()
        self._thread = threading.Thread(target=self._read_loop, name="capture", daemon=True)
        self.failure: BaseException | None = None
        self._tester_frames = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            os.write(self._stop_write, b"x")
            self._thread.join(timeout=5)
        for fd in (self._stop_read, self._stop_write):
            with contextlib.suppress(OSError):
                os.close(fd)

    def inject(self, data: bytes, comment: str) -> WireFrame:
        """Write a frame to the DUT and record it in wire order."""
        with self._changed:
            frame = self._append("tester", data, comment)
            self._tester_frames += 1
            self._wire.write_frame(data)
        return frame

    def _append(self, sender: Sender, data: bytes, comment: str | None) -> WireFrame:
        frame = WireFrame(
            number=len(self.frames) + 1,
            sender=sender,
            data=data,
            timestamp_ns=time.time_ns(),
            monotonic_ns=time.monotonic_ns(),
            comments=[comment] if comment else [],
        )
        self.frames.append(frame)
        self._changed.notify_all()
        return frame

    def _read_loop(self) -> None:
        try:
            while True:
                ready, _, _ = select.select([self._wire.fileno(), self._stop_read], [], [])
                if self._stop_read in ready:
                    return
                while (data := self._wire.read_frame()) is not None:
                    if self.failure is not None:
                        continue  # flooded: drained, not held
                    with self._changed:
                        frame = self._append("dut", data, None)
                        if frame.number - self._tester_frames > MAX_DUT_FRAMES:
                            self.frames.pop()
                            self.failure = DutFlooded(
                                f"the DUT flooded the wire: more than {MAX_DUT_FRAMES} frames "
                                f"in one case (the capture holds the first {MAX_DUT_FRAMES})")
                            self._changed.notify_all()
                            continue
                    if self.on_dut_frame is not None:
                        self.on_dut_frame(frame)
        except BaseException as error:  # reported by the next wait, as a harness error
            self.failure = error
            with self._changed:
                self._changed.notify_all()

    def wait(self, predicate: Callable[[], bool], deadline_monotonic_ns: int) -> bool:
        """Wait until `predicate()` holds (checked whenever a frame arrives) or the deadline."""
        with self._changed:
            while not predicate():
                if isinstance(self.failure, DutFlooded):
                    raise self.failure
                if self.failure is not None:
                    raise RuntimeError(f"capture thread failed: {self.failure!r}")
                remaining = (deadline_monotonic_ns - time.monotonic_ns()) / 1e9
                if remaining <= 0:
                    if isinstance(self.failure, DutFlooded):
                        raise self.failure
                    return predicate()
                self._changed.wait(remaining)
            return True

    def snapshot(self, start: int = 0) -> list[WireFrame]:
        with self._changed:
            return self.frames[start:]
