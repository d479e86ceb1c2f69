"""Every choice the RFCs leave open, named, with the Linux choice as the default.

The defaults follow Linux 6.x (the sysctl or constant each mirrors is named), so that
comparing the reference stack with Linux shows real differences only. Where the
reference stack follows an RFC recommendation that Linux does not, the comment says so.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from stack.timing import MILLISECOND, SECOND, Nanoseconds

ZeroNextHopPolicy = Literal["plateau", "minimum"]
OverlapPolicy = Literal["discard_datagram", "last_wins"]
CHOICES: dict[str, tuple[str, ...]] = {
    "zero_next_hop_mtu": ("plateau", "minimum"),
    "fragment_overlap": ("discard_datagram", "last_wins"),
}


@dataclass(frozen=True)
class Settings:
    # --- IPv4 ---------------------------------------------------------------------------
    default_ttl: int = 64  # net.ipv4.ip_default_ttl; RFC 1122 3.2.1.7: configurable
    # net.ipv4.ip_no_pmtu_disc = 0: sockets start in IP_PMTUDISC_WANT (DF set).
    path_mtu_discovery: bool = True
    min_pmtu: int = 552  # net.ipv4.route.min_pmtu; RFC 1191 only demands >= 68
    pmtu_expires: Nanoseconds = 600 * SECOND  # net.ipv4.route.mtu_expires; RFC 1191 6.3
    # RFC 1191 5: with a Next-Hop MTU of zero, take the next plateau below the quoted
    # datagram's length. Linux instead falls to min_pmtu ("minimum").
    zero_next_hop_mtu: ZeroNextHopPolicy = "plateau"
    reassembly_timeout: Nanoseconds = 30 * SECOND  # net.ipv4.ipfrag_time
    reassembly_memory: int = 4 * 1024 * 1024  # net.ipv4.ipfrag_high_thresh
    # Linux discards the whole datagram when fragments overlap (as RFC 5722 does for IPv6);
    # "last_wins" is RFC 791's reassembly algorithm, where later data overwrites.
    fragment_overlap: OverlapPolicy = "discard_datagram"

    # --- ICMP ---------------------------------------------------------------------------
    # net.ipv4.icmp_ratelimit and icmp_ratemask: Destination Unreachable, Source Quench,
    # Time Exceeded and Parameter Problem are limited per destination to one per interval
    # after a burst (XRLIM_BURST_FACTOR).
    icmp_rate_interval: Nanoseconds = 1000 * MILLISECOND
    icmp_rate_burst: int = 6
    icmp_rate_limited_types: frozenset[int] = frozenset({3, 4, 11, 12})
    icmp_echo_ignore_broadcasts: bool = True  # net.ipv4.icmp_echo_ignore_broadcasts
    # Linux quotes as much of the offending datagram as fits a 576-byte error.
    icmp_error_max_length: int = 576

    # --- ARP ----------------------------------------------------------------------------
    arp_retries: int = 3  # ucast_solicit / mcast_solicit
    arp_retry_interval: Nanoseconds = 1 * SECOND  # retrans_time_ms
    arp_queue_limit: int = 101  # unres_qlen
    arp_entry_lifetime: Nanoseconds = 60 * SECOND  # gc_stale_time

    # --- UDP and sockets ----------------------------------------------------------------
    ephemeral_ports: tuple[int, int] = (32768, 60999)  # net.ipv4.ip_local_port_range
    receive_buffer: int = 212992  # net.core.rmem_default
    receive_buffer_max: int = 212992  # net.core.rmem_max
    send_buffer: int = 212992  # net.core.wmem_default
    # What one queued datagram costs against SO_RCVBUF besides its payload (Linux charges
    # the buffer's truesize).
    datagram_overhead: int = 768

    @classmethod
    def with_overrides(cls, overrides: dict[str, str]) -> Settings:
        """Settings from ``name=value`` text (the CLI's), each checked against its type."""
        defaults = cls()
        known = {field.name for field in fields(cls)}
        values: dict[str, Any] = {}
        for name, text in overrides.items():
            if name not in known:
                raise ValueError(f"unknown setting {name!r} (known: {', '.join(sorted(known))})")
            values[name] = _parse_like(name, text, getattr(defaults, name))
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            result[field.name] = sorted(value) if isinstance(value, frozenset) else value
        return result


def _parse_like(name: str, text: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if text.lower() not in ("0", "1", "true", "false"):
                raise ValueError(text)
            return text.lower() in ("1", "true")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, tuple):
            low, high = (int(part) for part in text.replace(",", " ").split())
            return (low, high)
        if isinstance(default, frozenset):
            return frozenset(int(part) for part in text.replace(",", " ").split())
    except ValueError:
        raise ValueError(f"setting {name}: cannot read {text!r} like {default!r}") from None
    if text not in CHOICES.get(name, ()):
        raise ValueError(f"setting {name}: {text!r} is not one of {CHOICES.get(name)}")
    return text
