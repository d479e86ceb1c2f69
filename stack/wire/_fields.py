"""Checks that keep a representation valid; a failure is a programming error (ValueError).

Parsing never trips them: every value a parser builds is in range by construction.
"""

from __future__ import annotations


def check_uint(name: str, value: int, bits: int) -> None:
    """Raise ValueError unless ``value`` fits an unsigned field of ``bits`` bits."""
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{name} must fit {bits} bits, got {value}")


def check_size(name: str, data: bytes, size: int) -> None:
    """Raise ValueError unless ``data`` is exactly ``size`` bytes long."""
    if len(data) != size:
        raise ValueError(f"{name} must be {size} bytes, got {len(data)}")
