"""Client-side rate control per (account, region, operation), so pca-batch never makes a call storm.

AWS Private CA enforces per-account, per-region quotas (IssueCertificate 25 and
GetCertificate 75 calls a second by default; both can be raised) and answers
``ThrottlingException`` beyond them. pca-batch cannot know an account's quota,
nor how many other processes share it, so for the aws backend it learns its
share the way botocore's ``adaptive`` retry mode and the AWS SDKs' client-side
rate limiting do (botocore/retries/adaptive.py, cubic.py):

- it starts at a safe rate (:data:`START_RATES`, well under the default quotas)
  and doubles it every :data:`DOUBLING_S` seconds while calls succeed (slow start);
- on a ``ThrottlingException`` it cuts the rate to :data:`BETA` (0.7) times the
  rate it was sending at (``w_max``; when much was throttled, what got through
  instead, so that processes starting at once all fall under the quota in one
  round trip), and then grows it again along CUBIC's curve: back to just under
  ``w_max`` after K seconds, flattening as it nears it (concave), then past it
  as ``w_max + SCALE (t - K)^3`` (convex), as fast for a small share as for a
  large one, so that the small ones catch up and a share another process gave
  up is soon taken;
- K is botocore's ``cbrt(w_max (1 - BETA) / SCALE)`` but at least
  :data:`RECOVER_MIN_S`: each process is throttled about once per cycle, so a
  share of a few calls a second needs cycles of some seconds to keep the share
  of throttled calls low (some 4% for four processes sharing 25 a second);
- one cut per round trip: a throttle answering a call that started before the
  last cut says nothing new and does not cut again;
- it never grows past twice the rate calls are actually made at (a run that
  has little to do does not build up an allowance it would then burst), nor
  past the ceiling ``--max-rate`` (GetCertificate: 3 times it); ``--max-rate 0``
  lifts the ceiling but never the adaptation;
- call starts are paced ``1/rate`` apart with +-50% jitter, so that several
  processes sharing one quota do not start their calls in lock-step and the
  service's throttles fall on them at random; multiplicative decrease then
  takes more from the larger shares, and the processes converge to fair ones.

Every limiter also keeps a sliding window at the ceiling: no one-second window
ever holds more than ``ceiling`` starts, as measured by the limiter's clock.
The local backend has no quota: its limiters are fixed at ``--max-rate``
(unlimited by default). Waiters queue on one lock, holding it while they wait
(one slot at a time); the answers that teach the controller take only a
short-lived state lock, so they never wait for a slot.

Nothing is shared between processes: shards, concurrent CI jobs and regions
each adapt on their own and meet at their share of the quota.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pca_batch.acmpca import region_of
from pca_batch.errors import BackendError

T = TypeVar("T")

ISSUE = "IssueCertificate"
GET = "GetCertificate"
REVOKE = "RevokeCertificate"
DESCRIBE = "DescribeCertificateAuthority"
GET_RATE_FACTOR = 3.0
# The aws backend's default ceiling: far above the default quotas (the rate is learned below
# it), a bound in case a service never throttles. Accounts with larger quotas: --max-rate 0.
DEFAULT_AWS_RATE = 200.0
# Where the adaptation starts (calls a second): some 40% of each operation's default quota.
START_RATES = {ISSUE: 10.0, GET: 30.0, REVOKE: 10.0, DESCRIBE: 5.0}
MIN_RATE = 0.5  # never slower than this (a call every two seconds)
BETA = 0.7  # multiplicative decrease on a throttle (CUBIC's and botocore's)
SCALE = 0.2  # CUBIC: calls a second per second cubed, probing past w_max (botocore: 0.4)
RECOVER_MIN_S = 5.0  # CUBIC's K, the seconds from a cut back to w_max: at least this ...
RECOVER_MAX_S = 10.0  # ... and at most this
DOUBLING_S = 0.5  # slow start: the rate doubles this often until the first throttle
JITTER = 0.5  # pacing intervals are uniform in [1 - JITTER, 1 + JITTER] / rate
MEASURE_S = 1.0  # the window over which the rate calls are made at is measured
THROUGH_FLOOR = 0.25  # a cut starts from what got through, but from no less than this share of what was sent


class WaitInterrupted(Exception):
    """A wait for a call slot was interrupted (the run is being stopped): no call was made."""


def _real_sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


class RateController:
    """The rate one (account, region, operation) may be called at: CUBIC with slow start.

    Pure arithmetic on the times it is given (no clock, no lock), so that tests drive it
    with a simulated service. ``rate`` is the current allowance in calls a second.
    """

    def __init__(self, start: float, ceiling: float | None, *, now: float) -> None:
        self.ceiling = ceiling if ceiling and ceiling > 0 else None
        self._start = self._bounded(max(MIN_RATE, start))
        self.rate = self._start
        self._anchor = now  # slow start: when it began
        self.slow_start = True
        self.w_max = self.rate  # the rate the service last pushed back at
        self._k = 0.0  # CUBIC: seconds from a cut until the curve is back at w_max
        self.last_cut = -math.inf
        self.throttles = 0  # every throttled answer
        self.cuts = 0  # the throttles that cut the rate
        self.peak = 0.0  # the highest measured rate

    def _bounded(self, rate: float) -> float:
        return min(rate, self.ceiling) if self.ceiling is not None else rate

    def _curve(self, now: float) -> float:
        if self.slow_start:
            return self._start * 2.0 ** min(60.0, (now - self._anchor) / DOUBLING_S)
        t = now - self.last_cut - self._k
        if t < 0:  # concave: back to w_max after K seconds, flattening out as it nears it
            return self.w_max * (1.0 + (1.0 - BETA) * (t / self._k) ** 3)
        return self.w_max + SCALE * t**3  # convex: probing past it, as fast for every share

    def on_success(self, now: float, measured: float) -> float:
        """A call succeeded at ``now``; ``measured``: calls a second actually made lately."""
        self.peak = max(self.peak, measured)
        demand_cap = max(2.0 * measured, self._start)
        self.rate = self._bounded(max(MIN_RATE, min(self._curve(now), demand_cap)))
        return self.rate

    def on_throttle(self, now: float, started: float, measured: float, succeeding: float | None = None) -> bool:
        """The service throttled a call that started at ``started``; True when this cut the rate.

        ``measured``: calls a second sent lately; ``succeeding``: of those, the ones the service
        let through. When many were throttled (several processes starting at once, each too
        fast), the cut starts from what got through, not from what was sent, so that one round
        trip brings them all under the quota instead of several rounds of throttles.
        """
        self.throttles += 1
        if started < self.last_cut:  # sent before the last cut: that cut answered it already
            return False
        sending = min(self.rate, measured) if measured > 0 else self.rate
        if succeeding is not None:
            sending = max(sending * THROUGH_FLOOR, min(sending, succeeding))
        self.w_max = max(MIN_RATE, sending)
        self.rate = self._bounded(max(MIN_RATE, sending * BETA))
        self._k = min(RECOVER_MAX_S, max(RECOVER_MIN_S, (self.w_max * (1.0 - BETA) / SCALE) ** (1.0 / 3.0)))
        self.last_cut = now
        self.slow_start = False
        self.cuts += 1
        return True


@dataclass(frozen=True)
class LearnedRate:
    """What one limiter learned, for the log and the JSON report's summary."""

    operation: str
    region: str | None
    account: str | None
    calls: int  # call starts granted
    throttles: int  # calls the service answered ThrottlingException
    settled: float  # calls a second: where the service last pushed back, else the highest rate reached
    ceiling: float | None

    def line(self, *, where: bool = False) -> str:
        name = self.operation + (f" ({self.region or 'default region'}, {self.account or '?'})" if where else "")
        if self.throttles:
            return f"{name}: settled at {self.settled:.1f}/s after {self.throttles} throttle(s) in {self.calls} calls"
        limit = f"ceiling {self.ceiling:g}/s" if self.ceiling is not None else "no ceiling"
        reached = f", up to {self.settled:.1f}/s" if self.calls >= 10 else ""  # a rate of a few calls says little
        return f"{name}: never throttled in {self.calls} call(s){reached} ({limit})"

    def as_json(self) -> dict[str, object]:
        return {
            "operation": self.operation, "region": self.region, "account": self.account, "calls": self.calls,
            "throttles": self.throttles, "settled_per_s": round(self.settled, 2), "ceiling_per_s": self.ceiling,
        }


class RateLimiter:
    """Paces call starts for one (account, region, operation).

    ``rate`` is the ceiling (None or 0: none). With ``start`` the allowance adapts below the
    ceiling (a :class:`RateController`, told about each call by :meth:`succeeded` and
    :meth:`throttled`); without, it is fixed at the ceiling (unlimited when there is none).
    """

    def __init__(
        self,
        rate: float | None,
        *,
        start: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], bool | None] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.rate = rate if rate and rate > 0 else None
        self._clock = clock
        self._sleep = sleep or _real_sleep
        self._rand = rand
        self._turn = threading.Lock()  # the waiters queue here: one waits for the next slot at a time
        self._lock = threading.Lock()  # the state, held briefly (answers must never wait for a slot)
        self._last = -math.inf  # when the last start was granted
        self._stretch = 1.0  # the jitter of the interval after it
        self.controller = RateController(start, self.rate, now=clock()) if start is not None else None
        # The ceiling's window of `rate` starts; a fractional rate (0.5/s) still allows one start in a window.
        self._window: deque[float] = deque(maxlen=max(1, math.floor(self.rate)) if self.rate else 1)
        self._recent: deque[float] = deque()  # the grants of the last MEASURE_S seconds
        self._oks: deque[float] = deque()  # the successful answers of the last MEASURE_S seconds
        self._first: float | None = None
        self.calls = 0

    @property
    def unlimited(self) -> bool:
        return self.rate is None and self.controller is None

    @property
    def allowance(self) -> float | None:
        """The calls a second currently allowed (None: unlimited)."""
        return self.controller.rate if self.controller is not None else self.rate

    def acquire(self) -> bool:
        """Wait for a start slot. Returns False when the wait was interrupted (take no slot then)."""
        return self.grant() is not None

    def grant(self) -> float | None:
        """Wait for a start slot; the time it was granted, or None when the wait was interrupted."""
        if self.unlimited:
            with self._lock:
                return self._granted(self._clock())
        with self._turn:
            while True:
                with self._lock:
                    now = self._clock()
                    due = self._due()
                    if now >= due:
                        if self.rate is not None:
                            self._window.append(now)
                        if self.controller is not None:  # jittered, so that processes sharing a quota drift apart
                            self._stretch = 1.0 + JITTER * (2.0 * self._rand() - 1.0)
                        self._last = now
                        return self._granted(now)
                if self._sleep(due - now):
                    return None

    def _due(self) -> float:
        """The next start's time: an interval after the last at the current allowance (so that a
        cut or a rise applies to a wait already begun), and within the ceiling's window."""
        allowance = self.allowance
        due = self._last + self._stretch / allowance if allowance else -math.inf
        if self.rate is not None and len(self._window) == self._window.maxlen:
            due = max(due, self._window[0] + 1.0 + 1e-6)  # the microsecond: no float rounding lets one in
        return due

    def due(self) -> float:
        """When the next start may be granted (for simulations that drive several limiters)."""
        with self._lock:
            return -math.inf if self.unlimited else self._due()

    def _granted(self, now: float) -> float:
        self.calls += 1
        if self._first is None:
            self._first = now
        self._recent.append(now)
        return now

    def _per_second(self, times: deque[float], now: float) -> float:
        while times and times[0] <= now - MEASURE_S:
            times.popleft()
        span = min(MEASURE_S, max(0.25, now - (self._first if self._first is not None else now)))
        return len(times) / span

    def _measured(self, now: float) -> float:
        return self._per_second(self._recent, now)

    def succeeded(self) -> None:
        if self.controller is not None:
            with self._lock:
                now = self._clock()
                self._oks.append(now)
                self.controller.on_success(now, self._measured(now))

    def throttled(self, started: float) -> None:
        if self.controller is not None:
            with self._lock:
                now = self._clock()
                self.controller.on_throttle(now, started, self._measured(now), self._per_second(self._oks, now))

    def learned(self, operation: str, region: str | None, account: str | None) -> LearnedRate:
        with self._lock:
            control = self.controller
            throttles = control.throttles if control is not None else 0
            if control is not None and control.cuts:
                settled = control.w_max
            else:
                settled = control.peak if control is not None else self._measured(self._clock())
            return LearnedRate(operation=operation, region=region, account=account, calls=self.calls,
                               throttles=throttles, settled=settled, ceiling=self.rate)


class RateLimits:
    """The limiters of one run, one per (account, region, operation), created on first use.

    ``adaptive``: learn each rate below the ceiling (the aws backend); otherwise the rate is
    fixed at the ceiling.
    """

    def __init__(
        self,
        max_rate: float | None,
        *,
        adaptive: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], bool | None] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.max_rate = max_rate if max_rate and max_rate > 0 else None
        self.adaptive = adaptive
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._lock = threading.Lock()
        self._limiters: dict[tuple[str | None, str | None, str], RateLimiter] = {}

    def rate_for(self, kind: str) -> float | None:
        """The ceiling of ``kind`` calls."""
        if self.max_rate is None:
            return None
        return self.max_rate * GET_RATE_FACTOR if kind == GET else self.max_rate

    def limiter(self, ca_arn: str | None, kind: str) -> RateLimiter:
        key = (_account(ca_arn), region_of(ca_arn), kind)
        with self._lock:
            found = self._limiters.get(key)
            if found is None:
                start = START_RATES.get(kind, START_RATES[ISSUE]) if self.adaptive else None
                found = RateLimiter(self.rate_for(kind), start=start, clock=self._clock, sleep=self._sleep,
                                    rand=self._rand)
                self._limiters[key] = found
            return found

    def acquire(self, ca_arn: str | None, kind: str) -> bool:
        """Wait for a slot for a ``kind`` call to the CA's region; False when interrupted."""
        return self.limiter(ca_arn, kind).acquire()

    def call(self, ca_arn: str | None, kind: str, fn: Callable[[], T]) -> T:
        """``fn()`` (one ``kind`` call for the CA) once a slot is granted; its outcome teaches the
        limiter. Raises :class:`WaitInterrupted` when the wait for the slot was interrupted."""
        limiter = self.limiter(ca_arn, kind)
        started = limiter.grant()
        if started is None:
            raise WaitInterrupted()
        try:
            answer = fn()
        except BackendError as err:
            if err.throttled:
                limiter.throttled(started)
            raise
        limiter.succeeded()
        return answer

    def learned(self) -> list[LearnedRate]:
        """What each adaptive limiter that made a call learned, by operation, region and account."""
        with self._lock:
            items = sorted(self._limiters.items(), key=lambda kv: (kv[0][2], kv[0][1] or "", kv[0][0] or ""))
        return [limiter.learned(kind, region, account) for (account, region, kind), limiter in items
                if limiter.calls and limiter.controller is not None]


def _account(arn: str | None) -> str | None:
    """The account an ARN names (its fifth field), or None."""
    parts = (arn or "").split(":", 5)
    return (parts[4] or None) if len(parts) > 4 and parts[0] == "arn" else None


def learned_lines(rates: list[LearnedRate]) -> list[str]:
    """One log line per limiter; the region and account are named when an operation has several."""
    kinds = [r.operation for r in rates]
    return [r.line(where=kinds.count(r.operation) > 1) for r in rates]
