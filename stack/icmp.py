"""ICMP for a host (RFC 792, RFC 1122 3.2.2): when an error may be sent, how it quotes
the offending datagram, the rate limit, and how a received error reads for transport."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Final

from stack.ipv4 import bad_source_reason, is_broadcast
from stack.settings import Settings
from stack.timing import Nanoseconds
from stack.wire.errors import WireError
from stack.wire.icmp import ERROR_TYPES, IcmpMessage, IcmpType, UnreachableCode
from stack.wire.ipv4 import (
    Ipv4Header,
    Ipv4Option,
    Ipv4OptionKind,
    Ipv4Packet,
    parse_ipv4_options,
)

# RFC 1122 3.2.2 / RFC 792: an error quotes the IP header and at least 8 data octets.
QUOTED_TRANSPORT_BYTES: Final = 8

# How an ICMP Destination Unreachable code reads as a socket error, and whether it is
# "hard" (RFC 1122 4.2.3.9: protocol and port unreachable abort; net and host
# unreachable are soft). The errno names follow Linux's icmp_err_convert.
UNREACHABLE_ERRORS: Final[dict[int, tuple[str, bool]]] = {
    UnreachableCode.NET: ("ENETUNREACH", False),
    UnreachableCode.HOST: ("EHOSTUNREACH", False),
    UnreachableCode.PROTOCOL: ("ENOPROTOOPT", True),
    UnreachableCode.PORT: ("ECONNREFUSED", True),
    UnreachableCode.FRAGMENTATION_NEEDED: ("EMSGSIZE", False),
    UnreachableCode.SOURCE_ROUTE_FAILED: ("EOPNOTSUPP", False),
    UnreachableCode.NET_UNKNOWN: ("ENETUNREACH", True),
    UnreachableCode.HOST_UNKNOWN: ("EHOSTDOWN", True),
    UnreachableCode.SOURCE_HOST_ISOLATED: ("ENONET", True),
    UnreachableCode.NET_PROHIBITED: ("ENETUNREACH", True),
    UnreachableCode.HOST_PROHIBITED: ("EHOSTUNREACH", True),
    UnreachableCode.NET_UNREACHABLE_FOR_TOS: ("ENETUNREACH", False),
    UnreachableCode.HOST_UNREACHABLE_FOR_TOS: ("EHOSTUNREACH", False),
    13: ("EHOSTUNREACH", True),  # communication administratively prohibited (RFC 1812)
    14: ("EHOSTUNREACH", True),  # host precedence violation
    15: ("EHOSTUNREACH", True),  # precedence cutoff in effect
}


def error_suppression_reason(
    packet: Ipv4Packet, *, link_broadcast: bool, network: IPv4Network, own: IPv4Address
) -> str | None:
    """Why RFC 1122 3.2.2 forbids an ICMP error about ``packet``, or None if it may be sent.

    An ICMP error message MUST NOT be sent as the result of receiving: an ICMP error
    message; a datagram destined to an IP broadcast or multicast address; a datagram sent
    as a link-layer broadcast; a non-initial fragment; a datagram whose source address
    does not define a single host.
    """
    header = packet.header
    if header.protocol == 1 and packet.payload[:1] and packet.payload[0] in ERROR_TYPES:
        return "icmp.no_error_about_error"
    if is_broadcast(header.dst, network) or header.dst.is_multicast:
        return "icmp.no_error_about_broadcast"
    if link_broadcast:
        return "icmp.no_error_about_link_broadcast"
    if header.fragment_offset != 0:
        return "icmp.no_error_about_fragment"
    if bad_source_reason(header.src, own, network) is not None:
        return "icmp.no_error_to_non_host"
    return None


def quote(packet: Ipv4Packet, settings: Settings) -> bytes:
    """The offending datagram as an error quotes it: the IP header and as much data as
    fits ``icmp_error_max_length`` (never less than 8 octets)."""
    raw = packet.emit()
    room = settings.icmp_error_max_length - 20 - 8
    return raw[: max(room, packet.header.header_length + QUOTED_TRANSPORT_BYTES)]


def echo_reply_options(request_options: bytes, own: IPv4Address) -> bytes:
    """RFC 1122 3.2.2.6: a Record Route option of an Echo Request SHOULD come back in the
    reply, updated with this host, so that it records the whole round trip. Like Linux,
    this host is recorded twice: as the request's last hop and the reply's first. Other
    options are not returned."""
    returned = b""
    for option in parse_ipv4_options(request_options):
        if option.kind != Ipv4OptionKind.RECORD_ROUTE or not option.data:
            continue
        data = bytearray(option.data)  # the pointer, then the route data
        option_length = 2 + len(data)
        for _hop in ("arrival", "departure"):
            pointer = data[0]
            if pointer < 4 or pointer + 3 > option_length:
                break  # full (or a pointer we cannot trust): returned as it came
            data[pointer - 3 : pointer + 1] = own.packed
            data[0] = pointer + 4
        returned += Ipv4Option(option.kind, bytes(data)).encode()
    return returned + bytes(-len(returned) % 4)


class IcmpRateLimiter:
    """RFC 1122 3.2.2: a host SHOULD limit the rate of the errors it sends. A token
    bucket per destination: ``icmp_rate_burst`` at once, then one per interval.

    The credit is kept in integer nanoseconds, as Linux keeps it in jiffies
    (inet_peer_xrlim_allow): a float count of tokens drifts when refilled in small steps,
    and an error due exactly one interval later would be held back."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._buckets: dict[IPv4Address, tuple[Nanoseconds, Nanoseconds]] = {}

    def allow(self, message_type: int, destination: IPv4Address, now: Nanoseconds) -> bool:
        if message_type not in self.settings.icmp_rate_limited_types:
            return True
        interval = self.settings.icmp_rate_interval
        full = interval * self.settings.icmp_rate_burst
        credit, last = self._buckets.get(destination, (full, now))
        credit = min(full, credit + (now - last))
        if credit < interval:
            self._buckets[destination] = (credit, now)
            return False
        self._buckets[destination] = (credit - interval, now)
        return True


@dataclass(frozen=True)
class ReceivedError:
    """An ICMP error as the transport layer needs it."""

    type: int
    code: int
    info: int  # the Next-Hop MTU of Fragmentation Needed, the pointer of a Parameter Problem
    offender: IPv4Address  # who sent the ICMP message
    quoted_header: Ipv4Header  # the header of the datagram we sent
    quoted_data: bytes  # its first bytes of transport data (at least 8)


def read_error(message: IcmpMessage, offender: IPv4Address, own: IPv4Address) -> ReceivedError:
    """Unpack the quote of an error message. Raises WireError when the quote is unusable:
    too short, not an IPv4 header, or about a datagram that we did not send."""
    try:
        # The quoted header's checksum is not checked: routers may have changed its TTL.
        inner = Ipv4Header.parse(message.payload, verify_checksum=False)
    except WireError as error:
        raise WireError("icmp.bad_quote", str(error)) from None
    data = message.payload[inner.header_length :]
    if len(data) < QUOTED_TRANSPORT_BYTES:
        raise WireError("icmp.short_quote", f"{len(data)} bytes of transport header quoted")
    if inner.src != own:
        raise WireError("icmp.quote_not_ours", f"quoted source {inner.src}")
    if message.type == IcmpType.DESTINATION_UNREACHABLE and message.code == 4:
        info = message.next_hop_mtu
    elif message.type == IcmpType.PARAMETER_PROBLEM:
        info = message.pointer
    else:
        info = 0
    return ReceivedError(message.type, message.code, info, offender, inner, data)


def socket_error(error: ReceivedError, *, path_mtu_discovery: bool) -> tuple[str, bool] | None:
    """The errno name an error reports to a UDP socket and whether it is hard, or None
    when it reports nothing (Linux __udp4_lib_err)."""
    if error.type == IcmpType.DESTINATION_UNREACHABLE:
        if error.code == UnreachableCode.FRAGMENTATION_NEEDED:
            return ("EMSGSIZE", True) if path_mtu_discovery else None
        return UNREACHABLE_ERRORS.get(error.code, ("EHOSTUNREACH", False))
    if error.type == IcmpType.PARAMETER_PROBLEM:
        return ("EPROTO", True)
    if error.type == IcmpType.TIME_EXCEEDED:
        return ("EHOSTUNREACH", False)
    return None  # Source Quench (RFC 6633: ignored), Redirect (a routing matter)
