"""The one place where pca-batch retries a backend call.

Exponential backoff with full jitter (the AWS Architecture Blog's "Exponential
Backoff And Jitter"): before attempt ``k + 1`` wait a uniform random time in
``[0, min(cap, base * 2**(k-1))]``. Only errors that a retry can mend are
retried (:attr:`pca_batch.errors.BackendError.retryable`: throttling, 5xx
answers, dropped connections, time-outs); everything else fails at once.

Throttling is not a failed attempt: the service said "not now", and the rate
limiter (:mod:`pca_batch.run.ratelimit`) has slowed down already. A throttled
call is asked again after a short jittered wait (at most
``throttle_max_delay``) and spends no attempt; it fails only when the call has
been throttled for ``throttle_timeout`` seconds (``--throttle-timeout``; 0:
the first throttle fails it). Other retryable errors spend ``max_attempts``.

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
DEFAULT_THROTTLE_TIMEOUT = 900.0  # seconds: how long one call may go on being throttled
THROTTLE_MAX_DELAY = 1.0  # the longest wait before asking again after a throttle


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
    throttle_timeout: float = DEFAULT_THROTTLE_TIMEOUT
    throttle_max_delay: float = THROTTLE_MAX_DELAY

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base_delay, self.max_delay, self.throttle_timeout, self.throttle_max_delay) < 0:
            raise ValueError("delays must not be negative")

    def ceiling(self, failed_attempts: int) -> float:
        """The largest wait after ``failed_attempts`` failures (1 after the first call)."""
        exponent = min(failed_attempts - 1, 62)  # 2**62 * base is past any cap; avoids huge floats
        return float(min(self.max_delay, self.base_delay * (2**exponent)))

    def throttle_ceiling(self, throttles: int) -> float:
        """The largest wait after the ``throttles``-th throttle of one call."""
        return min(self.throttle_max_delay, self.ceiling(throttles))


def format_duration(seconds: float) -> str:
    """``90`` -> ``1m30s``, ``900`` -> ``15m``, ``2.5`` -> ``2.5s``."""
    if seconds < 60:
        return f"{seconds:g}s"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{rest}s" if rest else "")
    return text


def _real_sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


class Retrier:
    """Runs a call until it succeeds, fails for good, or runs out of attempts.

    ``sleep(seconds)`` waits and returns True when the wait was interrupted (the
    runner passes an Event's ``wait``); ``rand()`` gives a float in [0, 1);
    ``clock()`` measures the throttle budget. All are injectable so that tests
    run without real waiting.
    """

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], bool | None] | None = None,
        rand: Callable[[], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self._sleep = sleep or _real_sleep
        self._rand = rand or random.random
        self._clock = clock

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
        throttles = 0
        first_throttle = 0.0
        while True:
            try:
                return fn()
            except BackendError as err:
                if err.throttled:
                    throttles += 1
                    now = self._clock()
                    first_throttle = now if throttles == 1 else first_throttle
                    if now - first_throttle >= self.policy.throttle_timeout:
                        raise self._out_of_time(err, throttles, now - first_throttle) from err
                    wait = self._rand() * self.policy.throttle_ceiling(throttles)
                else:
                    failed += 1
                    if not err.retryable or failed >= self.policy.max_attempts:
                        raise
                    wait = self.delay(failed)
                if on_retry is not None:
                    on_retry(err, wait)
                if self._sleep(wait):
                    raise RetryAborted(err) from err

    def _out_of_time(self, err: BackendError, throttles: int, waited: float) -> BackendError:
        budget = format_duration(self.policy.throttle_timeout)
        return BackendError(
            err.code,
            f"{err.message} (throttled {throttles} time(s) over {waited:.1f} s; "
            f"--throttle-timeout {budget} ran out; settings.throttle_timeout in the manifest sets it too)",
            status=err.status,
        )
