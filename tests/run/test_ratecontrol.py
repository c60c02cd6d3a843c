"""The adaptive rate controller (CUBIC with slow start), against a simulated quota on a fake clock.

Properties: it never exceeds the ceiling, it converges to the quota a service enforces
(most of the quota used, few calls throttled), it backs off on every throttle that
answers a call sent since its last cut, and several processes sharing one quota end up
using it all between them, each with a share.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pca_batch.errors import BackendError
from pca_batch.run.ratelimit import BETA, MIN_RATE, RECOVER_MIN_S, RateController, RateLimits, WaitInterrupted
from tests.run.test_ratelimit import max_in_any_window
from tests.support.fault_backend import FakeClock
from tests.support.quota_sim import simulate

ARN = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/aaaa"


@st.composite
def events(draw: st.DrawFn) -> list[tuple[str, float, float]]:
    """A run of answers: (kind, seconds since the last, how long ago the call started)."""
    return draw(st.lists(
        st.tuples(st.sampled_from(["ok", "ok", "ok", "throttle"]), st.floats(0, 2), st.floats(0, 1)),
        min_size=1, max_size=80,
    ))


@settings(max_examples=200, deadline=None)
@given(
    start=st.floats(0.1, 50),
    ceiling=st.none() | st.floats(0.5, 300),
    answers=events(),
    measured=st.floats(0, 400),
)
def test_the_rate_stays_within_the_ceiling_and_backs_off_on_throttling(
    start: float, ceiling: float | None, answers: list[tuple[str, float, float]], measured: float
) -> None:
    now = 100.0
    control = RateController(start, ceiling, now=now)
    for kind, gap, age in answers:
        now += gap
        before = control.rate
        if kind == "ok":
            control.on_success(now, measured)
        else:
            cut = control.on_throttle(now, now - age, measured)
            if cut:  # a throttle of a call sent since the last cut: at most BETA times what was sent
                sent = min(before, measured) if measured > 0 else before
                assert control.rate <= max(MIN_RATE, BETA * sent) + 1e-9
                assert control.rate < before or before <= MIN_RATE or control.rate == MIN_RATE
            else:  # it answered a call sent before the last cut: that cut answered it already
                assert control.rate == before
        assert control.rate >= min(MIN_RATE, ceiling or MIN_RATE) - 1e-9
        if ceiling is not None:
            assert control.rate <= ceiling + 1e-9


def test_one_cut_per_round_trip() -> None:
    control = RateController(20, None, now=0.0)
    assert control.on_throttle(1.0, 0.95, 0)
    after_first = control.rate
    assert not control.on_throttle(1.02, 0.96, 0)  # sent before the cut at 1.0
    assert control.rate == after_first and control.throttles == 2 and control.cuts == 1
    assert control.on_throttle(1.2, 1.1, 0)  # sent after it: the service still says no
    assert control.rate == BETA * after_first


def test_it_grows_while_calls_succeed_but_not_far_past_what_is_used() -> None:
    control = RateController(10, None, now=0.0)
    control.on_success(1.0, 10.0)
    assert control.rate == 20.0  # slow start: doubled twice in one second, but at most twice the use
    control.on_success(2.0, 3.0)
    assert control.rate == 10.0  # little used: no allowance to burst with later (the start rate stays)


@settings(max_examples=12, deadline=None)
@given(
    quota=st.sampled_from([3.0, 10.0, 25.0, 60.0, 100.0]),
    ceiling=st.none() | st.sampled_from([40.0, 200.0]),
    processes=st.integers(1, 3),
    seed=st.integers(0, 10_000),
)
def test_it_converges_under_a_fixed_quota(quota: float, ceiling: float | None, processes: int, seed: int) -> None:
    outcome = simulate(processes=processes, quota=quota, seconds=60, ceiling=ceiling, seed=seed)
    target = min(quota, ceiling * processes) if ceiling is not None else quota
    used = outcome.rate_between(30, 60)  # after the start: the last half
    assert used >= 0.85 * target, f"{used:.1f}/s of {target}/s"
    # About one throttle per cycle of each process, and a cycle lasts RECOVER_MIN_S seconds at
    # least: with a share of a few calls a second a cycle holds few calls, so more are throttled.
    bound = max(0.1, 2.0 / (quota / processes * RECOVER_MIN_S))
    assert outcome.throttled_between(30, 60) <= bound * outcome.calls_between(30, 60)
    for proc in outcome.processes:
        if ceiling is not None:
            assert max_in_any_window(proc.starts) <= ceiling
        assert proc.ok, "a process got no share at all"


@settings(max_examples=30, deadline=None)
@given(ceiling=st.floats(1, 80), seed=st.integers(0, 1000))
def test_it_never_exceeds_the_ceiling_even_without_throttles(ceiling: float, seed: int) -> None:
    outcome = simulate(quota=10_000, seconds=10, ceiling=ceiling, seed=seed, concurrency=64)
    starts = outcome.processes[0].starts
    assert max_in_any_window(starts) <= max(1, int(ceiling))
    assert outcome.throttles == 0
    assert len(starts) >= 0.8 * max(1, int(ceiling)) * 7  # and it does get there (whole starts a second)


def test_limits_learn_from_each_answer_and_say_what_they_learned() -> None:
    clock = FakeClock()
    limits = RateLimits(None, adaptive=True, clock=clock, sleep=clock.sleep)

    def throttled() -> None:
        raise BackendError("ThrottlingException", "Rate exceeded", status=400)

    for n in range(30):
        if n == 20:
            try:
                limits.call(ARN, "IssueCertificate", throttled)
            except BackendError:
                pass
        else:
            limits.call(ARN, "IssueCertificate", lambda: clock.sleep(0.01))
    (learned,) = limits.learned()
    assert (learned.operation, learned.region, learned.account) == ("IssueCertificate", "us-east-1", "111122223333")
    assert learned.calls == 30 and learned.throttles == 1 and learned.ceiling is None
    assert learned.line().startswith(f"IssueCertificate: settled at {learned.settled:.1f}/s after 1 throttle(s)")


def test_an_interrupted_wait_makes_no_call() -> None:
    limits = RateLimits(1, adaptive=True, sleep=lambda s: True)
    calls: list[int] = []
    limits.call(ARN, "IssueCertificate", lambda: calls.append(1))
    try:
        limits.call(ARN, "IssueCertificate", lambda: calls.append(2))
    except WaitInterrupted:
        pass
    else:
        raise AssertionError("the second call did not wait")
    assert calls == [1]
