"""Reading TCP options leniently (RFC 1122 4.2.2.5: "MUST be prepared to handle an
illegal option length (e.g., zero) without crashing"; RFC 9293 3.1, MUST-6 and MUST-7).

The wire codec refuses a malformed options area; a receiving TCP instead keeps what it
could read, as Linux tcp_parse_options does: a known option with the wrong length is
ignored, a length below two or past the header ends the walk, unknown kinds are skipped.
"""

from __future__ import annotations

from contextlib import suppress

from stack.wire.errors import WireError
from stack.wire.tcp import Eol, Nop, TcpOption, encode_tcp_options, parse_tcp_options


def lenient_options(raw: bytes) -> tuple[TcpOption, ...]:
    options: list[TcpOption] = []
    position = 0
    while position < len(raw):
        kind = raw[position]
        if kind == 0:
            break
        if kind == 1:
            position += 1
            continue
        if position + 1 >= len(raw):
            break
        length = raw[position + 1]
        if length < 2 or position + length > len(raw):
            break
        with suppress(WireError):  # a known kind with a wrong length: ignored
            options.extend(
                option for option in parse_tcp_options(raw[position : position + length])
                if not isinstance(option, (Eol, Nop))
            )
        position += length
    while options:
        try:
            encoded = encode_tcp_options(options)
        except ValueError:
            options.append(Eol())
            continue
        if len(encoded) <= 40:
            break
        options.pop(-2 if isinstance(options[-1], Eol) else -1)
    return tuple(options)
