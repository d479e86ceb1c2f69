"""Sequence-number arithmetic modulo 2**32 (RFC 9293 3.4: "comparisons ... modulo 2**32")."""

from __future__ import annotations

from typing import Final

MODULUS: Final = 1 << 32
HALF: Final = 1 << 31


def add(seq: int, delta: int) -> int:
    return (seq + delta) % MODULUS


def diff(a: int, b: int) -> int:
    """a - b as a signed distance in sequence space."""
    distance = (a - b) % MODULUS
    return distance - MODULUS if distance >= HALF else distance


def lt(a: int, b: int) -> bool:
    return diff(a, b) < 0


def le(a: int, b: int) -> bool:
    return diff(a, b) <= 0


def gt(a: int, b: int) -> bool:
    return diff(a, b) > 0


def ge(a: int, b: int) -> bool:
    return diff(a, b) >= 0


def between(low: int, seq: int, high: int) -> bool:
    """low <= seq <= high in sequence space."""
    return le(low, seq) and le(seq, high)
