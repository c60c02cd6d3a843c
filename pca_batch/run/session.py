"""``pca-batch apply`` for real (not ``--plan``): settings, backend, journal, run, reports.

Settings resolve command line > manifest ``settings:`` > defaults (see
pca_batch.run.settings). Entries that preflight finds AWS would
refuse fail without an IssueCertificate call. Once the outputs are durable, the
certificates that renewals replaced (``revoke_replaced``) and, with ``--prune``,
those of names the manifest no longer lists are revoked (pca_batch.run.retire).
SIGINT and SIGTERM stop the run gracefully (see :class:`pca_batch.run.runner.Runner`);
the JSON report, the JUnit file and the GitHub summary are written whatever happens,
also after a failure or an interrupt.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING

from pca_batch.backends import Backend, Opening
from pca_batch.backends.base import CaDescription, CertificateBundle
from pca_batch.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, BackendError, PcaBatchError
from pca_batch.files import flush_renames
from pca_batch.model import (
    FAILED,
    SKIPPED,
    ApplyOptions,
    BackendConfig,
    Entry,
    Manifest,
    Outputs,
    Result,
    RunSettings,
)
from pca_batch.plan import converge, guard
from pca_batch.plan.preflight import preflight
from pca_batch.plan.prune import Revocation, find_orphans
from pca_batch.plan.renewal import IssuedIndex
from pca_batch.report import github
from pca_batch.report.json_report import write_report
from pca_batch.report.live import LiveReport, plain_line, print_final
from pca_batch.report.text import write_lines
from pca_batch.run.delivery import OUTPUT_ERROR, make_durable, write_outputs
from pca_batch.run.describe import Describer
from pca_batch.run.journal import Issued
from pca_batch.run.ratelimit import LearnedRate, learned_lines
from pca_batch.run.runner import EntrySteps, Runner, base_result
from pca_batch.run.settings import open_for_run, resolve_config
from pca_batch.state import ALL, LockHeld, State, StateError, StateView, open_state, scope_of

if TYPE_CHECKING:
    from rich.console import Console

    from pca_batch.plan import adopt

# Imported where used, not here: adopt (apply --adopt), the JUnit writer (--junit) and the
# revocations after a run (revoke_replaced, --prune). A run without them does not load them.

Described = Mapping[str, CaDescription | BackendError]  # CAs the background opening described already
NOT_STARTED = "NotStarted"
MAX_ISSUE = "MaxIssueExceeded"
STATE_LOCKED = "StateLocked"  # another run holds the state's lock
STATE_UNAVAILABLE = "StateUnavailable"  # the state cannot be read (or its place does not exist)


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

    return Opening(open_it, Describer(resolve_config(config, settings, options)))


@contextlib.contextmanager
def _graceful_signals(request_stop: Callable[[], None]) -> Iterator[None]:
    """SIGINT/SIGTERM ask the run to stop (a second one: stop waiting); restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        request_stop()

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


@dataclass(frozen=True)
class _Decided:
    """What is on disk decided for the manifest's valid entries."""

    valid: list[Entry]
    settled: dict[str, Result]  # unchanged: no call at all
    steps: dict[str, converge.Step]  # by entry name
    todo: list[Entry]  # the entries to run
    state: State
    view: StateView  # the state as read once the lock was taken
    orphans: list[Revocation]  # certificates on record for names the manifest no longer lists
    index: IssuedIndex  # the journal as read before the run


def _decide(manifest: Manifest, options: ApplyOptions, console: Console,
            env: Mapping[str, str] | None, state: State) -> _Decided:
    valid: list[Entry] = [e for e in manifest.entries if e.valid]
    view = state.read()
    index = IssuedIndex.from_events(view.events)
    steps = converge.decide_all(valid, index, now=datetime.now(UTC), force=options.force, env=env)
    base_dir = manifest.path.parent
    settled = {s.entry.name: converge.unchanged_result(s, base_dir) for s in steps if s.decision.action == "unchanged"}
    if settled and not console.is_terminal:  # logs get a line for every entry, unchanged ones too
        write_lines(console, [plain_line(r) for r in settled.values()])
    todo = [s.entry for s in steps if s.entry.name not in settled]
    orphans = find_orphans(manifest, index)
    return _Decided(valid, settled, {s.entry.name: s for s in steps}, todo, state, view, orphans, index)


class _Session:
    """One ``apply``: its steps, and what they share (the backend, the runner, the results)."""

    def __init__(self, manifest: Manifest, options: ApplyOptions, console: Console,
                 env: Mapping[str, str] | None, prune: Sequence[Revocation] = ()) -> None:
        self.manifest = manifest
        self.prune = prune  # the orphans to revoke (apply --prune)
        self.stop_revoking = threading.Event()
        self.options = options
        self.console = console
        self.env = env
        self.started = time.monotonic()
        self.base_dir = manifest.path.parent
        self.backend: Backend | None = None
        self.own_backend = False  # opened here, so closed here
        self.runner: Runner | None = None
        self.results: list[Result] | None = None
        self.retire_error: PcaBatchError | None = None  # raised once the reports are written
        self.config = resolve_config(manifest.backend, manifest.settings, options)
        self.describer = Describer(self.config)
        self.rates: list[LearnedRate] = []  # what the rate limiters learned, for the log and the report

    def open_backend(self, given: Backend | None, opening: Opening | None) -> Described | None:
        """The backend to run with; returns the CAs the opening described already, if any."""
        if given is not None:
            self.backend = given
            return None
        self.own_backend = True
        if opening is not None:
            self.backend = opening.take()
            self.describer = opening.describer or self.describer
            return opening.described()
        self.backend = open_for_run(self.manifest.backend, self.manifest.settings, self.options)
        return None

    def run(self, decided: _Decided, described: Described | None) -> None:
        """Preflight, then every entry to run, with a live report and graceful signals."""
        assert self.backend is not None
        backend = self.backend
        try:
            refused = preflight(decided.todo, backend, described=described,
                                describe=lambda arn: self.describer.describe(backend, arn))
        finally:
            self.rates += self.describer.learned_rates()
        journal = decided.state.open_recorder(decided.view)
        if journal.damaged_lines:
            write_lines(self.console, [f"journal {decided.state.display}: skipped {journal.damaged_lines} damaged "
                                       "line(s), "
                                       "as a crash in mid-write leaves"])
        env = self.env
        manifest_file = self.manifest.path.name
        steps = EntrySteps(preflight_errors=refused, prepare=lambda e: converge.prepare(decided.steps[e.name], env),
                           deliver=converge.deliver_key, issued=self._issued_line(decided),
                           new_key=lambda e: converge.key_record(e, manifest_file),
                           lost_keys=lambda e: decided.steps[e.name].decision.lost_keys)
        try:
            self.runner = Runner(self.backend, journal, base_dir=self.base_dir, config=self.config, steps=steps)
            with _graceful_signals(self.runner.request_stop), LiveReport(self.console, len(decided.todo)) as live:
                self.results = self.runner.run(decided.todo, on_result=live.advance, on_tick=live.tick)
        finally:
            if self.runner is not None:
                self.rates += self.runner.learned_rates()
            # A call still in flight after we stopped waiting may yet return an ARN: its
            # thread must still find the journal open (the process's exit closes it).
            if not self.calls_left_running:
                journal.close()

    def adopt_files(self, decided: _Decided, given: Backend | None,
                    opening: Opening | None) -> tuple[_Decided, Described | None]:
        """apply --adopt: the entries to renew only because the state has no record of their
        certificate file are judged first (pca_batch.plan.adopt); those that fit are recorded,
        their missing chain files written, and they are unchanged. Opens the backend when there
        is any; returns what its opening described."""
        from pca_batch.plan import adopt

        steps = [decided.steps[e.name] for e in decided.todo]
        if not adopt.candidates(steps):
            return decided, None
        described = self.open_backend(given, opening)
        assert self.backend is not None
        run = resolve_config(self.manifest.backend, self.manifest.settings, self.options)
        cas = adopt.CaCertificates(self.backend, run.max_attempts)
        judged = adopt.judge(steps, cas, self.base_dir, now=datetime.now(UTC), env=self.env)
        fits = [j for j in judged if j.adoptable]
        settled = dict(decided.settled)
        if fits:
            line = self._issued_line(decided)
            with contextlib.closing(decided.state.open_recorder(decided.view)) as journal:
                for j in fits:
                    entry = j.step.entry
                    assert entry.ca_arn is not None and j.expected is not None
                    journal.record_issued(name=entry.name, token=j.expected.token, ca_arn=entry.ca_arn,
                                          certificate_arn=j.certificate_arn, issued=line(entry))
            settled |= {j.step.entry.name: self._adopted(j, cas) for j in fits}
            if not self.console.is_terminal:
                write_lines(self.console, [f"{plain_line(settled[j.step.entry.name])}  adopted" for j in fits])
        steps_now = dict(decided.steps) | {j.step.entry.name: adopt.not_adopted(j.step, j) for j in judged
                                           if not j.adoptable}
        todo = [e for e in decided.todo if e.name not in settled]
        return replace(decided, settled=settled, steps=steps_now, todo=todo), described

    def _adopted(self, judged: adopt.Judged, cas: adopt.CaCertificates) -> Result:
        """The row of an adopted entry, once its chain files (from the CA's certificate) are in place."""
        from pca_batch.plan import adopt

        result = adopt.adopted_result(judged, self.base_dir)
        entry = judged.step.entry
        assert judged.certificate is not None and entry.ca_arn is not None
        wanted = Outputs(chain=entry.outputs.chain, full_chain=entry.outputs.full_chain)
        if not wanted.items():
            return result
        try:
            _ca, chain = cas.get(entry.ca_arn)
            write_outputs(CertificateBundle(judged.leaf_pem, chain), wanted, dict(result.outputs))
            flush_renames()
        except (BackendError, OSError) as exc:
            message = exc.message if isinstance(exc, BackendError) else (exc.strerror or str(exc))
            return replace(result, status=FAILED, error_code=OUTPUT_ERROR,
                           error_message=f"adopted (recorded), but its chain files could not be written: {message}; "
                                         "the next apply writes them")
        return result

    def guard(self, decided: _Decided) -> None:
        """--max-issue: refuse before any call when too many would be issued (the report says
        every entry to run was skipped)."""
        limit, source = guard.limit_of(self.options.max_issue, self.manifest.settings.max_issue)
        try:
            guard.check([decided.steps[e.name] for e in decided.todo], decided.index, limit=limit, source=source,
                        state=decided.state.display)
        except guard.IssueGuardError as exc:
            skipped = [replace(base_result(e, self.base_dir), status=SKIPPED, error_code=MAX_ISSUE,
                               error_message=str(exc)) for e in decided.todo]
            self._write_reports(_in_order(decided.valid, decided.settled, skipped))
            raise

    def refused(self, error: StateError) -> None:
        """The reports of a run the state refused before it started (its lock is held, it cannot
        be read): every valid entry skipped, saying why, so that CI finds a report as after any run."""
        code = STATE_LOCKED if isinstance(error, LockHeld) else STATE_UNAVAILABLE
        valid = [e for e in self.manifest.entries if e.valid]
        self._write_reports([replace(base_result(e, self.base_dir), status=SKIPPED, error_code=code,
                                     error_message=f"not started: {error}") for e in valid])

    def _issued_line(self, decided: _Decided) -> Callable[[Entry], Issued]:
        """What each ``issued`` journal line says beside the ARN: this manifest, the entry's
        outputs (for --prune) and, with revoke_replaced, the certificate it replaces."""
        manifest_file, base_dir = self.manifest.path.name, self.base_dir

        def issued(entry: Entry) -> Issued:
            replaces = decided.steps[entry.name].decision.replaces if entry.revoke_replaced else None
            outputs = {k: v for k, v in entry.outputs.relative_to(base_dir).items() if v is not None}
            return Issued(manifest=manifest_file, outputs=outputs,
                          replaces=replaces.certificate_arn if replaces is not None else None)

        return issued

    def _retire(self, decided: _Decided, results: list[Result]) -> list[Result]:
        """After the outputs are durable: the replaced certificates and, with --prune, the orphans."""
        if not self.prune and not any(e.revoke_replaced for e in decided.valid):
            return results
        from pca_batch.run.retire import Retirement, retire
        from pca_batch.run.revoke import revoke_config

        how = Retirement(
            state=decided.state, manifest_file=self.manifest.path.name,
            config=revoke_config(self.config),
            open_backend=self._backend_for_revocations, on_rates=self.rates.extend,
        )
        lines = None if self.console.is_terminal else (lambda r: write_lines(self.console, [plain_line(r)]))
        with _graceful_signals(self.stop_revoking.set):
            try:
                return retire(how, decided.valid, results, self.prune, on_result=lines, stop=self.stop_revoking)
            except PcaBatchError as exc:  # no backend for the revocations (no credentials, ...): finish() raises it
                self.retire_error = exc
                return results + [_not_revoked(o, exc) for o in self.prune]

    def close_backend(self) -> None:
        """Close the backend opened here (a run that stops before it starts)."""
        if self.own_backend and self.backend is not None and not self.calls_left_running:
            self.backend.close()
            self.backend = None

    def _backend_for_revocations(self) -> Backend:
        if self.backend is None:
            self.own_backend = True
            self.backend = open_for_run(self.manifest.backend, self.manifest.settings, self.options)
        return self.backend

    def _make_durable(self, ran: list[Result], entries: list[Entry]) -> list[Result]:
        """The outputs' renames, durable before the report says so. An entry whose files could
        not be made durable fails; logs, which had its line already, get one that says so."""
        durable = make_durable(ran, entries)
        if not self.console.is_terminal:  # a terminal gets the table, with the final statuses
            write_lines(self.console, [plain_line(new) for old, new in zip(ran, durable, strict=True) if new != old])
        return durable

    def _write_reports(self, results: list[Result]) -> None:
        options, manifest = self.options, self.manifest
        if options.report is not None:
            write_report(options.report, results, self.rates)
        if options.junit is not None:
            from pca_batch.report.junit import write_junit

            write_junit(options.junit, results, suite=manifest.display, elapsed_s=time.monotonic() - self.started)
        github.report_to_github(results, manifest_path=manifest.path, display=manifest.display,
                                console=self.console, env=self.env)

    @property
    def calls_left_running(self) -> bool:
        return self.runner is not None and self.runner.calls_left_running

    def finish(self, decided: _Decided) -> int:
        """Whatever happened: results for every entry, the outputs durable, reports; the exit status."""
        ran = self.results
        if ran is None:  # something went wrong before or while running: report what we have
            ran = self.runner.results_for(decided.todo) if self.runner is not None else [
                replace(base_result(e, self.base_dir), error_code=NOT_STARTED, error_message="the run did not start")
                for e in decided.todo
            ]
        ran = self._make_durable(ran, decided.todo)
        results = _in_order(decided.valid, decided.settled, ran)
        interrupted = self.runner is not None and self.runner.interrupted
        finished = not decided.todo or self.results is not None  # the run ended on its own, or had nothing to do
        if finished and not interrupted:
            results = self._retire(decided, results)
        interrupted = interrupted or self.stop_revoking.is_set()
        self._write_reports(results)
        print_final(self.console, results, time.monotonic() - self.started, interrupted=interrupted)
        write_lines(self.console, learned_lines(self.rates))
        if decided.orphans and not self.options.prune:
            names = ", ".join(o.name for o in decided.orphans[:5]) + (", ..." if len(decided.orphans) > 5 else "")
            write_lines(self.console, [f"{len(decided.orphans)} name(s) no longer in the manifest still have a "
                                       f"certificate on record ({names}): apply --prune revokes them and removes "
                                       "their files"])
        if self.own_backend and self.backend is not None and not self.calls_left_running:
            self.backend.close()
        if self.retire_error is not None:
            raise self.retire_error
        return exit_code(results, interrupted)


def execute(
    manifest: Manifest,
    options: ApplyOptions,
    console: Console,
    *,
    backend: Backend | None = None,
    env: Mapping[str, str] | None = None,
    opening: Opening | None = None,
) -> int:
    """Issue every valid entry of ``manifest``; returns the exit status (0, 1 or 130).

    What is on disk decides first: unchanged entries make no call, and when no entry
    is left no backend is opened. The reports are written whatever happens.
    ``backend`` and ``env`` are for tests and the bench: by default the manifest's
    backend and the process environment. ``opening`` is the backend being opened in
    the background (see start_opening). With ``options.prune`` the orphans (pca_batch.plan.prune)
    are revoked once the entries are done.
    """
    session: _Session | None = None  # once it exists, it writes the reports, whatever happens
    state: State | None = None
    try:
        state = open_state(manifest, options)
        operation = "apply --prune" if options.prune else "apply"
        with state.locked(operation, scope_of(options.shard), options.lock_timeout) as lock:
            decided = _decide(manifest, options, console, env, state)
            session = _Session(manifest, options, console, env, decided.orphans if options.prune else ())
            described: Described | None = None
            try:
                if options.adopt:
                    decided, described = session.adopt_files(decided, backend, opening)
                session.guard(decided)
            except PcaBatchError:
                session.close_backend()
                raise
            try:
                if decided.todo:
                    if session.backend is None:
                        described = session.open_backend(backend, opening)
                    session.run(decided, described)
            finally:
                code = session.finish(decided)
            if code in (EXIT_OK, EXIT_FAILED) and not session.calls_left_running:
                _compact(state, decided.view, whole=lock.scope == ALL, console=console)
    except StateError as exc:
        if session is None:  # refused before anything ran (a held lock, a state that cannot be read)
            _Session(manifest, options, console, env).refused(exc)
        raise
    finally:
        if opening is not None:  # not needed after all (after take(), this changes nothing)
            opening.discard()
        if state is not None:
            state.close()
    return code


def _compact(state: State, before: StateView, *, whole: bool, console: Console) -> None:
    """Once the run is over: fold the state's history away when it has grown (see pca_batch.state)."""
    done = state.maybe_compact(before, whole=whole)
    if done is not None:
        write_lines(console, [f"state {state.display} compacted: {done.kept} record(s) kept, {done.archived} "
                              f"moved to {done.archive}"])


def _not_revoked(orphan: Revocation, error: PcaBatchError) -> Result:
    return Result(
        name=orphan.name, status=SKIPPED, certificate_authority_arn=orphan.issued.ca_arn,
        certificate_arn=orphan.issued.certificate_arn, serial=orphan.serial, outputs=orphan.outputs,
        error_code=NOT_STARTED, error_message=f"not revoked: {error}", action="revoke",
    )


def _in_order(valid: list[Entry], settled: Mapping[str, Result], ran: list[Result]) -> list[Result]:
    """Every entry's result in manifest order: the unchanged ones and those that ran."""
    by_name = {r.name: r for r in ran}
    by_name.update(settled)
    return [by_name[e.name] for e in valid if e.name in by_name]
