"""What every socket shares, UDP and TCP alike: endpoints, the IP service a transport
asks of the layer below, what recvmsg returns, ephemeral ports, and the options of
SOL_SOCKET and IPPROTO_IP (defaults, setsockopt's checks and getsockopt's lookup) as
Linux has them; each transport adds its own on top."""

from __future__ import annotations

import random
from collections.abc import Container
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Final, Protocol

from stack.errors import SocketError, Unsupported
from stack.settings import Settings
from stack.timing import Nanoseconds

Endpoint = tuple[IPv4Address, int]
ANY: Final = IPv4Address("0.0.0.0")
MIN_RECEIVE_BUFFER: Final = 2304  # Linux SOCK_MIN_RCVBUF
PMTUDISC_MODES: Final = ("IP_PMTUDISC_DONT", "IP_PMTUDISC_WANT", "IP_PMTUDISC_DO",
                         "IP_PMTUDISC_PROBE")
# An option of the other transport is ENOPROTOOPT, as Linux answers it.
OTHER_TRANSPORT_PREFIX: Final = {"udp": "TCP_", "tcp": "UDP_"}


class IpService(Protocol):
    """What a transport layer needs from the IP layer below it (`stack.host.Host`)."""

    address: IPv4Address
    link_mtu: int
    interface_index: int

    def check_route(self, destination: IPv4Address) -> None:
        """Raise SocketError("ENETUNREACH") when no route leads to ``destination``."""

    def is_broadcast(self, destination: IPv4Address) -> bool: ...

    def path_mtu(self, destination: IPv4Address, now: Nanoseconds) -> int: ...

    def send_datagram(
        self, now: Nanoseconds, destination: IPv4Address, payload: bytes, *,
        ttl: int, tos: int, dont_fragment: bool, fragment_size: int, protocol: int = ...,
    ) -> None: ...


@dataclass(frozen=True)
class ExtendedError:
    """One entry of the error queue (IP_RECVERR), Linux's sock_extended_err."""

    errno: str
    origin: str  # "ICMP" or "LOCAL"
    type: int
    code: int
    info: int
    offender: Endpoint | None
    destination: Endpoint  # returned as the message's address
    payload: bytes  # the start of the offending datagram's payload


@dataclass(frozen=True)
class PacketInfo:
    """IP_PKTINFO (Linux struct in_pktinfo): where a datagram came in."""

    ifindex: int
    spec_dst: IPv4Address  # the local address a reply comes from
    addr: IPv4Address  # the header's destination: ours, or a broadcast address


@dataclass(frozen=True)
class Message:
    """What recvmsg returns; the ancillary fields only where the socket asked for them."""

    data: bytes
    length: int  # the datagram's full length (more than len(data) when truncated)
    flags: list[str]
    address: Endpoint | None
    error: ExtendedError | None = None
    options: bytes | None = None  # IP_RECVOPTS
    tos: int | None = None  # IP_RECVTOS
    pktinfo: PacketInfo | None = None  # IP_PKTINFO


# --- ports --------------------------------------------------------------------------------


def addresses_overlap(one: IPv4Address, other: IPv4Address) -> bool:
    """Two local addresses of one port conflict when equal or either is the wildcard."""
    return ANY in (one, other) or one == other


def ephemeral_port(settings: Settings, rng: random.Random, used: Container[int]) -> int:
    """Linux: a random start in ip_local_port_range, then the next free port; 0 when
    every port of the range is taken."""
    low, high = settings.ephemeral_ports
    span = high - low + 1
    start = rng.randrange(span)
    for step in range(span):
        port = low + (start + step) % span
        if port not in used:
            return port
    return 0  # none free


# --- options ------------------------------------------------------------------------------


def default_options(settings: Settings, *, receive_buffer: int, send_buffer: int
                    ) -> dict[str, int | str]:
    """The options every socket starts with; the transport adds its own."""
    return {
        "SO_REUSEADDR": 0,
        "SO_KEEPALIVE": 0,  # RFC 1122 4.2.3.6: MUST default to off
        "SO_RCVBUF": receive_buffer,
        "SO_SNDBUF": send_buffer,
        "IP_TTL": settings.default_ttl,
        "IP_TOS": 0,
        "IP_RECVERR": 0,
        "IP_MTU_DISCOVER": "IP_PMTUDISC_WANT" if settings.path_mtu_discovery
        else "IP_PMTUDISC_DONT",
    }


def checked_option(
    options: dict[str, int | str], name: str, value: object, settings: Settings, *,
    transport: str,
) -> int | str:
    """The value to store for ``name``, or the error Linux gives: an unknown option, a
    path MTU discovery mode that does not exist, a non-integer, an IP_TTL out of range.
    SO_RCVBUF is doubled (socket(7)) and IP_TTL -1 means the default."""
    known_option(options, name, transport)
    if name == "IP_MTU_DISCOVER":
        if not isinstance(value, str) or value not in PMTUDISC_MODES:
            raise SocketError("EINVAL", f"unknown mode {value!r}")
        return value
    if not isinstance(value, int):
        raise SocketError("EINVAL", f"{name} takes an integer")
    if name == "SO_RCVBUF":
        # socket(7): the kernel doubles the value, within [SOCK_MIN_RCVBUF, rmem_max * 2].
        return max(MIN_RECEIVE_BUFFER, min(value, settings.receive_buffer_max) * 2)
    if name == "IP_TTL":
        if not (value == -1 or 1 <= value <= 255):
            raise SocketError("EINVAL", "IP_TTL out of range")
        return settings.default_ttl if value == -1 else value
    return value


def known_option(options: dict[str, int | str], name: str, transport: str) -> int | str:
    """The value of an option the socket has, or the error Linux gives for one it has
    not: ENOPROTOOPT for the other transport's, else unsupported here."""
    if name not in options:
        if name.startswith(OTHER_TRANSPORT_PREFIX[transport]):
            raise SocketError("ENOPROTOOPT", f"{name} on a {transport.upper()} socket")
        raise Unsupported(f"socket option {name}")
    return options[name]


def connected_mtu(ip: IpService, remote: Endpoint | None, now: Nanoseconds) -> int:
    """IP_MTU: the path MTU towards the connected peer (ENOTCONN without one)."""
    if remote is None:
        raise SocketError("ENOTCONN", "IP_MTU needs a connected socket")
    return ip.path_mtu(remote[0], now)
