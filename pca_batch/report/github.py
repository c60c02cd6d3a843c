"""GitHub Actions: a Markdown summary table for the job page and error annotations.

When ``GITHUB_STEP_SUMMARY`` is set (GitHub sets it in every job step), a
table of the results is appended to that file, and every failed entry is
printed as a workflow command that GitHub turns into an annotation on the
manifest line of that entry::

    ::error file=manifests/prod.yaml,line=12::payments-api: MalformedCSRException: ...

With ``GITHUB_ACTIONS=true``, every problem of an invalid manifest (validate, plan,
apply) is an annotation at its own line, and the summary has their table; a plan
writes its table, with its counts, to the summary.

Escaping follows GitHub's toolkit (``@actions/core`` ``command.ts``): in the
message ``%``, ``\\r`` and ``\\n``; in property values also ``:`` and ``,``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pca_batch.errors import Problem
from pca_batch.model import (
    FAILED,
    INVALID,
    ISSUED,
    RECOVERED,
    RECOVERED_NOTE,
    REVOKED,
    SKIPPED,
    UNCHANGED,
    Manifest,
    Result,
)
from pca_batch.report.json_report import summary

if TYPE_CHECKING:
    from rich.console import Console

SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation_file(manifest_path: Path, display: str, env: Mapping[str, str]) -> str:
    """The manifest's path as GitHub wants it: relative to the workspace when it lies inside."""
    workspace = env.get("GITHUB_WORKSPACE")
    if workspace:
        try:
            return manifest_path.resolve().relative_to(Path(workspace).resolve()).as_posix()
        except ValueError:
            pass
    return display


def error_annotations(results: Sequence[Result], file: str) -> list[str]:
    lines = []
    for r in results:
        if r.status not in (FAILED, INVALID):
            continue
        message = f"{r.name}: {r.error_code or r.status}: {r.error_message or ''}"
        props = f"file={escape_property(file)},line={max(r.line, 1)}"
        lines.append(f"::error {props}::{escape_data(message)}")
    return lines


def _cell(text: str | None) -> str:
    """A Markdown table cell: pipes escaped, lines joined, empty shown as a dash."""
    if not text:
        return "–"
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").splitlines())


def summary_markdown(results: Sequence[Result], *, title: str) -> str:
    counts = summary(results)
    parts = [f"{counts[k]} {k}" for k in (ISSUED, RECOVERED, UNCHANGED, REVOKED, FAILED, SKIPPED) if counts[k]]
    out = [
        f"### pca-batch apply: {_cell(title)}",
        "",
        f"{counts['total']} entries: " + (", ".join(parts) or "nothing done"),
        "",
        "| name | status | certificate ARN | serial | expiry | attempts | error |",
        "| --- | --- | --- | --- | --- | ---: | --- |",
    ]
    for r in results:
        error = f"{r.error_code}: {r.error_message}" if r.error_code else r.error_message
        arn = f"`{r.certificate_arn}`" if r.certificate_arn else None
        status = f"{r.status} ({r.revocation_reason})" if r.revocation_reason else r.status
        if r.revoked_replaced:
            status += "; replaced " + ", ".join(f"{x.serial} revoked ({x.reason})" for x in r.revoked_replaced)
        out.append(
            f"| {_cell(r.name)} | {_cell(status)} | {_cell(arn)} | {_cell(r.serial)} "
            f"| {_cell(r.not_after)} | {r.attempts} | {_cell(error)} |"
        )
    if counts[RECOVERED]:
        out += ["", f"recovered: {RECOVERED_NOTE}; its files written again."]
    return "\n".join(out) + "\n\n"


def report_to_github(
    results: Sequence[Result],
    *,
    manifest_path: Path,
    display: str,
    console: Console,
    env: Mapping[str, str] | None = None,
) -> bool:
    """Append the summary and print the annotations when running under GitHub Actions.

    Returns False (and does nothing) when ``GITHUB_STEP_SUMMARY`` is not set.
    """
    env = os.environ if env is None else env
    target = env.get(SUMMARY_ENV)
    if not target:
        return False
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(summary_markdown(results, title=display))
    for line in error_annotations(results, annotation_file(manifest_path, display, env)):
        # console.out: no wrapping, no markup; a workflow command must stay one line.
        console.out(line, highlight=False)
    return True


# -- manifest problems and plans (validate, apply, apply --plan) ------------------------------

ACTIONS_ENV = "GITHUB_ACTIONS"


def _annotating(env: Mapping[str, str]) -> bool:
    return env.get(ACTIONS_ENV) == "true"


def problem_annotations(problems: Sequence[Problem], env: Mapping[str, str]) -> list[str]:
    """One ``::error`` per problem, at its file and line: GitHub shows it on that line of the diff."""
    lines = []
    for p in problems:
        file = annotation_file(Path(p.file), p.file, env)
        title = "pca-batch: invalid manifest" if p.entry == "-" else f"pca-batch: {p.entry}"
        props = f"file={escape_property(file)},line={max(p.line, 1)},title={escape_property(title)}"
        lines.append(f"::error {props}::{escape_data(f'{p.path}: {p.message}')}")
    return lines


def _line_link(file: str, line: int, env: Mapping[str, str]) -> str:
    """``12``, or a link to that line of the commit when GitHub says which (server, repository, commit)."""
    server, repo, sha = (env.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_SHA"))
    if not (server and repo and sha):
        return str(line)
    return f"[{line}]({server}/{repo}/blob/{sha}/{annotation_file(Path(file), file, env)}#L{line})"


def problems_markdown(display: str, problems: Sequence[Problem], *, command: str, env: Mapping[str, str]) -> str:
    entries = {p.entry for p in problems if p.entry != "-"}
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}" + (
        f" in {len(entries)} entr{'ies' if len(entries) != 1 else 'y'}" if entries else ""
    )
    after = {"validate": "", "plan": "; these entries cannot be planned", "apply": "; nothing was issued"}[command]
    out = [
        f"### pca-batch {command}: {_cell(display)} is invalid",
        "",
        count + after,
        "",
        "| line | entry | path | problem |",
        "| ---: | --- | --- | --- |",
    ]
    for p in problems:
        out.append(
            f"| {_line_link(p.file, p.line, env)} | {_cell(p.entry)} | `{_cell(p.path)}` | {_cell(p.message)} |"
        )
    return "\n".join(out) + "\n\n"


def report_problems(
    problems: Sequence[Problem], *, display: str, command: str, console: Console, env: Mapping[str, str] | None = None
) -> None:
    """Under GitHub Actions: an annotation per problem and, when there is a step summary, their table."""
    env = os.environ if env is None else env
    if not problems:
        return
    if _annotating(env):
        for line in problem_annotations(problems, env):
            console.out(line, highlight=False)
    target = env.get(SUMMARY_ENV)
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(problems_markdown(display, problems, command=command, env=env))


def plan_markdown(display: str, header: Sequence[str], rows: Sequence[Sequence[str]], counts: str) -> str:
    out = [
        f"### pca-batch plan: {_cell(display)}",
        "",
        f"Plan: {counts}",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n\n"


def report_plan(
    manifest: Manifest, results: Sequence[Result], table: tuple[Sequence[str], Sequence[Sequence[str]]], *,
    counts: str, console: Console, env: Mapping[str, str] | None = None,
) -> None:
    """Under GitHub Actions: the plan table (and its counts) in the step summary, and an annotation for
    each entry the CA would refuse (the manifest's problems have theirs from :func:`report_problems`)."""
    env = os.environ if env is None else env
    target = env.get(SUMMARY_ENV)
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(plan_markdown(manifest.display, table[0], table[1], counts))
    if _annotating(env):
        refused = [replace(r, status=FAILED) for r in results if r.action == "refused"]
        for line in error_annotations(refused, annotation_file(manifest.path, manifest.display, env)):
            console.out(line, highlight=False)
