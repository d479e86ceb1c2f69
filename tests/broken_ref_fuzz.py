"""The reference stack broken as a fuzzer should find it: wedged or killed by a kind of
frame that only the fuzzer sends (`--ref-patch FILE:FUNCTION`, tests/test_fuzz.py). The
liveness checks' own frames carry no IP options and valid UDP checksums."""

from __future__ import annotations

from typing import Any

from stack.host import Host


def wedged_by_ip_options(host: Host) -> None:
    """After the first IPv4 header with options, the stack handles no IPv4 at all."""
    original = host._receive_ipv4
    wedged = False

    def receive_ipv4(payload: bytes, now: Any, **kwargs: Any) -> None:
        nonlocal wedged
        wedged = wedged or (len(payload) >= 20 and payload[0] & 0x0F > 5)
        if not wedged:
            original(payload, now, **kwargs)

    host._receive_ipv4 = receive_ipv4  # type: ignore[method-assign]


def killed_by_a_zero_udp_checksum(host: Host) -> None:
    """A UDP datagram with checksum 0 (none computed, RFC 768) raises out of the stack's
    loop: the process dies."""
    original = host._receive_ipv4

    def receive_ipv4(payload: bytes, now: Any, **kwargs: Any) -> None:
        header = (payload[0] & 0x0F) * 4 if payload else 0
        if (len(payload) >= header + 8 and payload[9] == 17
                and payload[header + 6:header + 8] == b"\0\0"):
            raise RuntimeError("a UDP datagram without a checksum")
        original(payload, now, **kwargs)

    host._receive_ipv4 = receive_ipv4  # type: ignore[method-assign]
