"""Congestion control per RFC 5681, RFC 6582 (NewReno) and RFC 6928: cwnd and ssthresh
after each event, in bytes, with an SMSS of 1460 unless a test says otherwise."""

from __future__ import annotations

import pytest

from stack.settings import Settings
from stack.tcp.congestion import INFINITE_SSTHRESH, CongestionControl, initial_window

MSS = 1460
ISS = 1_000


def control(mss: int = MSS, **settings: int) -> CongestionControl:
    return CongestionControl(mss, Settings(**settings))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mss", "window"),
    [(1460, 14600), (536, 5360), (1000, 10000), (4000, 14600), (8960, 17920)],
)
def test_initial_window_follows_rfc_6928(mss: int, window: int) -> None:
    # RFC 6928 2: min(10*MSS, max(2*MSS, 14600)).
    assert initial_window(mss, 10) == window
    assert control(mss).cwnd == window


def test_initial_window_scales_with_the_setting() -> None:
    assert control(tcp_initial_window_segments=4).cwnd == 4 * MSS
    assert control(tcp_initial_window_segments=1).cwnd == MSS  # RFC 5681 allows 1 segment


def test_start_state() -> None:
    cc = control()
    assert (cc.ssthresh, cc.in_recovery) == (INFINITE_SSTHRESH, False)
    assert cc.send_allowance(0) == 14600
    assert cc.send_allowance(10_000) == 4600
    assert cc.send_allowance(20_000) == 0


def test_set_mss_before_any_event_recomputes_the_initial_window() -> None:
    cc = control(536)
    cc.set_mss(1460)
    assert cc.cwnd == 14600


def test_set_mss_after_an_event_keeps_cwnd_but_at_least_one_segment() -> None:
    cc = control()
    cc.on_timeout(flight=14600)
    assert cc.cwnd == 1460
    cc.set_mss(1200)
    assert cc.cwnd == 1460
    cc.set_mss(2000)
    assert cc.cwnd == 2000


def test_slow_start_grows_by_the_bytes_acknowledged_up_to_two_segments_per_ack() -> None:
    # RFC 5681 3.1 with RFC 3465 byte counting, L = 2 * SMSS.
    cc = control()
    assert cc.on_new_ack(1460, ISS + 1460) is False
    assert cc.cwnd == 16060
    cc.on_new_ack(2920, ISS + 4380)
    assert cc.cwnd == 18980
    cc.on_new_ack(5840, ISS + 10220)
    assert cc.cwnd == 21900
    cc.on_new_ack(100, ISS + 10320)
    assert cc.cwnd == 22000


def test_congestion_avoidance_adds_one_segment_per_window_acknowledged() -> None:
    # RFC 5681 3.1: cwnd >= ssthresh; one SMSS per cwnd bytes acknowledged.
    cc = control()
    cc.on_timeout(flight=20_000)
    assert (cc.ssthresh, cc.cwnd) == (10_000, 1460)
    # Slow start up to ssthresh: 1460 -> 4380 -> 7300 -> 10220 (>= 10000).
    for acked in (2920, 2920, 2920):
        cc.on_new_ack(acked, ISS)
    assert cc.cwnd == 10220
    cc.on_new_ack(5000, ISS)
    assert cc.cwnd == 10220
    cc.on_new_ack(5000, ISS)
    assert cc.cwnd == 10220
    cc.on_new_ack(220, ISS)  # 10220 bytes counted: one segment more, the count restarts
    assert cc.cwnd == 11680
    cc.on_new_ack(11679, ISS)
    assert cc.cwnd == 11680
    cc.on_new_ack(1, ISS)
    assert cc.cwnd == 13140


def test_third_duplicate_ack_starts_fast_retransmit_and_recovery() -> None:
    cc = control()
    flight, snd_nxt = 20_000, ISS + 20_000
    assert cc.on_duplicate_ack(flight, snd_nxt) is False
    assert cc.on_duplicate_ack(flight, snd_nxt) is False
    assert (cc.cwnd, cc.in_recovery) == (14600, False)
    # RFC 5681 3.2 steps 2-3: ssthresh = max(FlightSize / 2, 2 * SMSS), cwnd = ssthresh + 3.
    assert cc.on_duplicate_ack(flight, snd_nxt) is True
    assert (cc.ssthresh, cc.cwnd, cc.in_recovery) == (10_000, 14380, True)
    # Step 4: each further duplicate inflates cwnd by one SMSS.
    assert cc.on_duplicate_ack(flight, snd_nxt) is False
    assert cc.on_duplicate_ack(flight, snd_nxt) is False
    assert cc.cwnd == 17300


def test_ssthresh_is_at_least_two_segments() -> None:
    cc = control()
    for _ in range(3):
        fast = cc.on_duplicate_ack(2000, ISS + 2000)
    assert fast is True
    assert (cc.ssthresh, cc.cwnd) == (2920, 2920 + 3 * 1460)


def test_partial_ack_deflates_and_asks_for_a_retransmission() -> None:
    cc = control()
    for _ in range(4):
        cc.on_duplicate_ack(20_000, ISS + 20_000)
    assert cc.cwnd == 15840
    # RFC 6582 3.2 step 4: deflate by the new data, add back one SMSS when >= SMSS.
    assert cc.on_new_ack(2920, ISS + 2920) is True
    assert (cc.cwnd, cc.in_recovery) == (14380, True)
    assert cc.on_new_ack(500, ISS + 3420) is True
    assert cc.cwnd == 13880
    # Duplicates during recovery still inflate.
    cc.on_duplicate_ack(16_580, ISS + 20_000)
    assert cc.cwnd == 15340


def test_full_ack_deflates_to_ssthresh_and_ends_recovery() -> None:
    cc = control()
    for _ in range(3):
        cc.on_duplicate_ack(20_000, ISS + 20_000)
    # RFC 6582 3.2 step 3: an ACK of everything up to "recover".
    assert cc.on_new_ack(20_000, ISS + 20_000) is False
    assert (cc.cwnd, cc.ssthresh, cc.in_recovery) == (10_000, 10_000, False)
    # Back in congestion avoidance.
    cc.on_new_ack(10_000, ISS + 30_000)
    assert cc.cwnd == 11460


def test_recovery_compares_sequence_numbers_modulo_2_to_the_32() -> None:
    cc = control()
    snd_una = 2**32 - 5_000
    snd_nxt = (snd_una + 20_000) % 2**32  # wrapped: 15000
    for _ in range(3):
        cc.on_duplicate_ack(20_000, snd_nxt)
    assert cc.on_new_ack(4_000, 2**32 - 1_000) is True  # below recover, before the wrap
    assert cc.on_new_ack(4_000, 3_000) is True  # below recover, after the wrap
    assert cc.on_new_ack(12_000, snd_nxt) is False
    assert cc.in_recovery is False


def test_timeout_sets_the_loss_window_and_leaves_recovery() -> None:
    cc = control()
    for _ in range(3):
        cc.on_duplicate_ack(20_000, ISS + 20_000)
    cc.on_timeout(flight=30_000)
    # RFC 5681 3.1: ssthresh per eq. 4, cwnd = LW = 1 SMSS; RFC 6582 step 6.
    assert (cc.ssthresh, cc.cwnd, cc.in_recovery) == (15_000, 1460, False)
    cc.on_timeout(flight=1460)
    assert (cc.ssthresh, cc.cwnd) == (2920, 1460)


def test_duplicates_of_data_sent_before_a_timeout_start_no_fast_retransmit() -> None:
    # RFC 6582 3.2 steps 1 and 6: "recover" = SND.NXT at the timeout; until an ACK covers
    # it, three duplicates are no loss signal.
    cc = control()
    cc.on_timeout(flight=20_000, snd_nxt=ISS + 20_000)
    assert [cc.on_duplicate_ack(1460, ISS + 20_000) for _ in range(3)] == [False] * 3
    cc.on_new_ack(1460, ISS + 1460)
    assert [cc.on_duplicate_ack(1460, ISS + 20_000) for _ in range(3)] == [False] * 3
    cc.on_new_ack(18_540, ISS + 20_000)
    assert [cc.on_duplicate_ack(2920, ISS + 22_920) for _ in range(3)] == [False, False, True]
