"""Initial sequence numbers per RFC 6528: a 4-microsecond clock plus a keyed function of
the connection's 4-tuple, always 32 bits."""

from __future__ import annotations

from ipaddress import IPv4Address

from stack.tcp.isn import IsnGenerator
from stack.timing import SECOND

A = (IPv4Address("192.0.2.1"), 40000)
B = (IPv4Address("192.0.2.2"), 80)
START = 1_000 * SECOND


def test_the_isn_advances_by_one_every_four_microseconds() -> None:
    # RFC 6528 3 / RFC 9293 3.4.1: M is a timer incremented every 4 us.
    generator = IsnGenerator(b"secret")
    first = generator.isn(A, B, START)
    assert generator.isn(A, B, START + 3_999) == first
    assert generator.isn(A, B, START + 4_000) == (first + 1) % 2**32
    assert generator.isn(A, B, START + 1 * SECOND) == (first + 250_000) % 2**32


def test_the_isn_depends_on_every_part_of_the_tuple_and_on_the_secret() -> None:
    generator = IsnGenerator(b"secret")
    isns = {
        generator.isn(A, B, START),
        generator.isn(B, A, START),
        generator.isn((A[0], A[1] + 1), B, START),
        generator.isn(A, (B[0], B[1] + 1), START),
        generator.isn((IPv4Address("192.0.2.3"), A[1]), B, START),
        generator.isn(A, (IPv4Address("198.51.100.7"), B[1]), START),
        IsnGenerator(b"other secret").isn(A, B, START),
    }
    assert len(isns) == 7


def test_the_same_tuple_and_time_give_the_same_isn() -> None:
    assert IsnGenerator(b"k").isn(A, B, START) == IsnGenerator(b"k").isn(A, B, START)


def test_the_isn_stays_32_bit_and_wraps() -> None:
    generator = IsnGenerator(b"secret")
    offset = generator.isn(A, B, 0)
    # The tick at which M + F reaches 2**32 gives 0, and the one before 2**32 - 1.
    wrap = (2**32 - offset) * 4_000
    assert generator.isn(A, B, wrap) == 0
    assert generator.isn(A, B, wrap - 4_000) == 2**32 - 1
    assert generator.isn(A, B, 2**32 * 4_000) == offset
