"""`pca-batch apply`: load, then plan (dry run) or execute.

Only the parser is built at import; the core is imported when the command runs, so
that other commands start without it.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pca_batch.cli.args import add_backend_options, add_throttle_timeout, count, positive_int, rate, shard
from pca_batch.errors import EXIT_FAILED, EXIT_INVALID, EXIT_OK, BackendError, ManifestError, Problem
from pca_batch.model import SKIPPED, ApplyOptions, BackendConfig, Entry, Manifest, Result, RunSettings

if TYPE_CHECKING:
    from rich.console import Console

    from pca_batch.backends import Backend, CaDescription, Opening
    from pca_batch.plan.adopt import Judged
    from pca_batch.plan.converge import Step
    from pca_batch.plan.renewal import IssuedIndex


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("apply", help="issue every entry of a manifest (or --plan: the dry run)")
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--plan", action="store_true", help="dry run: show what would be issued; change nothing")
    p.add_argument("--report", type=Path, metavar="FILE", help="write the JSON report here")
    p.add_argument("--junit", type=Path, metavar="FILE", help="write a JUnit XML report here")
    add_backend_options(p)
    p.add_argument("--concurrency", type=positive_int, metavar="N",
                   help="entries in flight at once (default: aws 32, local 256)")
    p.add_argument("--max-rate", type=rate, metavar="N",
                   help="IssueCertificate calls per second at most (aws: the rate is learned below it; "
                        "default 200; 0: no ceiling)")
    p.add_argument("--max-attempts", type=positive_int, metavar="N",
                   help="attempts per call on errors other than throttling (default 8)")
    add_throttle_timeout(p)
    p.add_argument("--fail-fast", action="store_true", help="start no new entry after a failure")
    p.add_argument("--allow-outside-paths", action="store_true", help="let outputs lie outside the manifest's folder")
    p.add_argument("--offline", action="store_true", help="with --plan: make no call at all (skip preflight)")
    p.add_argument("--force", action="store_true", help="reissue every entry")
    p.add_argument("--shard", type=shard, metavar="K/N", help="run the K-th of N disjoint parts of the manifest")
    p.add_argument(
        "--prune", action="store_true",
        help="revoke (CESSATION_OF_OPERATION) the certificates of entries the manifest no longer lists, "
        "and remove the files pca-batch wrote for them",
    )
    p.add_argument(
        "--max-issue", type=count, metavar="N",
        help="refuse, before any IssueCertificate call, when more than N certificates would be issued "
        "(default: settings.max_issue, else no limit)",
    )
    p.add_argument(
        "--adopt", action="store_true",
        help="an entry whose certificate file the state has no record of: check that file (CA, key, subject, "
        "SANs, signing algorithm, lifetime) and record it instead of renewing it",
    )
    p.add_argument(
        "--detailed-exitcode", action="store_true", help="with --plan: 0 nothing to do, 2 changes pending, 1 error"
    )
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, out: Console, err: Console) -> int:
    options = ApplyOptions(
        plan=args.plan,
        report=args.report,
        junit=args.junit,
        journal=args.journal,
        state=args.state,
        lock_timeout=args.lock_timeout,
        store=args.store,
        region=args.region,
        profile=args.profile,
        endpoint_url=args.endpoint_url,
        concurrency=args.concurrency,
        max_rate=args.max_rate,
        max_attempts=args.max_attempts,
        throttle_timeout=args.throttle_timeout,
        fail_fast=args.fail_fast,
        allow_outside_paths=args.allow_outside_paths,
        offline=args.offline,
        force=args.force,
        shard=args.shard,
        detailed_exitcode=args.detailed_exitcode,
        prune=args.prune,
        max_issue=args.max_issue,
        adopt=args.adopt,
    )
    return run_apply(args.manifest, options, out, err)


def run_apply(manifest_path: str, options: ApplyOptions, console: Console, err: Console) -> int:
    from pca_batch.manifest.load import load_manifest
    from pca_batch.manifest.problems import print_problems
    from pca_batch.plan.shards import select_shard

    background = _Background(options)
    try:
        try:
            with _long_lived():
                manifest = load_manifest(
                    manifest_path,
                    allow_outside_paths=options.allow_outside_paths,
                    on_backend=background.on_backend,
                    on_entry=background.on_entry,
                )
        except ManifestError as exc:
            _problems_to_github(exc.problems, manifest_path, options, console)
            if options.plan and options.detailed_exitcode:  # as Terraform: 1 is an error, 2 changes pending
                print_problems(exc.problems, err)
                return EXIT_FAILED
            raise
        manifest = select_shard(manifest, options.shard)
        if options.plan:
            return _plan(manifest, options, console, err, background)
        return _apply(manifest, options, console, err, background)
    finally:
        background.discard()  # what execute() did not take
        gc.unfreeze()


@contextlib.contextmanager
def _long_lived() -> Iterator[None]:
    """The manifest's objects live as long as the run: the garbage collector is kept from
    walking them again and again (a full collection over 20,000 entries costs tenths of a
    second, and the heap's growth while reading triggers several). They are frozen until
    run_apply returns; nothing else changes."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


class _Background:
    """The backend got ready while the manifest is still read, and the CAs it describes ahead."""

    def __init__(self, options: ApplyOptions) -> None:
        self.options = options
        self.openings: list[Opening] = []
        self.foreseen: set[str] = set()

    def on_backend(self, config: BackendConfig, settings: RunSettings) -> None:
        """Known before the entries are read: get the backend ready meanwhile."""
        if self.options.plan and self.options.offline:
            return
        from pca_batch.run.session import start_opening

        opening = start_opening(config, settings, self.options)
        if opening is not None:
            self.openings.append(opening)

    def on_entry(self, entry: Entry) -> None:
        """Read, valid: if it is sure to be issued, have its CA described for the preflight as
        soon as the backend is open. Only then: an unchanged re-run makes no call at all."""
        from pca_batch.plan import converge
        from pca_batch.plan.shards import in_shard

        arn = entry.ca_arn
        if not self.openings or arn is None or arn in self.foreseen:
            return
        if self.options.shard is not None and not in_shard(entry.name, self.options.shard):
            return
        if converge.certainly_issued(entry):
            self.foreseen.add(arn)
            self.openings[-1].foresee(arn)

    def take(self) -> Opening | None:
        """The opening, for the one that uses it (and closes it); the others are discarded."""
        return self.openings.pop() if self.openings else None

    def discard(self) -> None:
        for opening in self.openings:
            opening.discard()


def _plan(manifest: Manifest, options: ApplyOptions, console: Console, err: Console, background: _Background) -> int:
    from pca_batch.manifest.problems import print_problems
    from pca_batch.plan import adopt, converge, guard
    from pca_batch.plan.converge import KEY_COMPROMISED
    from pca_batch.plan.prune import find_orphans, pending_replaced
    from pca_batch.report.json_report import write_report
    from pca_batch.report.plan_view import (
        build_plan,
        orphan_rows,
        plan_summary,
        render_plan,
        with_fetches,
        with_replaced,
    )
    from pca_batch.state.base import StateError

    problems = manifest.all_problems()
    try:
        index, state_display = _read_state(manifest, options)
    except StateError as exc:
        if not options.detailed_exitcode:
            raise
        err.print(f"pca-batch: {exc}", markup=False, highlight=False)
        return EXIT_FAILED  # as Terraform: with --detailed-exitcode, 2 means changes pending, an error is 1
    steps = converge.decide_all(
        [e for e in manifest.entries if e.valid], index, now=datetime.now(UTC), force=options.force
    )
    steps, adopting = _plan_adoption(manifest, options, steps) if options.adopt else (steps, {})
    pending = [s.entry for s in steps if s.decision.action != "unchanged" and s.entry.name not in adopting]
    findings = {}
    seen: dict[str, CaDescription | BackendError] = {}
    if pending and not options.offline:
        findings = plan_preflight(manifest, options, pending, background.take(), seen=seen)
    findings |= {s.entry.name: BackendError(KEY_COMPROMISED, s.decision.refusal) for s in steps if s.decision.refusal}
    results = [
        replace(r, error_code=findings[r.name].code, error_message=findings[r.name].message, action="refused")
        if r.name in findings else adopt.plan_row(r, adopting[r.name]) if r.name in adopting else r
        for r in build_plan(manifest, steps)
    ]
    results = with_fetches(results, [s for s in steps if s.entry.name not in findings], index)
    results = with_replaced(results, pending_replaced(steps, index, manifest.path.name), steps)
    results += orphan_rows(find_orphans(manifest, index), prune=options.prune)
    render_plan(manifest, results, console)
    if problems:
        print_problems(problems, err)
    issuing = [s for s in guard.to_issue(steps, index) if s.entry.name not in findings and s.entry.name not in adopting]
    per_ca = guard.issue_line(guard.per_ca(issuing), _usage_modes(manifest, seen))
    summary = plan_summary(manifest, results, issuing=per_ca)
    console.print(f"Plan: {summary}", markup=False, highlight=False)
    refusal = _guard_refusal(manifest, options, issuing, index, state_display)
    if refusal is not None:
        err.print(f"pca-batch: {refusal}", markup=False, highlight=False)
    _plan_to_github(manifest, results, problems, options, console, summary)
    if options.report is not None:
        write_report(options.report, results)
    if problems:
        return EXIT_FAILED if options.detailed_exitcode else EXIT_INVALID
    if findings or refusal is not None:  # apply would fail these entries: the plan says so with a failing status
        return EXIT_FAILED
    changes = any(r.action in ("issue", "renew", "revoke", "adopt", "fetch") for r in results)
    return 2 if options.detailed_exitcode and changes else EXIT_OK


def _plan_adoption(manifest: Manifest, options: ApplyOptions,
                   steps: list[Step]) -> tuple[list[Step], dict[str, Judged]]:
    """apply --adopt --plan: the certificate files the state has no record of, judged as apply
    will (read-only). Returns the steps (those not adoptable say why) and the adoptable ones."""
    from pca_batch.plan import adopt
    from pca_batch.run.settings import resolve_config

    candidates = adopt.candidates(steps)
    if not candidates:
        return steps, {}
    if options.offline:
        why = "--offline: not checked against the CA certificate"
        judged = [adopt.Judged(s, (why,)) for s in candidates]
    else:
        backend = _read_only_backend(manifest, options)
        if backend is None:
            judged = [adopt.Judged(s, ("its CA does not exist yet",)) for s in candidates]
        else:
            try:
                config = resolve_config(manifest.backend, manifest.settings, options)
                cas = adopt.CaCertificates(backend, config.max_attempts)
                judged = adopt.judge(candidates, cas, manifest.path.parent, now=datetime.now(UTC))
            finally:
                backend.close()
    fits = {j.step.entry.name: j for j in judged if j.adoptable}
    others = {j.step.entry.name: adopt.not_adopted(j.step, j) for j in judged if not j.adoptable}
    return [others.get(s.entry.name, s) for s in steps], fits


def _read_only_backend(manifest: Manifest, options: ApplyOptions) -> Backend | None:
    """The backend for the plan's read-only calls: the local store opened read-only (None when it
    does not exist yet), or the aws backend."""
    if manifest.backend.type == "local":
        from pca_batch.backends.local.backend import LocalBackend
        from pca_batch.backends.local.store import DB_NAME

        store = options.store or manifest.backend.store
        if store is None or not (store / DB_NAME).is_file():
            return None
        try:
            return LocalBackend(store, read_only=True)
        except BackendError:
            return None
    from pca_batch.run.settings import open_for_run

    return open_for_run(manifest.backend, manifest.settings, options)


def _guard_refusal(manifest: Manifest, options: ApplyOptions, issuing: list[Step], index: IssuedIndex,
                   state: str) -> str | None:
    """What apply's issue guard (--max-issue) would say, or None when it lets the run through."""
    from pca_batch.plan import guard

    limit, source = guard.limit_of(options.max_issue, manifest.settings.max_issue)
    text = guard.refusal(issuing, index, limit=limit, source=source, state=state)
    return f"apply would refuse to run: {text}" if text is not None else None


def _usage_modes(manifest: Manifest, seen: Mapping[str, CaDescription | BackendError]) -> dict[str, str | None]:
    """Each CA's usage mode: as described, else as the manifest declares a local CA, else unknown."""
    from pca_batch.backends import CaDescription

    modes: dict[str, str | None] = {a.arn: a.usage_mode for a in manifest.backend.authorities}
    for arn, found in seen.items():
        if isinstance(found, CaDescription):
            modes[arn] = found.usage_mode
    return modes


def _apply(manifest: Manifest, options: ApplyOptions, console: Console, err: Console, background: _Background) -> int:
    from pca_batch.manifest.problems import print_problems
    from pca_batch.report.json_report import write_report

    problems = manifest.all_problems()
    if problems:
        print_problems(problems, err)
        err.print("Nothing was issued: fix the manifest first.", markup=False, highlight=False)
        _problems_to_github(problems, manifest.display, options, console)
        if options.report is not None:
            write_report(options.report, _refused(manifest))
        return EXIT_INVALID
    from pca_batch.run.session import execute

    return execute(manifest, options, console, opening=background.take())


def _read_state(manifest: Manifest, options: ApplyOptions) -> tuple[IssuedIndex, str]:
    """The state, read without a lock (the plan changes nothing), and its name for messages."""
    from pca_batch.plan.renewal import IssuedIndex
    from pca_batch.state import open_state

    state = open_state(manifest, options)
    try:
        return IssuedIndex.from_events(state.read().events), state.display
    finally:
        state.close()


def plan_preflight(
    manifest: Manifest, options: ApplyOptions, entries: list[Entry], opening: Opening | None = None,
    *, seen: dict[str, CaDescription | BackendError] | None = None,
) -> dict[str, BackendError]:
    """The read-only preflight of apply, for the plan: what the CA would refuse.

    The plan changes nothing: a local store is opened read-only, and one that does not
    exist yet (no folder, or a folder without its database) is not opened at all; apply
    will create it and its declared authorities, so they are not judged. Neither is a
    store that cannot be read as it is (another schema version: apply upgrades it).
    """
    from pca_batch.plan.preflight import preflight

    if manifest.backend.type == "local":
        from pca_batch.backends.local.backend import LocalBackend
        from pca_batch.backends.local.store import DB_NAME

        store = options.store or manifest.backend.store
        if store is None or not (store / DB_NAME).is_file():
            return {}
        declared = {a.arn for a in manifest.backend.authorities}
        try:
            backend: Backend = LocalBackend(store, read_only=True)
        except BackendError:
            return {}
        try:
            findings = preflight(entries, backend, seen=seen)
        finally:
            backend.close()
        return {
            name: err
            for name, err in findings.items()
            if not (err.code == "ResourceNotFoundException" and _ca_of(entries, name) in declared)
        }
    from pca_batch.run.settings import open_for_run

    described = None
    if opening is not None:
        backend, described = opening.take(), opening.described()
    else:
        backend = open_for_run(manifest.backend, manifest.settings, options)
    try:
        return preflight(entries, backend, described=described, seen=seen)
    finally:
        backend.close()


def _ca_of(entries: list[Entry], name: str) -> str | None:
    return next((e.ca_arn for e in entries if e.name == name), None)


def _refused(manifest: Manifest) -> list[Result]:
    """Report rows when an invalid manifest stops the run: invalid entries, the rest skipped."""
    from pca_batch.report.plan_view import build_plan

    rows = build_plan(manifest)
    return [r if r.status != "planned" else replace(r, status=SKIPPED, action=None) for r in rows]



def _problems_to_github(problems: Sequence[Problem], display: str, options: ApplyOptions, console: Console) -> None:
    """Under GitHub Actions, an annotation per problem and their table in the step summary."""
    from pca_batch.report.github import report_problems

    report_problems(problems, display=display, command="plan" if options.plan else "apply", console=console)


def _plan_to_github(
    manifest: Manifest, results: list[Result], problems: list[Problem], options: ApplyOptions, console: Console,
    counts: str,
) -> None:
    """Under GitHub Actions, the plan's table and counts in the step summary, and annotations."""
    from pca_batch.report.github import report_plan
    from pca_batch.report.plan_view import plan_cells

    _problems_to_github(problems, manifest.display, options, console)
    report_plan(manifest, results, plan_cells(manifest, results), counts=counts, console=console)
