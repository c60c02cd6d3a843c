"""A simulated AWS quota for the rate controller: processes sharing one token bucket, on a fake clock.

Each simulated process has its own adaptive :class:`pca_batch.run.ratelimit.RateLimiter`
(the real one, its pacing, jitter, measuring and controller) and always has work: it
starts a call whenever the limiter grants a slot and fewer than ``concurrency`` of its
calls are in flight. The service takes a token from a bucket (``quota`` a second,
``burst`` at most) for each call it lets through and answers ``ThrottlingException``
when the bucket is empty; answers arrive ``latency`` seconds later, and the limiter
hears of them then. Discrete events, no threads, no real time: deterministic per seed.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from pca_batch.run.ratelimit import ISSUE, START_RATES, RateLimiter


class SimClock:
    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> bool:  # never needed: the simulation waits for each slot itself
        raise AssertionError(f"the simulation asked the limiter to sleep {seconds}")


@dataclass
class Process:
    limiter: RateLimiter
    in_flight: int = 0
    starts: list[float] = field(default_factory=list)
    ok: list[float] = field(default_factory=list)  # when each call the service let through started
    throttled_at: list[float] = field(default_factory=list)  # when each call the service throttled started
    allowances: list[float] = field(default_factory=list)  # the allowance after each answer


@dataclass
class Outcome:
    processes: list[Process]
    quota: float
    seconds: float

    def ok_between(self, start: float, end: float) -> int:
        return sum(1 for p in self.processes for t in p.ok if start <= t < end)

    def rate_between(self, start: float, end: float) -> float:
        return self.ok_between(start, end) / (end - start)

    @property
    def calls(self) -> int:
        return sum(len(p.starts) for p in self.processes)

    @property
    def throttles(self) -> int:
        return sum(len(p.throttled_at) for p in self.processes)

    def throttled_between(self, start: float, end: float) -> int:
        return sum(1 for p in self.processes for t in p.throttled_at if start <= t < end)

    def calls_between(self, start: float, end: float) -> int:
        return sum(1 for p in self.processes for t in p.starts if start <= t < end)

    def shares(self, start: float, end: float) -> list[float]:
        return [sum(1 for t in p.ok if start <= t < end) / (end - start) for p in self.processes]


def simulate(  # noqa: PLR0913 - a simulation's knobs, all keyword-only
    *, processes: int = 1, quota: float = 25.0, burst: float | None = None, seconds: float = 60.0,
    ceiling: float | None = None, latency: float = 0.05, concurrency: int = 16, seed: int = 0,
    start: float = START_RATES[ISSUE], work: int | None = None, stagger: float = 0.0,
) -> Outcome:
    """``processes`` sharing ``quota`` calls a second (a bucket of ``burst``, default one
    second's worth) for ``seconds``; see the module's docstring. ``work``: each process
    stops once that many of its calls got through (else: it always has work). ``stagger``:
    process n starts n * stagger seconds after the first."""
    clock = SimClock()
    rng = random.Random(seed)
    procs = []
    for n in range(processes):
        clock.now = n * stagger  # each limiter's slow start begins when its process does
        procs.append(Process(RateLimiter(ceiling, start=start, clock=clock, sleep=clock.sleep, rand=rng.random)))
    clock.now = 0.0
    capacity = quota if burst is None else burst
    tokens, refilled = capacity, 0.0
    answers: list[tuple[float, int, int, float, bool]] = []  # (time, seq, process, started, throttled)
    seq = 0
    while True:
        ready = [(max(p.limiter.due(), n * stagger), n) for n, p in enumerate(procs)
                 if p.in_flight < concurrency and (work is None or len(p.ok) + p.in_flight < work)]
        next_start = min(ready) if ready else (float("inf"), -1)
        next_answer = answers[0][0] if answers else float("inf")
        now = min(next_start[0], next_answer)
        if now > seconds:
            break
        clock.now = max(clock.now, now)
        if next_answer <= next_start[0]:
            _, _, n, started, throttled = heapq.heappop(answers)
            proc = procs[n]
            proc.in_flight -= 1
            if throttled:
                proc.limiter.throttled(started)
            else:
                proc.limiter.succeeded()
            proc.allowances.append(proc.limiter.allowance or 0.0)
            continue
        proc = procs[next_start[1]]
        granted = proc.limiter.grant()
        assert granted is not None
        started = granted
        tokens = min(capacity, tokens + (started - refilled) * quota)
        refilled = started
        throttled = tokens < 1.0
        if not throttled:
            tokens -= 1.0
            proc.ok.append(started)
        else:
            proc.throttled_at.append(started)
        proc.starts.append(started)
        proc.in_flight += 1
        seq += 1
        answered = started + latency * (0.8 + 0.4 * rng.random())
        heapq.heappush(answers, (answered, seq, next_start[1], started, throttled))
    return Outcome(procs, quota, seconds)
