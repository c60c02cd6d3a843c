"""The rate limiter: never more than R call starts in any one-second window, per region and kind."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pca_batch.run.ratelimit import GET, ISSUE, RateLimiter, RateLimits
from tests.support.fault_backend import FakeClock

ARN_EAST = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/aaaa"
ARN_WEST = "arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/bbbb"


def max_in_any_window(starts: list[float], width: float = 1.0) -> int:
    """The most starts in any half-open window [t, t + width)."""
    starts = sorted(starts)
    best, lo = 0, 0
    for hi, t in enumerate(starts):
        while starts[lo] <= t - width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


@pytest.mark.parametrize("rate", [1, 5, 20, 25.5])
def test_starts_never_exceed_the_rate_in_any_window(rate: float) -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(int(rate * 5)):
        assert limiter.acquire()
        starts.append(clock())
    assert max_in_any_window(starts) <= int(rate)
    # And it does not dawdle: the calls of five seconds' worth take about five seconds.
    # (25.5/s allows only 25 starts in a window, hence the small tolerance.)
    assert starts[-1] - starts[0] == pytest.approx((len(starts) - 1) / rate, rel=0.05)


@settings(max_examples=60, deadline=None)
@given(
    rate=st.integers(min_value=1, max_value=50),
    gaps=st.lists(st.floats(min_value=0, max_value=0.3), min_size=1, max_size=120),
)
def test_any_arrival_pattern_stays_within_the_rate(rate: int, gaps: list[float]) -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate, clock=clock, sleep=clock.sleep)
    starts = []
    for gap in gaps:
        clock.sleep(gap)  # the caller arrives after doing other work
        assert limiter.acquire()
        starts.append(clock())
    assert max_in_any_window(starts) <= rate


def test_unlimited_never_waits() -> None:
    clock = FakeClock()
    for rate in (None, 0, 0.0):
        limiter = RateLimiter(rate, clock=clock, sleep=clock.sleep)
        assert limiter.unlimited
        assert all(limiter.acquire() for _ in range(1000))
    assert clock.sleeps == []


def test_a_fractional_rate_spaces_calls_further_apart() -> None:
    clock = FakeClock()
    limiter = RateLimiter(0.5, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(4):
        limiter.acquire()
        starts.append(clock())
    assert [b - a for a, b in zip(starts, starts[1:], strict=False)] == pytest.approx([2.0, 2.0, 2.0])


def test_an_interrupted_wait_takes_no_slot() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, clock=clock, sleep=lambda s: True)
    assert limiter.acquire()  # the first start needs no wait
    assert not limiter.acquire()  # the second would wait a second, and the wait is interrupted


def test_get_certificate_may_go_three_times_as_fast_and_regions_are_separate() -> None:
    clock = FakeClock()
    limits = RateLimits(10, clock=clock, sleep=clock.sleep)
    assert limits.rate_for(ISSUE) == 10
    assert limits.rate_for(GET) == 30
    assert limits.limiter(ARN_EAST, ISSUE) is limits.limiter(ARN_EAST + "/other", ISSUE)
    assert limits.limiter(ARN_EAST, ISSUE) is not limits.limiter(ARN_WEST, ISSUE)
    assert limits.limiter(ARN_EAST, ISSUE) is not limits.limiter(ARN_EAST, GET)

    starts: dict[tuple[str, str], list[float]] = {}
    for _ in range(60):
        for arn in (ARN_EAST, ARN_WEST):
            for kind in (ISSUE, GET):
                limits.acquire(arn, kind)
                starts.setdefault((arn, kind), []).append(clock())
    for (_, kind), times in starts.items():
        assert max_in_any_window(times) <= (30 if kind == GET else 10)
    assert RateLimits(None).rate_for(ISSUE) is None
    assert RateLimits(0).limiter(ARN_EAST, GET).unlimited


def test_many_threads_share_one_limiter_safely() -> None:
    clock = FakeClock()
    limiter = RateLimiter(20, clock=clock, sleep=clock.sleep)
    starts: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            limiter.acquire()
            now = clock()
            with lock:
                starts.append(now)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(starts) == 200
    assert max_in_any_window(starts) <= 20
