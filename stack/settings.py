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
AcceptOverflowPolicy = Literal["drop", "reset"]
CHOICES: dict[str, tuple[str, ...]] = {
    "zero_next_hop_mtu": ("plateau", "minimum"),
    "fragment_overlap": ("discard_datagram", "last_wins"),
    "tcp_accept_overflow": ("drop", "reset"),
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

    # --- TCP ----------------------------------------------------------------------------
    # TIME-WAIT lasts 2 x MSL (RFC 9293 3.6); Linux's TCP_TIMEWAIT_LEN is a fixed 60 s.
    tcp_msl: Nanoseconds = 30 * SECOND
    tcp_rto_initial: Nanoseconds = 1 * SECOND  # RFC 6298 2.1; Linux TCP_TIMEOUT_INIT
    # Linux TCP_RTO_MIN; RFC 6298 2.4 recommends 1 s, and allows less.
    tcp_rto_min: Nanoseconds = 200 * MILLISECOND
    tcp_rto_max: Nanoseconds = 120 * SECOND  # Linux TCP_RTO_MAX; RFC 6298 2.5: >= 60 s
    # net.ipv4.tcp_syn_retries. RFC 1122 4.2.3.5: R2 for a SYN MUST be at least 3
    # minutes. Linux's 6 gives up after 127 s (1 + 2 + ... + 64); 7 retransmissions
    # keep trying for 255 s.
    tcp_syn_retries: int = 7
    tcp_synack_retries: int = 5  # net.ipv4.tcp_synack_retries
    tcp_retries1: int = 3  # net.ipv4.tcp_retries1: R1 of RFC 1122 4.2.3.5
    tcp_retries2: int = 15  # net.ipv4.tcp_retries2: R2
    # RFC 1122 4.2.3.2: an ACK is delayed less than 0.5 s; Linux's bounds are 40-200 ms.
    tcp_delayed_ack_min: Nanoseconds = 40 * MILLISECOND  # TCP_DELACK_MIN
    tcp_delayed_ack_max: Nanoseconds = 200 * MILLISECOND  # TCP_DELACK_MAX
    # RFC 1122 4.2.3.6: keep-alives off by default, and an interval of >= 2 hours.
    tcp_keepalive_time: Nanoseconds = 7200 * SECOND  # net.ipv4.tcp_keepalive_time
    tcp_keepalive_interval: Nanoseconds = 75 * SECOND  # net.ipv4.tcp_keepalive_intvl
    tcp_keepalive_probes: int = 9  # net.ipv4.tcp_keepalive_probes
    tcp_initial_window_segments: int = 10  # RFC 6928; Linux TCP_INIT_CWND
    # RFC 1122 4.2.2.6: without an MSS option the peer's MSS is 536.
    tcp_default_mss: int = 536
    tcp_max_syn_backlog: int = 1024  # net.ipv4.tcp_max_syn_backlog
    somaxconn: int = 4096  # net.core.somaxconn: listen()'s backlog is capped at this
    # A final ACK that finds the accept queue full: Linux drops it (and retransmits the
    # SYN-ACK later) unless net.ipv4.tcp_abort_on_overflow, which resets ("reset").
    tcp_accept_overflow: AcceptOverflowPolicy = "drop"
    # RFC 1337: ignore RST in TIME-WAIT. Linux net.ipv4.tcp_rfc1337 = 0 lets it close.
    tcp_rfc1337: bool = False
    tcp_receive_buffer: int = 131072  # net.ipv4.tcp_rmem default
    # How long an orphaned connection (closed by the user) may stay in FIN-WAIT-2.
    tcp_fin_timeout: Nanoseconds = 60 * SECOND  # net.ipv4.tcp_fin_timeout
    # RFC 5961 3.2 / 4.2 (folded into RFC 9293 3.10.7.4): a RST not exactly at RCV.NXT,
    # or a SYN, in a synchronized state draws a challenge ACK. Linux always does this;
    # False resets on any in-window RST, as RFC 793 did.
    tcp_challenge_ack: bool = True
    # RFC 1122 4.2.3.9 / RFC 9293 3.9.2.2 (SHLD-26): a hard ICMP error (protocol or port
    # unreachable) SHOULD abort even an established connection. Linux aborts only while
    # the connection opens (False here).
    tcp_hard_error_aborts: bool = True
    # RFC 1122 4.2.3.9: a soft ICMP error (unreachable 0, 1, 5, time exceeded, parameter
    # problem) MUST NOT abort a connection, one being opened included. Linux ends a
    # connection attempt on any ICMP error (True here), as RFC 5461 4.1 describes.
    tcp_soft_error_ends_connect: bool = False
    # net.ipv4.tcp_ecn: 0 never, 1 also ask for ECN on outgoing SYNs, 2 agree to ECN when
    # a peer's SYN asks for it (RFC 3168 6.1.1; Linux's default).
    tcp_ecn: int = 2
    tcp_send_buffer: int = 16384  # net.ipv4.tcp_wmem default

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
