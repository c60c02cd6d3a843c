"""A client-side rate limiter per (region, call kind), so pca-batch never makes a call storm.

AWS Private CA's default quotas are 25 IssueCertificate and 75 GetCertificate
calls a second per account and region; pca-batch issues at ``--max-rate R``
(default 20 for the aws backend) and fetches at ``3 R``.

Each limiter spaces call starts at least ``1/R`` apart (measured from the
moment a start was granted, so a late wake-up never lets the next start crowd
in) and also keeps a sliding window as a guard against rounding: the
``R+1``-th start must come at least one second after the first of the last
``R``. So no one-second window ever holds more than R starts, as measured by
the limiter's clock. Waiters queue on one lock, holding it while they wait:
calls start in the order they asked, one slot at a time.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from pca_batch.acmpca import region_of

ISSUE = "IssueCertificate"
GET = "GetCertificate"
REVOKE = "RevokeCertificate"
GET_RATE_FACTOR = 3.0
DEFAULT_AWS_RATE = 20.0

def _real_sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


class RateLimiter:
    """At most ``rate`` call starts in any one-second window; ``rate`` None or 0: unlimited."""

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], bool | None] | None = None,
    ) -> None:
        self.rate = rate if rate and rate > 0 else None
        self._clock = clock
        self._sleep = sleep or _real_sleep
        self._lock = threading.Lock()
        self._next = -math.inf
        # A window of `rate` starts; a fractional rate (0.5/s) still allows one start in a window.
        self._window: deque[float] = deque(maxlen=max(1, math.floor(self.rate)) if self.rate else 1)

    @property
    def unlimited(self) -> bool:
        return self.rate is None

    def acquire(self) -> bool:
        """Wait for a start slot. Returns False when the wait was interrupted (take no slot then)."""
        if self.rate is None:
            return True
        interval = 1.0 / self.rate
        with self._lock:
            while True:
                now = self._clock()
                due = self._next
                if len(self._window) == self._window.maxlen:
                    due = max(due, self._window[0] + 1.0)
                if now >= due:
                    break
                if self._sleep(due - now):
                    return False
            self._window.append(now)
            self._next = now + interval
            return True


class RateLimits:
    """The limiters of one run, one per (region, call kind), created on first use."""

    def __init__(
        self,
        max_rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], bool | None] | None = None,
    ) -> None:
        self.max_rate = max_rate if max_rate and max_rate > 0 else None
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._limiters: dict[tuple[str | None, str], RateLimiter] = {}

    def rate_for(self, kind: str) -> float | None:
        if self.max_rate is None:
            return None
        return self.max_rate * GET_RATE_FACTOR if kind == GET else self.max_rate

    def limiter(self, ca_arn: str | None, kind: str) -> RateLimiter:
        key = (region_of(ca_arn), kind)
        with self._lock:
            found = self._limiters.get(key)
            if found is None:
                found = RateLimiter(self.rate_for(kind), clock=self._clock, sleep=self._sleep)
                self._limiters[key] = found
            return found

    def acquire(self, ca_arn: str | None, kind: str) -> bool:
        """Wait for a slot for a ``kind`` call to the CA's region; False when interrupted."""
        return self.limiter(ca_arn, kind).acquire()
