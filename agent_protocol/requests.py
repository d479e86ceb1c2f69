"""Reading agent requests: one JSON object per line (docs/agent-protocol.md).

`parse_request` checks the envelope; `Args` reads the named arguments with type checks.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from agent_protocol.names import MESSAGE_FLAGS


class BadRequest(Exception):
    """The request is malformed; answered with "error"."""


class NotSupported(Exception):
    """The call, option, flag or name is unknown here; answered with "unsupported"."""


class Args:
    """The named arguments of one request, read with type checks."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    def value(self, key: str) -> Any:
        if key not in self.raw:
            raise BadRequest(f"missing argument {key!r}")
        return self.raw[key]

    def integer(self, key: str) -> int:
        value = self.value(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise BadRequest(f"argument {key!r} must be an integer, not {value!r}")
        return value

    def text(self, key: str) -> str:
        value = self.value(key)
        if not isinstance(value, str):
            raise BadRequest(f"argument {key!r} must be a string, not {value!r}")
        return value

    def endpoint(self) -> tuple[str, int]:
        addr = self.text("addr")
        try:
            ipaddress.IPv4Address(addr)
        except ValueError:
            raise BadRequest(f"addr {addr!r} is not a dotted-quad IPv4 address") from None
        port = self.integer("port")
        if not 0 <= port <= 0xFFFF:
            raise BadRequest(f"port {port} out of range")
        return addr, port

    def data(self, key: str = "data") -> bytes:
        try:
            return base64.b64decode(self.text(key), validate=True)
        except binascii.Error as exc:
            raise BadRequest(f"{key} is not base64: {exc}") from None

    def choice(self, key: str, table: Mapping[str, int]) -> int:
        name = self.text(key)
        if name not in table:
            raise NotSupported(f"unknown {key} {name!r}")
        return table[name]

    def names(self, key: str, table: Mapping[str, int], *, optional: bool = False) -> int:
        """A list of names turned into the OR of their bits."""
        if optional and key not in self.raw:
            return 0
        value = self.value(key)
        if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
            raise BadRequest(f"argument {key!r} must be a list of names, not {value!r}")
        bits = 0
        for name in value:
            if name not in table:
                raise NotSupported(f"unknown {key} name {name!r}")
            bits |= table[name]
        return bits

    def name_set(self, key: str, known: Collection[str], *, optional: bool = False) -> set[str]:
        """A list of names checked against ``known``, as a set."""
        if optional and key not in self.raw:
            return set()
        value = self.value(key)
        if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
            raise BadRequest(f"argument {key!r} must be a list of names, not {value!r}")
        unknown = [name for name in value if name not in known]
        if unknown:
            raise NotSupported(f"unknown {key} name {unknown[0]!r}")
        return set(value)

    def message_flags(self) -> int:
        return self.names("flags", MESSAGE_FLAGS, optional=True)


@dataclass(frozen=True)
class Request:
    """One well-formed request line."""

    id: int
    call: str
    args: dict[str, Any]
    background: bool


class MalformedRequest(Exception):
    """A request line that is not a request; `response` is the "error" answer to send."""

    def __init__(self, request_id: int | None, message: str) -> None:
        super().__init__(message)
        self.response = {"id": request_id, "error": message}


def parse_request(line: bytes) -> Request:
    """Read one request line; raises MalformedRequest with the answer to send."""
    try:
        request = json.loads(line)
    except ValueError as exc:
        raise MalformedRequest(None, f"request is not JSON: {exc}") from None
    if not isinstance(request, dict):
        raise MalformedRequest(None, "request is not a JSON object")
    request_id = request.get("id")
    if not isinstance(request_id, int) or isinstance(request_id, bool):
        raise MalformedRequest(None, f"id must be an integer, not {request_id!r}")
    call, args = request.get("call"), request.get("args", {})
    background = request.get("background", False)
    if not isinstance(call, str):
        raise MalformedRequest(request_id, "call must be a string")
    if not isinstance(args, dict):
        raise MalformedRequest(request_id, "args must be an object")
    if not isinstance(background, bool):
        raise MalformedRequest(request_id, "background must be true or false")
    return Request(request_id, call, args, background)
