"""The apply engine: run every entry against a backend, concurrently, and never issue twice.

Per entry (one worker call, which returns a :class:`Result` and never prints):

1. The journal has an ARN for the entry's (CA, idempotency token)? Skip
   IssueCertificate. Otherwise IssueCertificate with the entry's token
   (retried by :mod:`pca_batch.run.retry`, paced by :mod:`pca_batch.run.ratelimit`) and
   record the ARN in the journal, durably, the moment it returns.
2. GetCertificate until the certificate is there: RequestInProgressException
   means wait ``poll_delay`` and ask again, like botocore's CertificateIssued
   waiter, at most ``max_polls`` times and ``max_poll_wait`` seconds.
3. Write the outputs atomically (certificate, chain, full_chain); files whose
   content would not change are left alone.

``concurrency`` entries at most are between their first call and their
certificate at once (a semaphore of call slots); a few extra pool threads
write files, so local disk work never holds a slot. The main thread alone
collects results and hands them to ``on_result``.
``--fail-fast`` stops new entries from starting after a failure; an interrupt
(:meth:`Runner.request_stop`) also stops retries and polls: calls in flight
end, nothing new starts, the rest end ``skipped``.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from pca_batch.backends.base import Backend, CertificateBundle
from pca_batch.errors import BackendError
from pca_batch.model import FAILED, ISSUED, SKIPPED, UNCHANGED, Entry, Result
from pca_batch.run.delivery import write_outputs
from pca_batch.run.journal import Journal
from pca_batch.run.ratelimit import GET, ISSUE, RateLimits
from pca_batch.run.retry import DEFAULT_MAX_ATTEMPTS, Retrier, RetryAborted, RetryPolicy

IN_PROGRESS = "RequestInProgressException"
INTERRUPTED = "Interrupted"
FAIL_FAST = "FailFast"
_TICK = 0.1  # how often the main thread looks up from waiting for results (seconds)
DEFAULT_CONCURRENCY = 16


@dataclass(frozen=True)
class RunConfig:
    concurrency: int = DEFAULT_CONCURRENCY  # entries between their first call and their certificate, at once
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_rate: float | None = None  # IssueCertificate calls a second per region; None or 0: unlimited
    fail_fast: bool = False
    poll_delay: float = 1.0
    max_polls: int = 60
    max_poll_wait: float = 120.0
    grace_s: float = 30.0  # how long an interrupted run waits for calls in flight


class _Interrupted(Exception):
    """The run is being interrupted: this worker makes no further call."""


@dataclass
class _Progress:
    attempts: int = 0  # IssueCertificate calls made, retries included
    arn: str | None = None


class Runner:
    def __init__(
        self,
        backend: Backend,
        journal: Journal,
        *,
        base_dir: Path,
        config: RunConfig | None = None,
        preflight_errors: Mapping[str, BackendError] | None = None,
        prepare: Callable[[Entry], Entry] | None = None,
        deliver: Callable[[Entry], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._backend = backend
        self._journal = journal
        self._base_dir = base_dir
        self.config = config or RunConfig()
        self._preflight = dict(preflight_errors or {})
        # prepare: in the worker, before the first call (keys and CSRs made by pca-batch);
        # deliver: after the outputs are written (a new private key moved into place)
        self._prepare = prepare
        self._deliver = deliver
        self._clock = clock
        self._sleep = sleep
        self._interrupt = threading.Event()
        self._stop_new = threading.Event()
        self._abandon = threading.Event()
        self._limits = RateLimits(self.config.max_rate, clock=clock, sleep=self._wait)
        self._retrier = Retrier(RetryPolicy(max_attempts=max(1, self.config.max_attempts)),
                                sleep=self._wait, rand=rand)
        self._results: dict[int, Result] = {}
        self._slots = threading.BoundedSemaphore(max(1, self.config.concurrency))
        self.calls_left_running = False  # True when run() returned before calls in flight ended

    # -- control, from the main thread or a signal handler ---------------------------------

    @property
    def interrupted(self) -> bool:
        return self._interrupt.is_set()

    def request_stop(self) -> None:
        """First call: start nothing new, let calls in flight end. Second: stop waiting for them."""
        if self._interrupt.is_set():
            self._abandon.set()
        self._stop_new.set()
        self._interrupt.set()

    def _wait(self, seconds: float) -> bool:
        """Wait ``seconds``; True when the run is being interrupted."""
        if self._sleep is None:
            return self._interrupt.wait(max(0.0, seconds))
        if not self._interrupt.is_set():
            self._sleep(max(0.0, seconds))
        return self._interrupt.is_set()

    # -- the main thread ---------------------------------------------------------------------

    def run(
        self,
        entries: Iterable[Entry],
        on_result: Callable[[Result], None] | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> list[Result]:
        """Run ``entries``; results come back in the entries' order.

        ``on_result`` sees each result as it comes, and ``on_tick`` is called at least
        every few tenths of a second (both on the calling thread).
        """
        todo = list(entries)
        self._results = {}
        if not todo:
            return []
        slots = max(1, min(self.config.concurrency, len(todo)))
        self._slots = threading.BoundedSemaphore(slots)
        # A few threads more than call slots, so that writing files never holds a slot.
        workers = min(len(todo), slots + max(1, slots // 4))
        window = 2 * workers  # entries handed to the pool ahead of time: few, so stopping is prompt
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pca-batch")
        futures: dict[Future[Result], int] = {}
        finished: queue.SimpleQueue[Future[Result]] = queue.SimpleQueue()  # O(1) a result, unlike wait()
        submitted = 0
        deadline: float | None = None
        clean = False
        try:
            while not self._abandon.is_set():
                while submitted < len(todo) and len(futures) < window and not self._stop_new.is_set():
                    future = pool.submit(self._work, todo[submitted])
                    futures[future] = submitted
                    future.add_done_callback(finished.put)
                    submitted += 1
                if not futures:
                    break
                try:
                    done = [finished.get(timeout=_TICK)]
                except queue.Empty:
                    done = []
                except KeyboardInterrupt:  # no signal handler installed: same meaning
                    self.request_stop()
                    continue
                while not finished.empty():  # all that ended meanwhile, in one go
                    done.append(finished.get_nowait())
                for future in done:
                    if future not in futures:  # cancelled while shutting down: nothing to record
                        continue
                    result = future.result()  # a bug in a worker ends the run here
                    self._record(futures.pop(future), result, on_result)
                if on_tick is not None:
                    on_tick()
                if self._interrupt.is_set():
                    deadline = deadline or time.monotonic() + self.config.grace_s
                    if time.monotonic() >= deadline:
                        break
            clean = True
        finally:
            if not clean or futures:  # a bug, the grace period or a second interrupt ended the wait
                self._stop_new.set()
                self._interrupt.set()
            # After the grace period or a second interrupt, calls in flight are left to
            # end on their own; otherwise wait for them (they start nothing new).
            gave_up = self._abandon.is_set() or deadline is not None
            pool.shutdown(wait=not gave_up, cancel_futures=True)
            self.calls_left_running = any(not f.done() for f in futures)
            for future, index in futures.items():
                if future.done() and not future.cancelled() and future.exception() is None:
                    self._results[index] = future.result()
        for index in range(submitted, len(todo)):
            self._record(index, self._not_started(todo[index]), on_result)
        return self.results_for(todo)

    def _record(self, index: int, result: Result, on_result: Callable[[Result], None] | None) -> None:
        self._results[index] = result
        if result.status == FAILED and self.config.fail_fast:
            self._stop_new.set()
        if on_result is not None:
            on_result(result)

    def results_for(self, entries: list[Entry]) -> list[Result]:
        """The results so far in the entries' order; an entry without one ends ``skipped``."""
        out: list[Result] = []
        for index, entry in enumerate(entries):
            found = self._results.get(index)
            if found is None:
                found = self._skipped(entry, "the run ended before this entry finished", None)
                if entry.ca_arn and entry.token:  # an ARN it got is in the journal: say so
                    found = replace(found, certificate_arn=self._journal.lookup(entry.ca_arn, entry.token))
            out.append(found)
        return out

    # -- the workers ---------------------------------------------------------------------------

    def _not_started(self, entry: Entry) -> Result:
        if self._interrupt.is_set():
            return self._skipped(entry, "the run was interrupted before this entry started", None)
        return self._skipped(entry, "not started: --fail-fast stopped the run after a failure", None,
                             code=FAIL_FAST)

    def _work(self, entry: Entry) -> Result:
        pre = self._preflight.get(entry.name)
        if pre is not None and not self._stop_new.is_set():
            return self._failed(entry, pre, _Progress(), self._clock())
        state = _Progress()
        started = self._clock()
        if self._prepare is not None:
            try:
                entry = self._prepare(entry)
            except BackendError as err:
                return self._failed(entry, err, state, started)
        try:
            with self._slots:  # held from the first call to the certificate; files are written outside
                if self._stop_new.is_set():
                    return self._not_started(entry)
                started = self._clock()
                bundle = self._issue_and_fetch(entry, state)
            return self._finish(entry, bundle, state, started)
        except BackendError as err:
            return self._failed(entry, err, state, started)
        except RetryAborted as aborted:
            return self._skipped(entry, f"interrupted while waiting to retry after {aborted.last_error.code}"
                                 + _rerun_hint(state), state, started)
        except _Interrupted:
            return self._skipped(entry, "interrupted" + _rerun_hint(state), state, started)

    def _issue_and_fetch(self, entry: Entry, state: _Progress) -> CertificateBundle:
        ca_arn, token = entry.ca_arn, entry.token
        if ca_arn is None or token is None:
            raise ValueError(f"entry {entry.name} reached the runner without a CA ARN or a token")
        state.arn = self._journal.lookup(ca_arn, token)
        if state.arn is None:
            request = entry.api_request()

            def issue() -> str:
                self._before_call(ca_arn, ISSUE)
                state.attempts += 1
                return self._backend.issue_certificate(request)

            arn = self._retrier.call(issue)
            self._journal.record_issued(name=entry.name, token=token, ca_arn=ca_arn, certificate_arn=arn)
            state.arn = arn
        return self._fetch(ca_arn, state.arn)

    def _before_call(self, ca_arn: str, kind: str) -> None:
        if self._interrupt.is_set() or not self._limits.acquire(ca_arn, kind) or self._interrupt.is_set():
            raise _Interrupted()

    def _fetch(self, ca_arn: str, arn: str) -> CertificateBundle:
        first = self._clock()
        polls = 0

        def get() -> CertificateBundle:
            self._before_call(ca_arn, GET)
            return self._backend.get_certificate(ca_arn, arn)

        while True:
            try:
                return self._retrier.call(get)
            except BackendError as err:
                if err.code != IN_PROGRESS:
                    raise
                polls += 1
                waited = self._clock() - first
                cfg = self.config
                if polls >= cfg.max_polls or waited + cfg.poll_delay > cfg.max_poll_wait:
                    raise BackendError(
                        IN_PROGRESS,
                        f"the certificate was still not ready after {polls} GetCertificate calls over "
                        f"{waited:.0f} s; its ARN is in the journal: run again to fetch it",
                        status=err.status,
                    ) from err
            if self._wait(self.config.poll_delay):
                raise _Interrupted()

    def _finish(self, entry: Entry, bundle: CertificateBundle, state: _Progress, started: float) -> Result:
        base = self._base(entry)
        facts, changed = write_outputs(bundle, entry.outputs, dict(base.outputs))
        if self._deliver is not None:
            self._deliver(entry)
        return replace(
            base, status=ISSUED if state.attempts or changed else UNCHANGED,
            certificate_arn=state.arn, serial=facts.serial, not_before=facts.not_before,
            not_after=facts.not_after, attempts=state.attempts, duration_s=self._elapsed(started),
        )

    # -- results -----------------------------------------------------------------------------------

    def _base(self, entry: Entry) -> Result:
        return base_result(entry, self._base_dir)

    def _elapsed(self, started: float | None) -> float:
        return 0.0 if started is None else round(max(0.0, self._clock() - started), 6)

    def _failed(self, entry: Entry, err: BackendError, state: _Progress, started: float) -> Result:
        if self.config.fail_fast:
            self._stop_new.set()
        return replace(
            self._base(entry), status=FAILED, certificate_arn=state.arn, attempts=state.attempts,
            duration_s=self._elapsed(started), error_code=err.code, error_message=err.message,
        )

    def _skipped(
        self, entry: Entry, message: str, state: _Progress | None, started: float | None = None,
        *, code: str = INTERRUPTED,
    ) -> Result:
        return replace(
            self._base(entry), status=SKIPPED, certificate_arn=state.arn if state else None,
            attempts=state.attempts if state else 0, duration_s=self._elapsed(started),
            error_code=code, error_message=message,
        )


def base_result(entry: Entry, base_dir: Path) -> Result:
    """An entry's result before anything happened (``skipped``), outputs relative to ``base_dir``."""
    return Result(
        name=entry.name, status=SKIPPED, certificate_authority_arn=entry.ca_arn,
        idempotency_token=entry.token, line=entry.line,
        outputs=entry.outputs.relative_to(base_dir),
    )


def _rerun_hint(state: _Progress) -> str:
    return "; its certificate ARN is in the journal: run again to fetch it" if state.arn else ""
