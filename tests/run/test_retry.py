"""Retries: full-jitter backoff, only for errors a retry can mend, always the same request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from pca_batch.errors import BackendError
from pca_batch.run.retry import Retrier, RetryAborted, RetryPolicy

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
    service = Service([BackendError("ThrottlingException", f"try {i}") for i in range(10)])
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
    service = Service([BackendError("ThrottlingException", "x")] * 5)
    r, waits = retrier(rand=0.5)
    r.call(lambda: service.call({}))
    assert waits == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6])
    other = Service([BackendError("ThrottlingException", "x")] * 3)
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
