"""Writing agent responses, and the JSON shapes of the values they carry
(docs/agent-protocol.md, "Values" and "recvmsg")."""

from __future__ import annotations

import base64
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


def data_json(data: bytes | bytearray) -> str:
    """Bytes as the protocol carries them: base64 with padding (RFC 4648)."""
    return base64.b64encode(data).decode()


def endpoint_json(address: object) -> dict[str, Any]:
    """{"addr", "port"} of an (address, port) pair, both null when there is none."""
    if isinstance(address, tuple) and len(address) == 2:
        return {"addr": str(address[0]), "port": address[1]}
    return {"addr": None, "port": None}


def linger_json(onoff: int, linger: int) -> dict[str, int]:
    """The SO_LINGER value: struct linger as an object."""
    return {"onoff": onoff, "linger": linger}


def errqueue_json(
    errno: str | None,
    origin: str,
    icmp_type: int,
    icmp_code: int,
    info: int,
    data: int,
    offender: object,
) -> dict[str, Any]:
    """The `errqueue` object of recvmsg: struct sock_extended_err and the offender."""
    return {
        "errno": errno,
        "origin": origin,
        "type": icmp_type,
        "code": icmp_code,
        "info": info,
        "data": data,
        "offender": None if offender is None else endpoint_json(offender),
    }


def pktinfo_json(ifindex: int, spec_dst: object, addr: object) -> dict[str, Any]:
    """The `pktinfo` entry of recvmsg's `ancillary` object: struct in_pktinfo."""
    return {"ifindex": ifindex, "spec_dst": str(spec_dst), "addr": str(addr)}
