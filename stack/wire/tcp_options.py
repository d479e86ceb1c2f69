"""TCP options (RFC 9293 3.2, RFC 7323, RFC 2018): typed entries, parsed and encoded.

Robustness, RFC 9293 3.1 and RFC 1122 4.2.2.5: "a TCP implementation MUST be prepared to
handle an illegal option length (e.g., zero)". Here an illegal length raises
WireError("tcp.bad_option_length") and the layer above drops the segment and logs why;
an option of a kind not known here is kept raw, and its length used to step over it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, TypeAlias

from stack.wire._fields import check_uint
from stack.wire.errors import WireError

MAX_OPTIONS_LENGTH = 40


class TcpOptionKind(IntEnum):
    END_OF_LIST = 0
    NO_OPERATION = 1
    MAXIMUM_SEGMENT_SIZE = 2
    WINDOW_SCALE = 3  # RFC 7323
    SACK_PERMITTED = 4  # RFC 2018
    SACK = 5  # RFC 2018
    TIMESTAMPS = 8  # RFC 7323


@dataclass(frozen=True)
class Eol:
    """End of option list: what follows it is padding, not represented."""

    KIND: ClassVar[int] = TcpOptionKind.END_OF_LIST

    def encode(self) -> bytes:
        return b"\x00"


@dataclass(frozen=True)
class Nop:
    KIND: ClassVar[int] = TcpOptionKind.NO_OPERATION

    def encode(self) -> bytes:
        return b"\x01"


@dataclass(frozen=True)
class Mss:
    KIND: ClassVar[int] = TcpOptionKind.MAXIMUM_SEGMENT_SIZE
    value: int

    def __post_init__(self) -> None:
        check_uint("MSS", self.value, 16)

    def encode(self) -> bytes:
        return struct.pack("!BBH", self.KIND, 4, self.value)


@dataclass(frozen=True)
class WindowScale:
    """The shift count as received; clamping above 14 (RFC 7323 2.3) is the TCP's job."""

    KIND: ClassVar[int] = TcpOptionKind.WINDOW_SCALE
    shift: int

    def __post_init__(self) -> None:
        check_uint("window scale shift", self.shift, 8)

    def encode(self) -> bytes:
        return struct.pack("!BBB", self.KIND, 3, self.shift)


@dataclass(frozen=True)
class SackPermitted:
    KIND: ClassVar[int] = TcpOptionKind.SACK_PERMITTED

    def encode(self) -> bytes:
        return struct.pack("!BB", self.KIND, 2)


@dataclass(frozen=True)
class Sack:
    """SACK blocks as (left edge, right edge) pairs of sequence numbers; 1 to 4 of them."""

    KIND: ClassVar[int] = TcpOptionKind.SACK
    blocks: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.blocks) <= 4:
            raise ValueError(f"a SACK option holds 1 to 4 blocks, got {len(self.blocks)}")
        for left, right in self.blocks:
            check_uint("SACK left edge", left, 32)
            check_uint("SACK right edge", right, 32)

    def encode(self) -> bytes:
        edges = [edge for block in self.blocks for edge in block]
        return struct.pack(f"!BB{len(edges)}I", self.KIND, 2 + 4 * len(edges), *edges)


@dataclass(frozen=True)
class Timestamps:
    KIND: ClassVar[int] = TcpOptionKind.TIMESTAMPS
    value: int
    echo_reply: int

    def __post_init__(self) -> None:
        check_uint("TSval", self.value, 32)
        check_uint("TSecr", self.echo_reply, 32)

    def encode(self) -> bytes:
        return struct.pack("!BBII", self.KIND, 10, self.value, self.echo_reply)


@dataclass(frozen=True)
class UnknownOption:
    """An option of a kind not decoded here, kept raw: ``data`` follows the length octet."""

    kind: int
    data: bytes = b""

    def __post_init__(self) -> None:
        check_uint("option kind", self.kind, 8)
        if self.kind in _KNOWN_KINDS:
            raise ValueError(f"kind {self.kind} has its own type")
        if len(self.data) > MAX_OPTIONS_LENGTH - 2:
            raise ValueError(f"option data of {len(self.data)} bytes cannot fit a header")

    def encode(self) -> bytes:
        return bytes([self.kind, 2 + len(self.data)]) + self.data


TcpOption: TypeAlias = (
    Eol | Nop | Mss | WindowScale | SackPermitted | Sack | Timestamps | UnknownOption
)

_KNOWN_KINDS = frozenset(int(kind) for kind in TcpOptionKind)


def _decode(kind: int, body: bytes) -> TcpOption:
    """One TLV option whose kind is not EOL or NOP; ``body`` follows the length octet."""
    if kind == TcpOptionKind.MAXIMUM_SEGMENT_SIZE and len(body) == 2:
        return Mss(int.from_bytes(body, "big"))
    if kind == TcpOptionKind.WINDOW_SCALE and len(body) == 1:
        return WindowScale(body[0])
    if kind == TcpOptionKind.SACK_PERMITTED and not body:
        return SackPermitted()
    if kind == TcpOptionKind.TIMESTAMPS and len(body) == 8:
        return Timestamps(*struct.unpack("!II", body))
    if kind == TcpOptionKind.SACK and body and len(body) % 8 == 0:
        edges = struct.unpack(f"!{len(body) // 4}I", body)
        return Sack(tuple(zip(edges[0::2], edges[1::2], strict=True)))
    if kind in _KNOWN_KINDS:
        raise WireError(
            "tcp.bad_option_length", f"{TcpOptionKind(kind).name} with length {2 + len(body)}"
        )
    return UnknownOption(kind, body)


def parse_tcp_options(raw: bytes) -> tuple[TcpOption, ...]:
    """Walk the options area of a TCP header. EOL ends the list (what follows is padding);
    NOP is one octet; every other option is kind, length (counting both octets), data."""
    options: list[TcpOption] = []
    position = 0
    while position < len(raw):
        kind = raw[position]
        if kind == TcpOptionKind.END_OF_LIST:
            options.append(Eol())
            break
        if kind == TcpOptionKind.NO_OPERATION:
            options.append(Nop())
            position += 1
            continue
        if position + 1 >= len(raw):
            raise WireError("tcp.bad_option_length", f"option {kind} has no length octet")
        length = raw[position + 1]
        if length < 2:
            raise WireError("tcp.bad_option_length", f"option {kind} with length {length}")
        if position + length > len(raw):
            raise WireError(
                "tcp.bad_option_length",
                f"option {kind} of length {length} runs past the header "
                f"({len(raw) - position} bytes left)",
            )
        options.append(_decode(kind, bytes(raw[position + 2 : position + length])))
        position += length
    return tuple(options)


def encode_tcp_options(options: Iterable[TcpOption]) -> bytes:
    """Options to bytes, zero-padded to a multiple of four (RFC 9293 3.1: the padding is
    zeros). Raises ValueError for more than 40 bytes, for an EOL that is not last, and for
    a list that needs padding but does not end with EOL (the padding would read back as
    an EOL that the list did not have): end it with ``Eol()`` or fill it with ``Nop()``."""
    options = tuple(options)
    if any(isinstance(option, Eol) for option in options[:-1]):
        raise ValueError("EOL must be the last option")
    raw = b"".join(option.encode() for option in options)
    if len(raw) % 4 and not (options and isinstance(options[-1], Eol)):
        raise ValueError(f"{len(raw)} bytes of options: end with Eol() or pad with Nop()")
    raw += b"\x00" * (-len(raw) % 4)
    if len(raw) > MAX_OPTIONS_LENGTH:
        raise ValueError(f"{len(raw)} bytes of options exceed {MAX_OPTIONS_LENGTH}")
    return raw
