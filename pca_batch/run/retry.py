"""The one place where pca-batch retries a backend call.

Exponential backoff with full jitter (the AWS Architecture Blog's "Exponential
Backoff And Jitter"): before attempt ``k + 1`` wait a uniform random time in
``[0, min(cap, base * 2**(k-1))]``. Only errors that a retry can mend are
retried (:attr:`pca_batch.errors.BackendError.retryable`: throttling, 5xx
answers, dropped connections, time-outs); everything else fails at once.

The caller's function is called again unchanged, so a retried IssueCertificate
always carries the same request and therefore the same idempotency token: a
retry after a lost answer gets the first certificate back instead of a second
one. Backends never retry themselves, so retries never stack.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pca_batch.errors import BackendError

T = TypeVar("T")

DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_BASE_DELAY = 0.2
DEFAULT_MAX_DELAY = 20.0


class RetryAborted(Exception):
    """A backoff wait was cut short (the run is being interrupted); no further attempt is made.

    ``last_error`` is the retryable error that the abandoned retry would have answered.
    """

    def __init__(self, last_error: BackendError) -> None:
        self.last_error = last_error
        super().__init__(f"retry abandoned after {last_error.code}")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    base_delay: float = DEFAULT_BASE_DELAY
    max_delay: float = DEFAULT_MAX_DELAY

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")

    def ceiling(self, failed_attempts: int) -> float:
        """The largest wait after ``failed_attempts`` failures (1 after the first call)."""
        exponent = min(failed_attempts - 1, 62)  # 2**62 * base is past any cap; avoids huge floats
        return float(min(self.max_delay, self.base_delay * (2**exponent)))


def _real_sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


class Retrier:
    """Runs a call until it succeeds, fails for good, or runs out of attempts.

    ``sleep(seconds)`` waits and returns True when the wait was interrupted (the
    runner passes an Event's ``wait``); ``rand()`` gives a float in [0, 1).
    Both are injectable so that tests run without real waiting.
    """

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], bool | None] | None = None,
        rand: Callable[[], float] | None = None,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self._sleep = sleep or _real_sleep
        self._rand = rand or random.random

    def delay(self, failed_attempts: int) -> float:
        """Full jitter: uniform in [0, ceiling]."""
        return self._rand() * self.policy.ceiling(failed_attempts)

    def call(
        self, fn: Callable[[], T], *, on_retry: Callable[[BackendError, float], None] | None = None
    ) -> T:
        """``fn()`` with retries. Raises the last BackendError when it cannot succeed.

        ``on_retry(error, delay)`` is told about each retry before its wait.
        Raises :class:`RetryAborted` when a wait is interrupted.
        """
        failed = 0
        while True:
            try:
                return fn()
            except BackendError as err:
                failed += 1
                if not err.retryable or failed >= self.policy.max_attempts:
                    raise
                wait = self.delay(failed)
                if on_retry is not None:
                    on_retry(err, wait)
                if self._sleep(wait):
                    raise RetryAborted(err) from err
