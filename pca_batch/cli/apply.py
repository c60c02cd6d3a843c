"""`pca-batch apply`: load, then plan (dry run) or execute."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pca_batch.backends import Backend, Opening
from pca_batch.errors import EXIT_FAILED, EXIT_INVALID, EXIT_OK, BackendError, ManifestError
from pca_batch.manifest.load import load_manifest
from pca_batch.manifest.problems import print_problems
from pca_batch.model import SKIPPED, ApplyOptions, BackendConfig, Entry, Manifest, Result, RunSettings, Shard
from pca_batch.plan import converge
from pca_batch.plan.preflight import preflight
from pca_batch.report.json_report import summary_line, write_report
from pca_batch.report.plan_view import build_plan, render_plan
from pca_batch.run.journal import default_journal_path

if TYPE_CHECKING:
    from rich.console import Console


def in_shard(name: str, shard: Shard) -> bool:
    """Stable on every machine and run: SHA-256 of the entry name, modulo N."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shard.count == shard.index - 1


def select_shard(manifest: Manifest, shard: Shard | None) -> Manifest:
    if shard is None:
        return manifest
    return replace(manifest, entries=tuple(e for e in manifest.entries if in_shard(e.name, shard)))


def run_apply(manifest_path: str, options: ApplyOptions, console: Console, err: Console) -> int:
    openings: list[Opening] = []

    def on_backend(config: BackendConfig, settings: RunSettings) -> None:
        """Known before the entries are read: get the backend ready meanwhile."""
        if options.plan and options.offline:
            return
        from pca_batch.run.session import start_opening

        opening = start_opening(config, settings, options)
        if opening is not None:
            openings.append(opening)

    foreseen: set[str] = set()

    def on_entry(entry: Entry) -> None:
        """Read, valid: if it is sure to be issued, have its CA described for the preflight as
        soon as the backend is open. Only then: an unchanged re-run makes no call at all."""
        arn = entry.ca_arn
        if not openings or arn is None or arn in foreseen:
            return
        if options.shard is not None and not in_shard(entry.name, options.shard):
            return
        if converge.certainly_issued(entry):
            foreseen.add(arn)
            openings[-1].foresee(arn)

    try:
        return _run_apply(manifest_path, options, console, err, on_backend, on_entry, openings)
    finally:
        for opening in openings:  # what execute() did not take
            opening.discard()


def _run_apply(
    manifest_path: str,
    options: ApplyOptions,
    console: Console,
    err: Console,
    on_backend: Callable[[BackendConfig, RunSettings], None],
    on_entry: Callable[[Entry], None],
    openings: list[Opening],
) -> int:
    try:
        manifest = load_manifest(
            manifest_path, allow_outside_paths=options.allow_outside_paths, on_backend=on_backend, on_entry=on_entry
        )
    except ManifestError as exc:
        if options.plan and options.detailed_exitcode:  # as Terraform: 1 is an error, 2 changes pending
            print_problems(exc.problems, err)
            return EXIT_FAILED
        raise
    manifest = select_shard(manifest, options.shard)
    problems = manifest.all_problems()
    if options.plan:
        journal = options.journal or default_journal_path(manifest.path)
        steps = converge.decide_all(
            [e for e in manifest.entries if e.valid], journal, now=datetime.now(UTC), force=options.force
        )
        pending = [s.entry for s in steps if s.decision.action != "unchanged"]
        findings = {}
        if pending and not options.offline:
            findings = plan_preflight(manifest, options, pending, openings.pop() if openings else None)
        results = [
            replace(r, error_code=findings[r.name].code, error_message=findings[r.name].message, action="refused")
            if r.name in findings else r
            for r in build_plan(manifest, steps)
        ]
        render_plan(manifest, results, console)
        if problems:
            print_problems(problems, err)
        console.print(f"Plan: {summary_line(results)}", markup=False, highlight=False)
        if options.report is not None:
            write_report(options.report, results)
        if problems:
            return EXIT_FAILED if options.detailed_exitcode else EXIT_INVALID
        if findings:  # apply would fail these entries: the plan says so with a failing status
            return EXIT_FAILED
        changes = any(r.action in ("issue", "renew") for r in results)
        if options.detailed_exitcode:
            return 2 if changes else EXIT_OK
        return EXIT_OK
    if problems:
        print_problems(problems, err)
        err.print("Nothing was issued: fix the manifest first.", markup=False, highlight=False)
        if options.report is not None:
            write_report(options.report, _refused(manifest))
        return EXIT_INVALID
    from pca_batch.run.session import execute

    return execute(manifest, options, console, opening=openings.pop() if openings else None)


def plan_preflight(
    manifest: Manifest, options: ApplyOptions, entries: list[Entry], opening: Opening | None = None
) -> dict[str, BackendError]:
    """The read-only preflight of apply, for the plan: what the CA would refuse.

    The plan changes nothing: a local store is opened read-only, and one that does not
    exist yet (no folder, or a folder without its database) is not opened at all; apply
    will create it and its declared authorities, so they are not judged. Neither is a
    store that cannot be read as it is (another schema version: apply upgrades it).
    """
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
            findings = preflight(entries, backend)
        finally:
            backend.close()
        return {
            name: err
            for name, err in findings.items()
            if not (err.code == "ResourceNotFoundException" and _ca_of(entries, name) in declared)
        }
    from pca_batch.run.session import open_for_run

    described = None
    if opening is not None:
        backend, described = opening.take(), opening.described()
    else:
        backend = open_for_run(manifest.backend, manifest.settings, options)
    try:
        return preflight(entries, backend, described=described)
    finally:
        backend.close()


def _ca_of(entries: list[Entry], name: str) -> str | None:
    return next((e.ca_arn for e in entries if e.name == name), None)


def _refused(manifest: Manifest) -> list[Result]:
    """Report rows when an invalid manifest stops the run: invalid entries, the rest skipped."""
    rows = build_plan(manifest)
    return [r if r.status != "planned" else replace(r, status=SKIPPED, action=None) for r in rows]

