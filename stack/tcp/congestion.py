"""Congestion control: RFC 5681 with the NewReno fast recovery of RFC 6582 and the
initial window of RFC 6928. Windows are in bytes; sequence numbers are absolute 32-bit
values compared modulo 2**32.

The caller owns the segments: it reports each new cumulative ACK, each duplicate ACK and
each retransmission timeout, retransmits when told to, and sends no more than
`send_allowance` beyond what is in flight.
"""

from __future__ import annotations

from typing import Final

from stack.settings import Settings

# RFC 5681 3.1: the initial ssthresh "SHOULD be set arbitrarily high"; Linux's
# TCP_INFINITE_SSTHRESH.
INFINITE_SSTHRESH: Final = 0x7FFFFFFF
DUPLICATE_ACK_THRESHOLD: Final = 3  # RFC 5681 3.2
# RFC 3465 2.2 (appropriate byte counting, allowed by RFC 5681 3.1): slow start grows by
# at most L = 2 * SMSS per ACK, so that delayed ACKs do not halve its pace.
ABC_LIMIT_SEGMENTS: Final = 2
# RFC 6928's 14600 bytes are 10 segments of 1460; the setting scales both together.
IW_REFERENCE_SEGMENT: Final = 1460


def _seq_geq(a: int, b: int) -> bool:
    """a >= b in 32-bit sequence space (RFC 9293 3.4)."""
    return ((a - b) & 0xFFFFFFFF) < 0x80000000


def initial_window(mss: int, segments: int) -> int:
    """RFC 6928 2: IW = min(10*MSS, max(2*MSS, 14600)), with 10 from the setting.

    Linux (TCP_INIT_CWND) counts the window in segments and starts at 10 * MSS whatever
    the MSS, so it differs above an MSS of 1460 (jumbo frames), where RFC 6928 caps the
    window at 14600 bytes, and at least 2 segments.
    """
    return min(segments * mss, max(2 * mss, segments * IW_REFERENCE_SEGMENT))


class CongestionControl:
    def __init__(self, mss: int, settings: Settings) -> None:
        self._segments = settings.tcp_initial_window_segments
        self.mss = mss  # SMSS
        self.cwnd = initial_window(mss, self._segments)  # RFC 5681 3.1, RFC 6928
        self.ssthresh = INFINITE_SSTHRESH
        self.in_recovery = False
        self._duplicate_acks = 0
        self._recover: int | None = None  # RFC 6582 "recover"; None before any loss
        self._bytes_acked = 0  # RFC 5681 3.1 byte counting in congestion avoidance
        self._changed = False  # any event since the initial window was set
        self._after_timeout = False  # RFC 6582 3.2 step 6: "recover" set by a timeout

    def set_mss(self, mss: int) -> None:
        """A new SMSS (negotiated in the handshake, or lowered by path MTU discovery).
        Before any event the initial window is recomputed for it; later, cwnd stays in
        bytes but never below one segment."""
        self.mss = mss
        if not self._changed:
            self.cwnd = initial_window(mss, self._segments)
        else:
            self.cwnd = max(self.cwnd, mss)

    def on_new_ack(self, acked: int, snd_una: int) -> bool:
        """An ACK that acknowledged ``acked`` new bytes, moving SND.UNA to ``snd_una``.
        True for a partial ACK in fast recovery: retransmit the first unacknowledged
        segment now (RFC 6582 3.2 step 4)."""
        self._changed = True
        self._duplicate_acks = 0
        if self.in_recovery:
            assert self._recover is not None
            if _seq_geq(snd_una, self._recover):
                # RFC 6582 3.2 step 3, full acknowledgment: deflate to ssthresh, exit.
                self.cwnd = self.ssthresh
                self.in_recovery = False
                self._bytes_acked = 0
                return False
            # RFC 6582 3.2 step 4, partial acknowledgment: deflate by the new data, add
            # back one SMSS if it acknowledged at least one SMSS, retransmit the next hole.
            self.cwnd -= acked
            if acked >= self.mss:
                self.cwnd += self.mss
            self.cwnd = max(self.cwnd, self.mss)
            return True
        if self._after_timeout and self._recover is not None:
            self._after_timeout = not _seq_geq(snd_una, self._recover)
        if self.cwnd < self.ssthresh:
            # RFC 5681 3.1 slow start, with byte counting limited to L = 2 * SMSS.
            self.cwnd += min(acked, ABC_LIMIT_SEGMENTS * self.mss)
        else:
            # RFC 5681 3.1 congestion avoidance: one SMSS per cwnd of acknowledged bytes.
            self._bytes_acked += acked
            if self._bytes_acked >= self.cwnd:
                self._bytes_acked -= self.cwnd
                self.cwnd += self.mss
        return False

    def on_duplicate_ack(self, flight: int, snd_nxt: int) -> bool:
        """A duplicate ACK (RFC 5681 2) with ``flight`` bytes outstanding. True on the
        third: fast retransmit the first unacknowledged segment now."""
        self._changed = True
        self._duplicate_acks += 1
        if self.in_recovery:
            # RFC 5681 3.2 step 4: each further duplicate inflates cwnd by one SMSS.
            self.cwnd += self.mss
            return False
        if self._duplicate_acks != DUPLICATE_ACK_THRESHOLD:
            return False
        if self._after_timeout:
            # RFC 6582 3.2 step 1: duplicates of data sent before a timeout do not start
            # a fast retransmit until the ACK covers what was sent before it.
            return False
        # RFC 5681 3.2 step 2 (eq. 4) and step 3; RFC 6582 3.2 step 2 records "recover".
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.ssthresh + DUPLICATE_ACK_THRESHOLD * self.mss
        self._recover = snd_nxt
        self.in_recovery = True
        return True

    def on_timeout(self, flight: int, snd_nxt: int | None = None) -> None:
        """The retransmission timer expired with ``flight`` bytes outstanding."""
        self._changed = True
        # RFC 5681 3.1: ssthresh per eq. 4 and cwnd = the loss window, one SMSS.
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.mss
        self._bytes_acked = 0
        self._duplicate_acks = 0
        # RFC 6582 3.2 step 6: leave fast recovery; with ``snd_nxt`` also record it in
        # "recover", so that duplicates of what was sent before do not start another.
        self.in_recovery = False
        if snd_nxt is not None:
            self._recover = snd_nxt
        self._after_timeout = snd_nxt is not None

    def send_allowance(self, flight: int) -> int:
        """How many bytes cwnd allows to send beyond the ``flight`` outstanding."""
        return max(0, self.cwnd - flight)
