"""The retransmission timeout of RFC 6298, in integer nanoseconds.

The caller takes RTT samples and applies Karn's algorithm (RFC 6298 3: never sample a
segment that was retransmitted); this module keeps SRTT, RTTVAR and the timeout with its
exponential backoff.
"""

from __future__ import annotations

from typing import Final

from stack.settings import Settings
from stack.timing import Nanoseconds

# RFC 6298 2.2: K = 4 (alpha = 1/8 and beta = 1/4 are written out below).
K: Final = 4
# RFC 6298 2.2 "G": the clock granularity. The virtual clock counts nanoseconds.
CLOCK_GRANULARITY: Final[Nanoseconds] = 1


class RetransmissionTimeout:
    def __init__(self, settings: Settings) -> None:
        self._minimum = settings.tcp_rto_min
        self._maximum = settings.tcp_rto_max
        self.srtt: Nanoseconds | None = None
        self.rttvar: Nanoseconds | None = None
        # RFC 6298 2.1: before any RTT sample, RTO is the initial value (1 s).
        self.rto: Nanoseconds = self._bounded(settings.tcp_rto_initial)

    def on_rtt_sample(self, rtt: Nanoseconds) -> None:
        """Take one RTT measurement; the new RTO replaces any backed-off one."""
        rtt = max(rtt, 0)
        if self.srtt is None or self.rttvar is None:
            # RFC 6298 2.2: the first measurement R.
            self.srtt = rtt
            self.rttvar = rtt // 2
        else:
            # RFC 6298 2.3: RTTVAR first, from the SRTT before this sample.
            # RTTVAR = (1 - beta) * RTTVAR + beta * |SRTT - R'|, beta = 1/4
            self.rttvar = (3 * self.rttvar + abs(self.srtt - rtt)) // 4
            # SRTT = (1 - alpha) * SRTT + alpha * R', alpha = 1/8
            self.srtt = (7 * self.srtt + rtt) // 8
        # RFC 6298 2.2/2.3: RTO = SRTT + max(G, K * RTTVAR), then 2.4 and 2.5 bound it.
        self.rto = self._bounded(self.srtt + max(CLOCK_GRANULARITY, K * self.rttvar))

    def back_off(self) -> None:
        """RFC 6298 5.5: the timer expired, so the timeout doubles, up to the maximum."""
        self.rto = self._bounded(self.rto * 2)

    def _bounded(self, rto: Nanoseconds) -> Nanoseconds:
        # RFC 6298 2.4: a minimum (Linux's 200 ms, where the RFC recommends 1 s);
        # 2.5: a maximum of at least 60 s (Linux's 120 s).
        return min(max(rto, self._minimum), self._maximum)
