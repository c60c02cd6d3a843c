"""Retries: full-jitter backoff, only for errors a retry can mend, always the same request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pca_batch.errors import BackendError
from pca_batch.run.retry import Retrier, RetryAborted, RetryPolicy, format_duration

NON_RETRYABLE = [
    "MalformedCSRException",
    "InvalidArgsException",
    "InvalidArnException",
    "ResourceNotFoundException",
    "InvalidStateException",
    "AccessDeniedException",
    "LimitExceededException",
    "RequestInProgressException",
]
RETRYABLE = [
    BackendError("ThrottlingException", "Rate exceeded", status=400),
    BackendError("InternalFailure", "oops", status=500),
    BackendError("SomethingNew", "bad gateway", status=502),
    BackendError("ConnectionError", "connection dropped"),
    BackendError("ReadTimeout", "read timed out"),
]


class Service:
    """Answers a scripted list of errors, then a value; remembers every request it saw."""

    def __init__(self, errors: list[BackendError]) -> None:
        self.errors = list(errors)
        self.seen: list[Mapping[str, Any]] = []

    def call(self, request: Mapping[str, Any]) -> str:
        self.seen.append(dict(request))
        if self.errors:
            raise self.errors.pop(0)
        return "arn:done"


def retrier(max_attempts: int = 8, rand: float = 1.0) -> tuple[Retrier, list[float]]:
    waits: list[float] = []

    def sleep(seconds: float) -> bool:
        waits.append(seconds)
        return False

    return Retrier(RetryPolicy(max_attempts=max_attempts), sleep=sleep, rand=lambda: rand), waits


@pytest.mark.parametrize("error", RETRYABLE, ids=lambda e: e.code)
def test_retryable_errors_are_retried_with_the_same_request(error: BackendError) -> None:
    service = Service([error, error])
    request = {"IdempotencyToken": "tok-1", "Csr": b"pem"}
    r, waits = retrier()
    assert r.call(lambda: service.call(request)) == "arn:done"
    assert len(service.seen) == 3
    assert all(seen == request for seen in service.seen)
    assert len(waits) == 2


@pytest.mark.parametrize("code", NON_RETRYABLE)
def test_errors_a_retry_cannot_mend_fail_at_once(code: str) -> None:
    service = Service([BackendError(code, "no", status=400)])
    r, waits = retrier()
    with pytest.raises(BackendError) as caught:
        r.call(lambda: service.call({}))
    assert caught.value.code == code
    assert len(service.seen) == 1
    assert waits == []


def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    service = Service([BackendError("InternalFailure", f"try {i}", status=500) for i in range(10)])
    r, waits = retrier(max_attempts=4)
    with pytest.raises(BackendError) as caught:
        r.call(lambda: service.call({}))
    assert caught.value.message == "try 3"
    assert len(service.seen) == 4
    assert len(waits) == 3


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=12, base_delay=0.2, max_delay=20.0)
    assert [policy.ceiling(k) for k in range(1, 10)] == pytest.approx(
        [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 20.0, 20.0]
    )
    assert policy.ceiling(500) == 20.0


def test_full_jitter_scales_the_ceiling_by_the_random_draw() -> None:
    service = Service([BackendError("ReadTimeout", "x")] * 5)
    r, waits = retrier(rand=0.5)
    r.call(lambda: service.call({}))
    assert waits == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6])
    other = Service([BackendError("ReadTimeout", "x")] * 3)
    r0, waits0 = retrier(rand=0.0)
    r0.call(lambda: other.call({}))
    assert waits0 == [0.0, 0.0, 0.0]


def test_an_interrupted_wait_abandons_the_retry() -> None:
    service = Service([BackendError("ThrottlingException", "x")] * 5)
    r = Retrier(RetryPolicy(), sleep=lambda s: True, rand=lambda: 1.0)
    with pytest.raises(RetryAborted) as caught:
        r.call(lambda: service.call({}))
    assert caught.value.last_error.code == "ThrottlingException"
    assert len(service.seen) == 1


def test_on_retry_hears_each_retry_and_its_delay() -> None:
    service = Service([BackendError("ReadTimeout", "t"), BackendError("InternalFailure", "f", status=500)])
    r, waits = retrier(rand=1.0)
    heard: list[tuple[str, float]] = []
    r.call(lambda: service.call({}), on_retry=lambda err, delay: heard.append((err.code, delay)))
    assert heard == [("ReadTimeout", 0.2), ("InternalFailure", 0.4)]
    assert waits == [0.2, 0.4]


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay=-1)


class Clock:
    """Moves only when the retrier waits."""

    def __init__(self) -> None:
        self.now = 50.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


def throttle_retrier(timeout: float, max_attempts: int = 2) -> tuple[Retrier, Clock]:
    clock = Clock()
    policy = RetryPolicy(max_attempts=max_attempts, throttle_timeout=timeout)
    return Retrier(policy, sleep=clock.sleep, rand=lambda: 1.0, clock=clock), clock


def test_throttles_spend_no_attempt_and_wait_at_most_the_throttle_delay() -> None:
    service = Service([BackendError("ThrottlingException", "Rate exceeded", status=400)] * 30)
    r, clock = throttle_retrier(timeout=900.0, max_attempts=1)
    assert r.call(lambda: service.call({})) == "arn:done"
    assert len(service.seen) == 31
    assert clock.waits[:4] == pytest.approx([0.2, 0.4, 0.8, 1.0]) and max(clock.waits) == 1.0


def test_other_errors_still_spend_attempts_between_throttles() -> None:
    throttle = BackendError("ThrottlingException", "Rate exceeded", status=400)
    failure = BackendError("InternalFailure", "oops", status=500)
    service = Service([throttle, failure, throttle, throttle, failure, throttle])
    r, _ = throttle_retrier(timeout=900.0, max_attempts=2)
    with pytest.raises(BackendError) as caught:
        r.call(lambda: service.call({}))
    assert caught.value.code == "InternalFailure" and len(service.seen) == 5  # the second failure ends it


@settings(max_examples=100, deadline=None)
@given(timeout=st.floats(0, 60), draws=st.lists(st.floats(0.05, 0.999), min_size=1, max_size=5))
@example(timeout=0.01, draws=[0.05])  # found by hypothesis: the test's clock used to round
def test_the_throttle_budget_is_time_since_the_first_throttle(timeout: float, draws: list[float]) -> None:
    """It gives up at the first throttle that comes ``timeout`` or more after the call's first
    throttle, and never before; the error names the budget."""
    service = Service([BackendError("ThrottlingException", "Rate exceeded", status=400)] * 10_000)
    clock = Clock()
    clock.now = 0.0  # so that the clock's sums are the test's sums (50.0 + w - 50.0 rounds away from w)
    pick = iter(draws * 10_000)
    r = Retrier(RetryPolicy(throttle_timeout=timeout), sleep=clock.sleep, rand=lambda: next(pick), clock=clock)
    with pytest.raises(BackendError) as caught:
        r.call(lambda: service.call({}))
    waited = sum(clock.waits)
    assert waited >= timeout
    assert not clock.waits or waited - clock.waits[-1] < timeout  # one throttle earlier was still inside
    assert caught.value.code == "ThrottlingException"
    assert "--throttle-timeout" in caught.value.message


def test_a_call_that_succeeds_starts_a_fresh_budget() -> None:
    r, clock = throttle_retrier(timeout=1.0)
    throttle = BackendError("ThrottlingException", "Rate exceeded", status=400)
    first = Service([throttle, throttle, throttle])  # 0.2 + 0.4 = 0.6 s: inside the budget
    assert r.call(lambda: first.call({})) == "arn:done"
    second = Service([throttle, throttle, throttle])  # the same again: a new call, a new budget
    assert r.call(lambda: second.call({})) == "arn:done"
    assert clock.waits == pytest.approx([0.2, 0.4, 0.8, 0.2, 0.4, 0.8])


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 2.5, 59, 60, 90, 900, 3600, 5400)] == [
        "0s", "2.5s", "59s", "1m", "1m30s", "15m", "1h", "1h30m"]
