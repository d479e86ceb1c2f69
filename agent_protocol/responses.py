"""Writing agent responses: one JSON object per line on the real standard output
(docs/agent-protocol.md, "Transport")."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Mapping
from typing import Any, BinaryIO


class ResponseWriter:
    """Writes one response per line; safe to call from any thread."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, response: Mapping[str, Any]) -> None:
        line = json.dumps(response).encode() + b"\n"
        with self._lock:
            try:
                self._stream.write(line)
                self._stream.flush()
            except BrokenPipeError:
                pass  # the tester has gone; stdin EOF will end the agent


def take_stdout() -> BinaryIO:
    """Keeps the real stdout for responses and points fd 1 at stderr, so nothing else
    (a library's print, a C-level write) can reach the tester's pipe."""
    sys.stdout.flush()
    responses_fd = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(responses_fd, "wb")
