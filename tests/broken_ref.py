"""The reference stack broken on purpose, one behaviour at a time.

Each function takes the stack's `Host` before it serves (`--ref-patch FILE:FUNCTION`)
and replaces one piece of it with a version that breaks one requirement. The cases that
check that requirement must then fail (tests/test_cases_fail_on_broken_ref.py).
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from stack.host import Host
from stack.icmp import ReceivedError
from stack.udp import UdpSocket


def send_ignores_pending_error(host: Host) -> None:
    """send() goes ahead as if no ICMP error had been reported (RFC 1122 4.1.3.3)."""
    original = host.udp.sendto

    def sendto(sock: UdpSocket, *args: Any) -> int:
        sock.pending_error = None
        return original(sock, *args)

    host.udp.sendto = sendto  # type: ignore[method-assign]


def recv_ignores_pending_error(host: Host) -> None:
    """recv() waits for data as if no ICMP error had been reported (RFC 1122 4.1.3.3)."""
    original = host.udp.recvmsg

    def recvmsg(sock: UdpSocket, size: int, flags: set[str]) -> Any:
        if "MSG_ERRQUEUE" not in flags:
            sock.pending_error = None
        return original(sock, size, flags)

    host.udp.recvmsg = recvmsg  # type: ignore[method-assign]


def unconnected_sockets_hear_hard_errors(host: Host) -> None:
    """Hard errors become pending on unconnected sockets too (a choice RFC 1122 4.1.3.3
    leaves to the API; Linux does not)."""
    original = host.udp.icmp_error

    def icmp_error(error: ReceivedError, now: int) -> str | None:
        remembered = {handle: sock.remote for handle, sock in host.udp.sockets.items()}
        for sock in host.udp.sockets.values():
            if sock.remote is None:
                sock.remote = (error.quoted_header.dst, int.from_bytes(error.quoted_data[2:4]))
        try:
            return original(error, now)
        finally:
            for handle, remote in remembered.items():
                host.udp.sockets[handle].remote = remote

    host.udp.icmp_error = icmp_error  # type: ignore[method-assign]


def no_error_queue(host: Host) -> None:
    """IP_RECVERR is accepted and ignored: no error is ever queued."""
    original = host.udp.icmp_error

    def icmp_error(error: ReceivedError, now: int) -> str | None:
        for sock in host.udp.sockets.values():
            sock.options["IP_RECVERR"] = 0
        return original(error, now)

    host.udp.icmp_error = icmp_error  # type: ignore[method-assign]


def error_queue_without_mtu(host: Host) -> None:
    """The error queue reports EMSGSIZE without the Next-Hop MTU (RFC 1191 3)."""
    original = host.udp.icmp_error

    def icmp_error(error: ReceivedError, now: int) -> str | None:
        return original(
            ReceivedError(error.type, error.code, 0, error.offender, error.quoted_header,
                          error.quoted_data),
            now,
        )

    host.udp.icmp_error = icmp_error  # type: ignore[method-assign]


def never_set_df(host: Host) -> None:
    """Datagrams go out without DF: no path MTU discovery (RFC 1191 2)."""
    original = host.send_datagram

    def send_datagram(*args: Any, **kwargs: Any) -> None:
        kwargs["dont_fragment"] = False
        original(*args, **kwargs)

    host.send_datagram = send_datagram  # type: ignore[method-assign]


def ignore_datagram_too_big(host: Host) -> None:
    """Datagram Too Big messages leave the path MTU alone (RFC 1191 3)."""

    def datagram_too_big(destination: IPv4Address, next_hop_mtu: int, quoted_length: int,
                         now: int) -> int:
        return host.pmtu.get(destination, now)

    host.pmtu.datagram_too_big = datagram_too_big  # type: ignore[method-assign]


def pmtu_follows_every_message(host: Host) -> None:
    """The estimate becomes whatever the message says: raised by a larger Next-Hop MTU,
    lowered below 68 by a tiny one (RFC 1191 3)."""
    from stack.pmtu import _Estimate

    def datagram_too_big(destination: IPv4Address, next_hop_mtu: int, quoted_length: int,
                         now: int) -> int:
        estimate = _Estimate(next_hop_mtu, now + host.settings.pmtu_expires)
        host.pmtu._estimates[destination] = estimate
        return next_hop_mtu

    host.pmtu.datagram_too_big = datagram_too_big  # type: ignore[method-assign]


def sends_ignore_the_path_mtu(host: Host) -> None:
    """Datagrams are sized by the link MTU whatever the path MTU (RFC 1191 3)."""
    host.udp.ip = _LinkMtuOnly(host)  # type: ignore[assignment]


class _LinkMtuOnly:
    def __init__(self, host: Host) -> None:
        self._host = host

    def path_mtu(self, destination: IPv4Address, now: int) -> int:
        return self._host.link_mtu

    def __getattr__(self, name: str) -> Any:
        return getattr(self._host, name)
