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
end, nothing new starts. Once a stop was asked for, an entry that had not
started does nothing at all (no key, no file, no call) and ends ``skipped``;
one whose certificate was issued during the run but whose files were not
written ends ``failed`` (``Interrupted``) with its certificate ARN, for the
next run to fetch. An entry whose certificate the journal already had is
fetched without IssueCertificate and ends ``recovered`` once its files are
written (``unchanged`` when they already held it).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from pca_batch.acmpca import serial_hex, serial_of_arn
from pca_batch.backends.base import Backend, BatchBackend, CertificateBundle
from pca_batch.errors import BackendError
from pca_batch.files import fsync_helpers
from pca_batch.model import FAILED, ISSUED, RECOVERED, SKIPPED, UNCHANGED, Entry, Result
from pca_batch.plan import lostkeys
from pca_batch.run.delivery import OUTPUT_ERROR, CertificateFacts, write_outputs, write_outputs_many
from pca_batch.run.journal import Issued, JournalRecord, KeyRecord, Recorder
from pca_batch.run.pool import Pool
from pca_batch.run.ratelimit import GET, ISSUE, LearnedRate, RateLimits, WaitInterrupted
from pca_batch.run.retry import DEFAULT_MAX_ATTEMPTS, DEFAULT_THROTTLE_TIMEOUT, Retrier, RetryAborted, RetryPolicy
from pca_batch.times import utc_now

T = TypeVar("T")

IN_PROGRESS = "RequestInProgressException"
INTERRUPTED = "Interrupted"
FAIL_FAST = "FailFast"
_TICK = 0.1  # how often the main thread looks up from waiting for results (seconds)
DEFAULT_CONCURRENCY = 16
# The aws backend: entries spend their time waiting for answers, and the rate is the rate
# limiter's to set (pca_batch.run.ratelimit), so more of them in flight: at 50 ms a call,
# 16 entries reach some 75 IssueCertificate calls a second, 32 some 130.
DEFAULT_AWS_CONCURRENCY = 32
DEFAULT_LOCAL_CONCURRENCY = 256  # the local CA: two batches of 128 (one signing, one writing its files)
BATCH_MIN = 8  # entries: a run this short (twice over) is not worth batching
CHUNK_MAX = 128  # entries a worker takes together, with a backend that issues in batches
_UNWRITTEN = (
    "its certificate was issued, but its files were not written: {why}; run again to fetch it "
    "(its ARN is in the journal) without a new IssueCertificate call"
)


@dataclass(frozen=True)
class RunConfig:
    concurrency: int = DEFAULT_CONCURRENCY  # entries between their first work and their certificate, at once
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_rate: float | None = None  # IssueCertificate calls a second per region at most; None or 0: no ceiling
    adaptive: bool = False  # learn the rate below the ceiling from throttles (aws); else fixed at it
    throttle_timeout: float = DEFAULT_THROTTLE_TIMEOUT  # seconds a call may go on being throttled
    fail_fast: bool = False
    poll_delay: float = 1.0
    max_polls: int = 60
    max_poll_wait: float = 120.0
    grace_s: float = 30.0  # how long an interrupted run waits for calls in flight


@dataclass(frozen=True)
class EntrySteps:
    """What the session adds around an entry's calls."""

    preflight_errors: Mapping[str, BackendError] = field(default_factory=dict)  # refused without a call
    # prepare: an entry's first work, before its first call (keys and CSRs made by pca-batch);
    # deliver: after its outputs are written (a new private key moved into place; True when moved)
    prepare: Callable[[Entry], Entry] | None = None
    deliver: Callable[[Entry], bool] | None = None
    # issued: what the journal's ``issued`` line says beside the ARN (manifest, outputs, replaces)
    issued: Callable[[Entry], Issued] | None = None
    # new_key: the ``key`` record written before IssueCertificate for an entry whose key is new;
    # lost_keys: keys earlier runs made on other runners, whose certificates are not on record: each
    # asked for again with its recorded CSR and token before the entry's first work, while the CA
    # still answers that token with what it issued (see pca_batch.plan.lostkeys)
    new_key: Callable[[Entry], KeyRecord | None] | None = None
    lost_keys: Callable[[Entry], Sequence[KeyRecord]] | None = None


@dataclass(frozen=True)
class Timing:
    """Time as the runner sees it; tests and the bench give fake clocks."""

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], object] | None = None  # None: real waits, which an interrupt cuts short
    rand: Callable[[], float] = random.random  # jitter of retry back-off


class _Interrupted(Exception):
    """The run is being interrupted: this worker makes no further call."""


@dataclass
class _Progress:
    attempts: int = 0  # IssueCertificate calls made, retries included
    arn: str | None = None
    issued: bool = False  # the ARN was issued during this run (not found in the journal)
    lost: list[str] = field(default_factory=list)  # certificates asked for again for keys lost with their runner
    unasked: list[KeyRecord] = field(default_factory=list)  # lost keys too old to ask for again


_Ready = tuple[int, Entry, _Progress]  # an entry of a batch, its place in it, how far it got


class Runner:
    def __init__(
        self,
        backend: Backend,
        journal: Recorder,
        *,
        base_dir: Path,
        config: RunConfig | None = None,
        steps: EntrySteps | None = None,
        timing: Timing | None = None,
    ) -> None:
        self._backend = backend
        self._journal = journal
        self._base_dir = base_dir
        self.config = config or RunConfig()
        self._steps = steps or EntrySteps()
        timing = timing or Timing()
        self._clock = timing.clock
        self._sleep = timing.sleep
        self._interrupt = threading.Event()
        self._stop_new = threading.Event()
        self._abandon = threading.Event()
        self._limits = RateLimits(self.config.max_rate, adaptive=self.config.adaptive, clock=timing.clock,
                                  sleep=self._wait, rand=timing.rand)
        policy = RetryPolicy(max_attempts=max(1, self.config.max_attempts),
                             throttle_timeout=max(0.0, self.config.throttle_timeout))
        self._retrier = Retrier(policy, sleep=self._wait, rand=timing.rand, clock=timing.clock)
        self._results: dict[int, Result] = {}
        self._slots = threading.BoundedSemaphore(max(1, self.config.concurrency))
        self.calls_left_running = False  # True when run() returned before calls in flight ended

    # -- control, from the main thread or a signal handler ---------------------------------

    @property
    def interrupted(self) -> bool:
        return self._interrupt.is_set()

    def learned_rates(self) -> list[LearnedRate]:
        """What the run's rate limiters learned (IssueCertificate, GetCertificate)."""
        return self._limits.learned()

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
        chunk = self._chunk_size(len(todo))
        slots = max(1, min(-(-self.config.concurrency // chunk), -(-len(todo) // chunk)))
        self._slots = threading.BoundedSemaphore(slots)
        pool = Pool(self._work_many if chunk > 1 else lambda entries: [self._work(entries[0])], todo, slots, chunk)
        clean = False
        # batches' files are fsynced together: by one set of threads for the whole run
        with fsync_helpers() if chunk > 1 else contextlib.nullcontext():
            try:
                self._drive(pool, on_result, on_tick)
                clean = True
            finally:
                self._shut_down(pool, clean)
        for index in range(pool.submitted, len(todo)):
            self._record(index, self._not_started(todo[index]), on_result)
        return self.results_for(todo)

    def _drive(
        self, pool: Pool, on_result: Callable[[Result], None] | None, on_tick: Callable[[], None] | None
    ) -> None:
        """Hand entries to the pool and record their results, until none is left or the wait ends."""
        while not self._abandon.is_set():
            pool.fill(self._stop_new)
            if not pool.futures:
                return
            try:
                ended = pool.ended(_TICK)
            except KeyboardInterrupt:  # no signal handler installed: same meaning
                self.request_stop()
                continue
            for future in ended:
                for index, result in pool.take(future):
                    self._record(index, result, on_result)
            if on_tick is not None:
                on_tick()
            if self._interrupt.is_set():
                pool.deadline = pool.deadline or time.monotonic() + self.config.grace_s
                if time.monotonic() >= pool.deadline:
                    return

    def _shut_down(self, pool: Pool, clean: bool) -> None:
        if not clean or pool.futures:  # a bug, the grace period or a second interrupt ended the wait
            self._stop_new.set()
            self._interrupt.set()
        # After the grace period or a second interrupt, calls in flight are left to
        # end on their own; otherwise wait for them (they start nothing new).
        gave_up = self._abandon.is_set() or pool.deadline is not None
        ended, self.calls_left_running = pool.shut_down(wait=not gave_up)
        self._results.update(ended)

    def _record(self, index: int, result: Result, on_result: Callable[[Result], None] | None) -> None:
        self._results[index] = result
        if result.status == FAILED and self.config.fail_fast:
            self._stop_new.set()
        if on_result is not None:
            on_result(result)

    def results_for(self, entries: list[Entry]) -> list[Result]:
        """The results so far in the entries' order. An entry without one ends ``skipped``, or
        ``failed`` (Interrupted) with its ARN when its certificate was issued during the run."""
        out: list[Result] = []
        for index, entry in enumerate(entries):
            found = self._results.get(index)
            if found is None:
                found = self._unfinished(entry)
            out.append(found)
        return out

    def _unfinished(self, entry: Entry) -> Result:
        why = "the run ended before this entry finished"
        state = _Progress()
        if entry.ca_arn and entry.token:  # an ARN it got is in the journal: say so
            state.arn = self._journal.lookup(entry.ca_arn, entry.token)
            state.issued = self._journal.recorded_here(entry.ca_arn, entry.token)
        return self._stopped(entry, why, state)

    def _chunk_size(self, entries: int) -> int:
        """Entries a worker takes together: 1, unless the backend issues in batches (the local CA),
        which then signs in worker processes started here, while this process has one thread."""
        if not isinstance(self._backend, BatchBackend) or entries < 2 * BATCH_MIN:
            return 1
        chunk = max(1, min(CHUNK_MAX, -(-self.config.concurrency // 2)))
        if chunk > 1:
            self._backend.start_signers()
        return chunk

    # -- the workers ---------------------------------------------------------------------------

    def _not_started(self, entry: Entry) -> Result:
        if self._interrupt.is_set():
            return self._skipped(entry, "the run was interrupted before this entry started", None)
        return self._skipped(entry, "not started: --fail-fast stopped the run after a failure", None,
                             code=FAIL_FAST)

    def _work(self, entry: Entry) -> Result:
        if self._stop_new.is_set():  # asked to stop while it waited in the queue: it does nothing at all
            return self._not_started(entry)
        refused = self._steps.preflight_errors.get(entry.name)
        if refused is not None:
            return self._failed(entry, refused, _Progress(), self._clock())
        state = _Progress()
        # The slot is held from the entry's first work (its key) to its certificate; files are
        # written outside. A failure is recorded before the slot is given back, so that with
        # --fail-fast the entry that takes the slot next sees the stop.
        with self._slots:
            if self._stop_new.is_set():
                return self._not_started(entry)
            started = self._clock()
            try:
                self._ask_for_lost_keys(entry, state)
                if self._steps.prepare is not None:
                    entry = self._steps.prepare(entry)
                bundle = self._issue_and_fetch(entry, state)
            except BackendError as err:
                return self._failed(entry, err, state, started)
            except RetryAborted as aborted:
                return self._stopped(entry, f"interrupted while waiting to retry after {aborted.last_error.code}",
                                     state, started)
            except _Interrupted:
                return self._stopped(entry, "interrupted", state, started)
        return self._finish(entry, bundle, state, started)

    def _work_many(self, entries: list[Entry]) -> list[Result]:
        """Several entries through each step together (a backend that issues in batches): each is
        prepared, then all are issued in one call, their ARNs journaled in one durable write,
        their certificates fetched, and their files written as one batch. Every promise of
        :meth:`_work` holds for each entry; one whose batched call failed in a way a retry may
        mend goes the one-by-one way."""
        done: dict[int, Result] = {}
        fetched: list[tuple[int, Entry, _Progress, CertificateBundle]] = []
        with self._slots:
            started = self._clock()
            ready = self._prepare_many(entries, done, started)
            self._issue_many(ready, done, started)
            for i, entry, state in ready:
                if i in done:
                    continue
                try:
                    assert entry.ca_arn is not None and state.arn is not None
                    fetched.append((i, entry, state, self._fetch(entry.ca_arn, state.arn)))
                except (BackendError, RetryAborted, _Interrupted) as exc:
                    done[i] = self._caught(entry, exc, state, started)
        written = write_outputs_many([(bundle, entry.outputs, entry.outputs.relative_to(self._base_dir))
                                      for _i, entry, _state, bundle in fetched])
        for (i, entry, state, _bundle), outcome in zip(fetched, written, strict=True):
            done[i] = self._delivered(entry, outcome, state, started)
        return [done[i] for i in range(len(entries))]

    def _prepare_many(self, entries: list[Entry], done: dict[int, Result], started: float) -> list[_Ready]:
        """Each entry's first work, in order (a stop or a failure with --fail-fast stops the rest)."""
        ready: list[_Ready] = []
        for i, entry in enumerate(entries):
            if self._stop_new.is_set():
                done[i] = self._not_started(entry)
                continue
            refused = self._steps.preflight_errors.get(entry.name)
            if refused is not None:
                done[i] = self._failed(entry, refused, _Progress(), started)
                continue
            state = _Progress()
            try:
                self._ask_for_lost_keys(entry, state)  # rare: one by one, before the entry's new key
                if self._steps.prepare is not None:
                    entry = self._steps.prepare(entry)
            except (BackendError, RetryAborted, _Interrupted) as exc:
                done[i] = self._caught(entry, exc, state, started)
                continue
            if entry.ca_arn is None or entry.token is None:
                raise ValueError(f"entry {entry.name} reached the runner without a CA ARN or a token")
            state.arn = self._journal.lookup(entry.ca_arn, entry.token)
            ready.append((i, entry, state))
        return ready

    def _issue_many(self, ready: list[_Ready], done: dict[int, Result], started: float) -> None:
        """IssueCertificate for the entries the journal has no ARN for, in one call; their ARNs
        recorded in the journal (one write, one fsync) before anything else happens to them."""
        assert isinstance(self._backend, BatchBackend)
        asking: list[_Ready] = []
        for i, entry, state in ready:
            if state.arn is not None:
                continue
            assert entry.ca_arn is not None
            if self._interrupt.is_set() or not self._limits.acquire(entry.ca_arn, ISSUE) or self._interrupt.is_set():
                done[i] = self._stopped(entry, "interrupted", state, started)
                continue
            asking.append((i, entry, state))
        self._record_new_keys([entry for _i, entry, _state in asking])
        answers = self._backend.issue_many([entry.api_request() for _i, entry, _state in asking]) if asking else []
        records: list[JournalRecord] = []
        recorded: list[_Ready] = []
        alone: list[_Ready] = []
        now = utc_now()  # the batch's answers came together
        for (i, entry, state), answer in zip(asking, answers, strict=True):
            state.attempts = 1
            if isinstance(answer, BackendError):
                if answer.retryable and self.config.max_attempts > 1:
                    alone.append((i, entry, state))
                else:
                    done[i] = self._failed(entry, answer, state, started)
                continue
            assert entry.ca_arn is not None and entry.token is not None
            records.append(JournalRecord(name=entry.name, token=entry.token, ca_arn=entry.ca_arn,
                                         certificate_arn=answer, time=now, issued=self._about(entry, state)))
            recorded.append((i, entry, state))
            state.arn, state.issued = answer, True
        try:
            self._journal.record_issued_many(records)
        except BackendError as err:  # the state could not record them (an s3 state's PUT failed)
            for i, entry, state in recorded:
                done[i] = self._failed(entry, err, state, started)
        for i, entry, state in alone:  # the one-by-one way, with its retries
            try:
                self._issue_and_fetch(entry, state)
            except (BackendError, RetryAborted, _Interrupted) as exc:
                done[i] = self._caught(entry, exc, state, started)

    def _record_new_keys(self, entries: list[Entry]) -> None:
        """The new keys' records (their existence, never their material), durably, before
        anything is sent for them (pca_batch.plan.lostkeys)."""
        if self._steps.new_key is None:
            return
        for entry in entries:
            new_key = self._steps.new_key(entry)
            if new_key is not None:
                self._journal.record_key(new_key)

    def _caught(self, entry: Entry, exc: BackendError | RetryAborted | _Interrupted, state: _Progress,
                started: float) -> Result:
        """The result of an entry whose call ended in ``exc``."""
        if isinstance(exc, BackendError):
            return self._failed(entry, exc, state, started)
        if isinstance(exc, RetryAborted):
            return self._stopped(entry, f"interrupted while waiting to retry after {exc.last_error.code}",
                                 state, started)
        return self._stopped(entry, "interrupted", state, started)

    def _issue_and_fetch(self, entry: Entry, state: _Progress) -> CertificateBundle:
        ca_arn, token = entry.ca_arn, entry.token
        if ca_arn is None or token is None:
            raise ValueError(f"entry {entry.name} reached the runner without a CA ARN or a token")
        state.arn = self._journal.lookup(ca_arn, token)
        if state.arn is None:
            new_key = self._steps.new_key(entry) if self._steps.new_key is not None else None
            if new_key is not None:  # durably, before anything is sent for it
                self._journal.record_key(new_key)
            arn = self._issue(ca_arn, entry.api_request(), state)
            self._journal.record_issued(name=entry.name, token=token, ca_arn=ca_arn, certificate_arn=arn,
                                        issued=self._about(entry, state))
            state.arn, state.issued = arn, True
        return self._fetch(ca_arn, state.arn)

    def _issue(self, ca_arn: str, request: Mapping[str, object], state: _Progress) -> str:
        def issue() -> str:
            state.attempts += 1
            return self._backend.issue_certificate(request)

        return self._retrier.call(lambda: self._paced(ca_arn, ISSUE, issue))

    def _about(self, entry: Entry, state: _Progress) -> Issued:
        """What the ``issued`` record says beside the ARN; after certificates asked for again for
        lost keys, the newest of them is the one this certificate replaces (revoke_replaced)."""
        about = self._steps.issued(entry) if self._steps.issued is not None else Issued()
        if state.lost and entry.revoke_replaced is not None:
            about = replace(about, replaces=state.lost[-1])
        return about

    def _ask_for_lost_keys(self, entry: Entry, state: _Progress) -> None:
        """The certificate each lost key's run got, asked for again with its recorded CSR and token
        (the CA answers the same token with the same certificate: pca_batch.plan.lostkeys) and
        recorded as issued, its key lost."""
        lost = self._steps.lost_keys(entry) if self._steps.lost_keys is not None else ()
        for record in lost:
            arn = self._journal.lookup(record.ca_arn, record.token)
            if arn is None and not lostkeys.resendable(record, datetime.now(UTC)):
                state.unasked.append(record)  # the same token would issue a new certificate now
                continue
            if arn is None:
                request = {**(entry.request or {}), "Csr": record.csr.encode("ascii"),
                           "CertificateAuthorityArn": record.ca_arn, "IdempotencyToken": record.token}
                arn = self._issue(record.ca_arn, request, state)
                about = replace(self._about(entry, state), key_lost=True)
                self._journal.record_issued(name=entry.name, token=record.token, ca_arn=record.ca_arn,
                                            certificate_arn=arn, issued=about)
            state.lost.append(arn)

    def _paced(self, ca_arn: str, kind: str, call: Callable[[], T]) -> T:
        """One ``kind`` call, once the rate limiter grants it a start (its answer teaches the limiter)."""
        if self._interrupt.is_set():
            raise _Interrupted()

        def unless_interrupted() -> T:
            if self._interrupt.is_set():
                raise _Interrupted()
            return call()

        try:
            return self._limits.call(ca_arn, kind, unless_interrupted)
        except WaitInterrupted:
            raise _Interrupted() from None

    def _fetch(self, ca_arn: str, arn: str) -> CertificateBundle:
        first = self._clock()
        polls = 0

        def get() -> CertificateBundle:
            return self._paced(ca_arn, GET, lambda: self._backend.get_certificate(ca_arn, arn))

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
        try:
            written: tuple[CertificateFacts, bool] | BackendError = write_outputs(
                bundle, entry.outputs, dict(self._base(entry).outputs))
        except BackendError as err:
            written = err
        return self._delivered(entry, written, state, started)

    def _delivered(self, entry: Entry, written: tuple[CertificateFacts, bool] | BackendError, state: _Progress,
                   started: float) -> Result:
        """The result of an entry whose files were written (or not: ``written`` is the error)."""
        try:
            if isinstance(written, BackendError):
                raise written
            facts, changed = written
            changed = self._deliver(entry) or changed
        except BackendError as err:
            return self._failed(entry, err, state, started)
        # Issued when IssueCertificate was called; recovered when the journal's certificate was
        # fetched and written again; unchanged when the files already held it.
        status = ISSUED if state.attempts else RECOVERED if changed else UNCHANGED
        return Result(  # base_result's fields, and what happened (built at once: a run makes thousands)
            name=entry.name, status=status, certificate_authority_arn=entry.ca_arn,
            idempotency_token=entry.token, line=entry.line, outputs=entry.outputs.relative_to(self._base_dir),
            reason=_lost_reason(state) if state.lost or state.unasked else None,
            certificate_arn=state.arn, serial=facts.serial, not_before=facts.not_before,
            not_after=facts.not_after, attempts=state.attempts, duration_s=self._elapsed(started),
        )

    def _deliver(self, entry: Entry) -> bool:
        if self._steps.deliver is None:
            return False
        try:
            return self._steps.deliver(entry)
        except OSError as exc:
            where = self._base(entry).outputs.get("private_key") or "its place"
            raise BackendError(OUTPUT_ERROR, f"cannot move the new private key to {where}: "
                                             f"{exc.strerror or exc}") from exc

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

    def _stopped(self, entry: Entry, why: str, state: _Progress, started: float | None = None) -> Result:
        """An entry the stop caught: ``failed`` (Interrupted) when its certificate was issued during
        the run (never ``skipped``: a certificate exists without its files), else ``skipped``."""
        if state.issued:
            unwritten = BackendError(INTERRUPTED, _UNWRITTEN.format(why=why))
            return self._failed(entry, unwritten, state, self._clock() if started is None else started)
        hint = "; its certificate ARN is in the journal: run again to fetch it" if state.arn else ""
        return self._skipped(entry, why + hint, state, started)

    def _skipped(
        self, entry: Entry, message: str, state: _Progress | None, started: float | None = None,
        *, code: str = INTERRUPTED,
    ) -> Result:
        return replace(
            self._base(entry), status=SKIPPED, certificate_arn=state.arn if state else None,
            attempts=state.attempts if state else 0, duration_s=self._elapsed(started),
            error_code=code, error_message=message,
        )


def _lost_reason(state: _Progress) -> str:
    parts = [lostkeys.NOT_HERE]
    if state.lost:
        serials = ", ".join(_serial(a) for a in state.lost)
        parts.append(f"the certificate issued for the lost key (serial {serials}) is recorded as replaced")
    parts += [lostkeys.unasked(k) for k in state.unasked]
    return "; ".join(parts)


def _serial(arn: str) -> str:
    try:
        return serial_hex(serial_of_arn(arn))
    except ValueError:
        return arn


def base_result(entry: Entry, base_dir: Path) -> Result:
    """An entry's result before anything happened (``skipped``), outputs relative to ``base_dir``."""
    return Result(
        name=entry.name, status=SKIPPED, certificate_authority_arn=entry.ca_arn,
        idempotency_token=entry.token, line=entry.line,
        outputs=entry.outputs.relative_to(base_dir),
    )
