"""``pca-batch apply`` for real (not ``--plan``): settings, backend, journal, run, reports.

Settings resolve command line > manifest ``settings:`` > defaults (concurrency
16, max_attempts 8, max_rate 20 a second for the aws backend and unlimited
for the local one; 0 lifts the limit). Entries that preflight finds AWS would
refuse fail without an IssueCertificate call. SIGINT and SIGTERM stop the run
gracefully (see :class:`pca_batch.run.runner.Runner`); the JSON report, the JUnit
file and the GitHub summary are written whatever happens, also after a failure
or an interrupt.
"""

from __future__ import annotations

import contextlib
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING

from pca_batch.backends import Backend, Opening, open_backend
from pca_batch.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from pca_batch.files import flush_renames
from pca_batch.model import FAILED, ApplyOptions, BackendConfig, Entry, Manifest, Result, RunSettings
from pca_batch.plan import converge
from pca_batch.plan.preflight import preflight
from pca_batch.report import github
from pca_batch.report.json_report import write_report
from pca_batch.report.junit import write_junit
from pca_batch.report.live import LiveReport, plain_line, print_final
from pca_batch.report.text import write_lines
from pca_batch.run.journal import Journal, default_journal_path
from pca_batch.run.ratelimit import DEFAULT_AWS_RATE
from pca_batch.run.retry import DEFAULT_MAX_ATTEMPTS
from pca_batch.run.runner import DEFAULT_CONCURRENCY, RunConfig, Runner, base_result

if TYPE_CHECKING:
    from rich.console import Console

NOT_STARTED = "NotStarted"


def resolve_config(backend: BackendConfig, settings: RunSettings, options: ApplyOptions) -> RunConfig:
    """Command line > manifest settings > defaults."""

    def pick(cli: float | None, file: float | None, default: float | None) -> float | None:
        return cli if cli is not None else file if file is not None else default

    rate_default = DEFAULT_AWS_RATE if backend.type == "aws" else None
    max_rate = pick(options.max_rate, settings.max_rate, rate_default)
    concurrency = pick(options.concurrency, settings.concurrency, DEFAULT_CONCURRENCY)
    attempts = pick(options.max_attempts, settings.max_attempts, DEFAULT_MAX_ATTEMPTS)
    return RunConfig(
        concurrency=max(1, int(concurrency or 1)),
        max_attempts=max(1, int(attempts or 1)),
        max_rate=max_rate if max_rate else None,  # 0 lifts the limiter
        fail_fast=options.fail_fast,
    )


def open_for_run(config: BackendConfig, settings: RunSettings, options: ApplyOptions) -> Backend:
    """The run's backend: command-line values over the manifest's, a connection pool as large
    as the concurrency."""
    return open_backend(
        config, store=options.store, region=options.region, profile=options.profile,
        endpoint_url=options.endpoint_url,
        max_pool_connections=max(resolve_config(config, settings, options).concurrency, 10),
    )


def start_opening(config: BackendConfig, settings: RunSettings, options: ApplyOptions) -> Opening | None:
    """Open the aws backend in the background while the manifest's entries are read (its
    opening changes nothing; the local store is made only once the manifest is valid)."""
    if config.type != "aws":
        return None

    def open_it() -> Backend:
        backend = open_for_run(config, settings, options)
        warm = getattr(backend, "warm", None)
        if warm is not None:
            warm()
        return backend

    return Opening(open_it)


@contextlib.contextmanager
def _graceful_signals(runner: Runner) -> Iterator[None]:
    """SIGINT/SIGTERM ask the runner to stop (a second one: stop waiting); restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        runner.request_stop()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def exit_code(results: list[Result], interrupted: bool) -> int:
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if any(r.status == FAILED for r in results) else EXIT_OK


def execute(
    manifest: Manifest,
    options: ApplyOptions,
    console: Console,
    *,
    backend: Backend | None = None,
    sleep: Callable[[float], object] | None = None,
    clock: Callable[[], float] = time.monotonic,
    rand: Callable[[], float] = random.random,
    env: Mapping[str, str] | None = None,
    opening: Opening | None = None,
) -> int:
    """Issue every valid entry of ``manifest``; returns the exit status (0, 1 or 130).

    ``backend``, ``sleep``, ``clock``, ``rand`` and ``env`` are for tests and the bench:
    by default the manifest's backend, real time and the process environment.
    ``opening`` is the backend being opened in the background (see start_opening).
    """
    valid: list[Entry] = [e for e in manifest.entries if e.valid]
    config = resolve_config(manifest.backend, manifest.settings, options)
    base_dir = manifest.path.parent
    started = time.monotonic()
    journal_path = options.journal or default_journal_path(manifest.path)
    # What is on disk decides: unchanged entries make no call at all.
    steps = converge.decide_all(valid, journal_path, now=datetime.now(UTC), force=options.force, env=env)
    settled = {s.entry.name: converge.unchanged_result(s, base_dir) for s in steps if s.decision.action == "unchanged"}
    by_name = {s.entry.name: s for s in steps}
    if settled and not console.is_terminal:  # logs get a line for every entry, unchanged ones too
        write_lines(console, [plain_line(r) for r in settled.values()])
    entries = [s.entry for s in steps if s.entry.name not in settled]
    runner: Runner | None = None
    results: list[Result] | None = None
    own_backend = backend is None
    try:
        if not entries:  # nothing to issue: no backend, no call
            results = []
            return exit_code(_in_order(valid, settled, []), False)
        described = None
        if backend is None:
            if opening is not None:
                backend, described, opening = opening.take(), opening.described(), None
            else:
                backend = open_for_run(manifest.backend, manifest.settings, options)
        refused = preflight(entries, backend, described=described)
        journal = Journal(journal_path)
        if journal.damaged_lines:
            write_lines(console, [f"journal {journal.path}: skipped {journal.damaged_lines} damaged line(s), "
                                  "as a crash in mid-write leaves"])
        try:
            runner = Runner(backend, journal, base_dir=base_dir, config=config, preflight_errors=refused,
                            prepare=lambda e: converge.prepare(by_name[e.name], env),
                            deliver=converge.deliver_key, clock=clock, sleep=sleep, rand=rand)
            with _graceful_signals(runner), LiveReport(console, len(entries)) as live:
                results = runner.run(entries, on_result=live.advance, on_tick=live.tick)
        finally:
            # A call still in flight after we stopped waiting may yet return an ARN: its
            # thread must still find the journal open (the process's exit closes it).
            if runner is None or not runner.calls_left_running:
                journal.close()
    finally:
        if opening is not None:  # not needed after all
            opening.discard()
        if results is None:  # something went wrong before or while running: report what we have
            if runner is not None:
                results = runner.results_for(entries)
            else:
                results = [
                    replace(base_result(e, base_dir), error_code=NOT_STARTED,
                            error_message="the run did not start")
                    for e in entries
                ]
        interrupted = runner is not None and runner.interrupted
        with contextlib.suppress(OSError):
            flush_renames()  # the outputs' renames, durable before the report says so
        results = _in_order(valid, settled, results)
        _write_reports(manifest, options, console, results, time.monotonic() - started, env)
        print_final(console, results, time.monotonic() - started, interrupted=interrupted)
        if own_backend and backend is not None and not (runner and runner.calls_left_running):
            backend.close()
    return exit_code(results, interrupted)


def _in_order(valid: list[Entry], settled: Mapping[str, Result], ran: list[Result]) -> list[Result]:
    """Every entry's result in manifest order: the unchanged ones and those that ran."""
    by_name = {r.name: r for r in ran}
    by_name.update(settled)
    return [by_name[e.name] for e in valid if e.name in by_name]


def _write_reports(
    manifest: Manifest,
    options: ApplyOptions,
    console: Console,
    results: list[Result],
    elapsed_s: float,
    env: Mapping[str, str] | None,
) -> None:
    if options.report is not None:
        write_report(options.report, results)
    if options.junit is not None:
        write_junit(options.junit, results, suite=manifest.display, elapsed_s=elapsed_s)
    github.report_to_github(results, manifest_path=manifest.path, display=manifest.display,
                            console=console, env=env)
