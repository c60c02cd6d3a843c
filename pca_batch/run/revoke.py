"""RevokeCertificate for ``pca-batch revoke``, ``apply --prune`` and ``revoke_replaced``.

Each revocation is RevokeCertificate through the one retry path, paced by the run's
rate limiter (RevokeCertificate has a quota of its own), then a ``revoked`` journal
line made durable, then, for an orphan, its files removed. A certificate the journal
already records as revoked is not asked again. A crash between the call and the line
is mended by the next run: the CA answers that it is revoked already
(RequestAlreadyProcessedException, which the aws backend takes as done) and the line
is written then. So a re-run neither revokes twice nor forgets one.

Workers return results; the calling thread alone hands them on (``on_result``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pca_batch import files
from pca_batch.errors import EXIT_FAILED, EXIT_OK, BackendError, UsageError, suggestion
from pca_batch.model import FAILED, REVOKED, SKIPPED, ApplyOptions, Manifest, Result
from pca_batch.plan.prune import Revocation
from pca_batch.run.journal import Event, JournalRecord, Recorder, RevocationRecord
from pca_batch.run.ratelimit import REVOKE, LearnedRate, RateLimits, WaitInterrupted, learned_lines
from pca_batch.run.retry import DEFAULT_MAX_ATTEMPTS, DEFAULT_THROTTLE_TIMEOUT, Retrier, RetryAborted, RetryPolicy

if TYPE_CHECKING:
    from rich.console import Console

    from pca_batch.acmpca import RevocationReason
    from pca_batch.backends import Backend
    from pca_batch.run.runner import RunConfig

ALREADY = "RequestAlreadyProcessedException"
IN_PROGRESS = "RequestInProgressException"
INTERRUPTED = "Interrupted"
OUTPUT_ERROR = "OutputError"


@dataclass(frozen=True)
class RevokeConfig:
    concurrency: int = 16
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_rate: float | None = None  # RevokeCertificate calls a second per region at most; None: no ceiling
    adaptive: bool = False  # learn the rate below the ceiling from throttles (aws)
    throttle_timeout: float = DEFAULT_THROTTLE_TIMEOUT  # seconds a call may go on being throttled


def revoke_config(run: RunConfig) -> RevokeConfig:
    """RevokeCertificate's settings: the run's."""
    return RevokeConfig(concurrency=run.concurrency, max_attempts=run.max_attempts, max_rate=run.max_rate,
                        adaptive=run.adaptive, throttle_timeout=run.throttle_timeout)


class Revoker:
    """Revokes certificates, each at most once, concurrently; safe to re-run after a crash."""

    def __init__(self, backend: Backend | None, journal: Recorder, config: RevokeConfig | None = None,
                 *, stop: threading.Event | None = None) -> None:
        self._backend = backend  # None only when no revocation needs a call
        self._journal = journal
        self.config = config or RevokeConfig()
        self._stop = stop or threading.Event()
        self._limits = RateLimits(self.config.max_rate, adaptive=self.config.adaptive, sleep=self._wait)
        policy = RetryPolicy(max_attempts=max(1, self.config.max_attempts),
                             throttle_timeout=max(0.0, self.config.throttle_timeout))
        self._retrier = Retrier(policy, sleep=self._wait)

    def request_stop(self) -> None:
        """Start no new revocation; calls in flight end."""
        self._stop.set()

    @property
    def interrupted(self) -> bool:
        return self._stop.is_set()

    def learned_rates(self) -> list[LearnedRate]:
        """What the RevokeCertificate rate limiters learned."""
        return self._limits.learned()

    def _wait(self, seconds: float) -> bool:
        return self._stop.wait(max(0.0, seconds))

    def run(self, items: Sequence[Revocation], on_result: Callable[[Result], None] | None = None) -> list[Result]:
        """Every item's result, in the items' order."""
        if not items:
            return []
        results: list[Result | None] = [None] * len(items)
        workers = max(1, min(self.config.concurrency, sum(1 for i in items if i.needs_call) or 1))
        with ThreadPoolExecutor(workers, thread_name_prefix="pca-batch-revoke") as pool:
            futures = {pool.submit(self.revoke, item): n for n, item in enumerate(items)}
            pending = set(futures)
            while pending:
                try:
                    for future in as_completed(pending):
                        pending.discard(future)
                        result = results[futures[future]] = future.result()
                        if on_result is not None:
                            on_result(result)
                except KeyboardInterrupt:  # no signal handler installed: the same as a stop
                    self.request_stop()
        return [r for r in results if r is not None]

    def revoke(self, item: Revocation) -> Result:
        """Revoke one certificate (unless the journal says it is revoked), record it, remove its files."""
        started = time.monotonic()
        if self._stop.is_set():
            return _failed(item, started, SKIPPED, INTERRUPTED, "the run was interrupted before this revocation")
        note = None
        attempts = 0
        if item.needs_call:
            counter = _Attempts()
            try:
                self._call(item, counter)
            except BackendError as exc:
                return replace(_failed(item, started, FAILED, exc.code, exc.message), attempts=counter.made)
            except RetryAborted as aborted:
                return _failed(item, started, SKIPPED, INTERRUPTED,
                               f"interrupted while waiting to retry after {aborted.last_error.code}")
            attempts = counter.made
            try:
                self._journal.record_revoked(name=item.name, ca_arn=item.issued.ca_arn,
                                             certificate_arn=item.issued.certificate_arn, reason=item.reason)
            except BackendError as exc:  # the state could not be written (s3): the next run asks the CA again
                return replace(_failed(item, started, FAILED, exc.code, exc.message), attempts=attempts)
        elif item.revoked is not None:
            note = f"already revoked {item.revoked.time}"
        try:
            removed = files.remove_durably(item.remove)
        except OSError as exc:
            message = f"revoked, but its files could not be removed: {exc.strerror or exc}; the next run tries again"
            return replace(_failed(item, started, FAILED, OUTPUT_ERROR, message), attempts=attempts)
        reason = item.revoked.reason if item.revoked is not None else item.reason
        removed_note = f"{len(removed)} file(s) removed" if removed else None
        note = "; ".join(filter(None, [item.why, note, removed_note, *item.kept])) or None
        return Result(
            name=item.name, status=REVOKED, certificate_authority_arn=item.issued.ca_arn,
            certificate_arn=item.issued.certificate_arn, serial=item.serial, outputs=item.outputs,
            revocation_reason=reason, attempts=attempts, duration_s=time.monotonic() - started,
            action="revoke", reason=note,
        )

    def _call(self, item: Revocation, counter: _Attempts) -> None:
        """RevokeCertificate, retried; RequestAlreadyProcessedException is success."""
        assert self._backend is not None, "a revocation that needs a call, without a backend"
        backend, ca_arn = self._backend, item.issued.ca_arn

        def once() -> None:
            if self._stop.is_set():
                raise WaitInterrupted()
            counter.made += 1
            try:
                backend.revoke_certificate(ca_arn, item.serial, item.reason)
            except BackendError as exc:
                if exc.code == IN_PROGRESS:  # an earlier attempt is still being done: ask again (then: done)
                    raise _InProgress(exc.code, exc.message, status=exc.status) from exc
                raise

        def call() -> None:
            if self._stop.is_set():
                raise RetryAborted(BackendError(INTERRUPTED, "interrupted"))
            try:
                self._limits.call(ca_arn, REVOKE, once)
            except WaitInterrupted:
                raise RetryAborted(BackendError(INTERRUPTED, "interrupted")) from None

        try:
            self._retrier.call(call)
        except BackendError as exc:
            if exc.code != ALREADY:
                raise


class _InProgress(BackendError):
    """RequestInProgressException on RevokeCertificate: retried like throttling, until the CA
    answers that it is done (RequestAlreadyProcessedException) or the attempts run out."""

    @property
    def retryable(self) -> bool:
        return True


@dataclass
class _Attempts:
    made: int = 0


def _failed(item: Revocation, started: float, status: str, code: str, message: str) -> Result:
    return Result(
        name=item.name, status=FAILED if status == FAILED else SKIPPED, certificate_authority_arn=item.issued.ca_arn,
        certificate_arn=item.issued.certificate_arn, serial=item.serial, outputs=item.outputs,
        duration_s=time.monotonic() - started, error_code=code, error_message=message, action="revoke",
    )


# -- pca-batch revoke ----------------------------------------------------------------------------


def targets(manifest: Manifest, names: Sequence[str], events: Sequence[Event], where: str,
            reason: RevocationReason) -> list[Revocation]:
    """The current certificate of each name (in the order given, each once), by the state's
    ``events`` (read from ``where``); UsageError naming every name that is not an entry of the
    manifest or has no certificate on record."""
    current: dict[str, JournalRecord] = {}
    revoked: dict[str, RevocationRecord] = {}
    for event in events:
        if isinstance(event, JournalRecord):
            if event.issued.manifest in (None, manifest.path.name):
                current[event.name] = event
        elif isinstance(event, RevocationRecord):
            revoked[event.certificate_arn] = event
    known = [e.name for e in manifest.entries]
    problems = []
    for name in dict.fromkeys(names):
        if name not in known:
            problems.append(f"{name}: no entry of that name in {manifest.display}{suggestion(name, known)}")
        elif name not in current:
            problems.append(f"{name}: no certificate on record in {where} (never issued by pca-batch)")
    if problems:
        raise UsageError("pca-batch revoke: nothing revoked:\n  " + "\n  ".join(problems))
    return [
        Revocation(name=name, issued=current[name], reason=reason, revoked=revoked.get(current[name].certificate_arn))
        for name in dict.fromkeys(names)
    ]


def run_revoke(manifest: Manifest, names: Sequence[str], reason: RevocationReason, options: ApplyOptions,
               console: Console) -> int:
    """Revoke the named entries' current certificates; 0 when every one is revoked, 1 otherwise."""
    from pca_batch.report.json_report import summary_line, write_report
    from pca_batch.report.live import plain_line
    from pca_batch.report.text import write_lines
    from pca_batch.run.settings import open_for_run, resolve_config
    from pca_batch.state import ALL, open_state

    state = open_state(manifest, options)
    results: list[Result] = []
    rates: list[LearnedRate] = []
    try:
        with state.locked("revoke", ALL, options.lock_timeout):
            view = state.read()
            chosen = targets(manifest, names, view.events, state.display, reason)
            run = resolve_config(manifest.backend, manifest.settings, options)
            config = revoke_config(run)
            needs_call = any(t.needs_call for t in chosen)
            backend = open_for_run(manifest.backend, manifest.settings, options) if needs_call else None
            try:
                with contextlib.closing(state.open_recorder(view)) as journal:
                    revoker = Revoker(backend, journal, config)
                    try:
                        results = revoker.run(chosen, on_result=lambda r: write_lines(console, [plain_line(r)]))
                    finally:
                        rates = revoker.learned_rates()
            finally:
                if backend is not None:
                    backend.close()
                if options.report is not None:
                    write_report(options.report, results, rates)
    finally:
        state.close()
    write_lines(console, [summary_line(results), *learned_lines(rates)])
    return EXIT_OK if results and all(r.status == REVOKED for r in results) else EXIT_FAILED
