"""The path MTU cache (RFC 1191): one estimate per destination, lowered by Datagram Too
Big messages, never raised by one, never below the floor, aged back to the link MTU."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Final

from stack.settings import Settings
from stack.timing import Nanoseconds, earliest

# RFC 1191 section 7, table 7-1: the plateaus, largest first.
PLATEAUS: Final = (65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68)
# RFC 791 / RFC 1191 3: every host must accept 68-octet datagrams unfragmented.
ABSOLUTE_MINIMUM: Final = 68


def plateau_below(length: int) -> int:
    """RFC 1191 5: the largest plateau smaller than the datagram that was too big."""
    for plateau in PLATEAUS:
        if plateau < length:
            return plateau
    return ABSOLUTE_MINIMUM


@dataclass
class _Estimate:
    mtu: int
    expires: Nanoseconds


class PathMtuCache:
    def __init__(self, link_mtu: int, settings: Settings) -> None:
        self.link_mtu = link_mtu
        self.settings = settings
        self._estimates: dict[IPv4Address, _Estimate] = {}

    def get(self, destination: IPv4Address, now: Nanoseconds) -> int:
        estimate = self._estimates.get(destination)
        if estimate is None or estimate.expires <= now:
            return self.link_mtu
        return estimate.mtu

    def datagram_too_big(
        self, destination: IPv4Address, next_hop_mtu: int, quoted_length: int, now: Nanoseconds
    ) -> int:
        """Apply a Datagram Too Big message; returns the estimate it leaves."""
        current = self.get(destination, now)
        proposed = next_hop_mtu
        if proposed == 0:
            # RFC 1191 5: a router that predates the Next-Hop MTU field.
            if self.settings.zero_next_hop_mtu == "plateau":
                proposed = plateau_below(quoted_length)
            else:
                proposed = self.settings.min_pmtu
        # RFC 1191 3: MUST NOT increase the estimate in response to a Datagram Too Big.
        if proposed >= current:
            return current
        # RFC 1191 3: MUST NOT reduce below 68; the floor setting may say more (Linux 552).
        floor = max(ABSOLUTE_MINIMUM, self.settings.min_pmtu)
        lowered = max(proposed, min(floor, current))
        # RFC 1191 6.3: estimates are aged so that an increase is eventually noticed.
        self._estimates[destination] = _Estimate(lowered, now + self.settings.pmtu_expires)
        return lowered

    def poll(self, now: Nanoseconds) -> None:
        for destination, estimate in list(self._estimates.items()):
            if estimate.expires <= now:
                del self._estimates[destination]

    def next_timer(self) -> Nanoseconds | None:
        return earliest(*(estimate.expires for estimate in self._estimates.values()))

    def entries(self, now: Nanoseconds) -> dict[str, int]:
        return {
            str(destination): estimate.mtu
            for destination, estimate in self._estimates.items()
            if estimate.expires > now
        }
