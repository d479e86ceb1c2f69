"""The retransmission timeout of RFC 6298: the first and later samples, the bounds and
the exponential backoff, in exact nanoseconds."""

from __future__ import annotations

from stack.settings import Settings
from stack.tcp.rto import RetransmissionTimeout
from stack.timing import MILLISECOND, SECOND


def test_before_any_sample_the_timeout_is_the_initial_one() -> None:
    # RFC 6298 2.1
    rto = RetransmissionTimeout(Settings())
    assert (rto.rto, rto.srtt, rto.rttvar) == (1 * SECOND, None, None)


def test_the_first_sample_sets_srtt_to_r_and_rttvar_to_half_of_it() -> None:
    # RFC 6298 2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4 * RTTVAR) = 3R.
    rto = RetransmissionTimeout(Settings())
    rto.on_rtt_sample(100 * MILLISECOND)
    assert (rto.srtt, rto.rttvar, rto.rto) == (100 * MILLISECOND, 50 * MILLISECOND,
                                               300 * MILLISECOND)


def test_later_samples_smooth_with_alpha_one_eighth_and_beta_one_quarter() -> None:
    # RFC 6298 2.3: RTTVAR = 3/4 * 50 + 1/4 * |100 - 200| = 62.5 ms (from the old SRTT),
    # SRTT = 7/8 * 100 + 1/8 * 200 = 112.5 ms, RTO = 112.5 + 4 * 62.5 = 362.5 ms.
    rto = RetransmissionTimeout(Settings())
    rto.on_rtt_sample(100 * MILLISECOND)
    rto.on_rtt_sample(200 * MILLISECOND)
    assert (rto.srtt, rto.rttvar, rto.rto) == (112_500_000, 62_500_000, 362_500_000)
    # A third sample equal to SRTT shrinks RTTVAR by a quarter: 46.875 ms.
    rto.on_rtt_sample(112_500_000)
    assert (rto.srtt, rto.rttvar, rto.rto) == (112_500_000, 46_875_000, 300_000_000)


def test_the_timeout_is_never_below_the_minimum() -> None:
    # RFC 6298 2.4 with Linux's 200 ms minimum: 3 * 10 ms is raised to it.
    rto = RetransmissionTimeout(Settings())
    rto.on_rtt_sample(10 * MILLISECOND)
    assert (rto.srtt, rto.rto) == (10 * MILLISECOND, 200 * MILLISECOND)
    strict = RetransmissionTimeout(Settings(tcp_rto_min=1 * SECOND))
    strict.on_rtt_sample(10 * MILLISECOND)
    assert strict.rto == 1 * SECOND


def test_the_timeout_is_never_above_the_maximum() -> None:
    # RFC 6298 2.5: 3 * 50 s would be 150 s; the maximum is 120 s.
    rto = RetransmissionTimeout(Settings())
    rto.on_rtt_sample(50 * SECOND)
    assert rto.rto == 120 * SECOND


def test_backoff_doubles_up_to_the_maximum() -> None:
    # RFC 6298 5.5: 1, 2, 4, ..., 64 s, then 120 s (not 128) and it stays there.
    rto = RetransmissionTimeout(Settings())
    seen = []
    for _ in range(9):
        rto.back_off()
        seen.append(rto.rto // SECOND)
    assert seen == [2, 4, 8, 16, 32, 64, 120, 120, 120]


def test_a_new_sample_cancels_the_backoff() -> None:
    rto = RetransmissionTimeout(Settings())
    rto.on_rtt_sample(100 * MILLISECOND)
    rto.back_off()
    rto.back_off()
    assert rto.rto == 1200 * MILLISECOND
    # RFC 6298 5.7 leaves the backed-off value until a sample; the sample recomputes it.
    rto.on_rtt_sample(100 * MILLISECOND)
    assert rto.rto == 100 * MILLISECOND + 4 * 37_500_000
