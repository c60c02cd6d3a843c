"""GitHub Actions: a Markdown summary table for the job page and error annotations.

When ``GITHUB_STEP_SUMMARY`` is set (GitHub sets it in every job step), a
table of the results is appended to that file, and every failed entry is
printed as a workflow command that GitHub turns into an annotation on the
manifest line of that entry::

    ::error file=manifests/prod.yaml,line=12::payments-api: MalformedCSRException: ...

Escaping follows GitHub's toolkit (``@actions/core`` ``command.ts``): in the
message ``%``, ``\\r`` and ``\\n``; in property values also ``:`` and ``,``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pca_batch.model import (
    FAILED,
    INVALID,
    ISSUED,
    RECOVERED,
    RECOVERED_NOTE,
    REVOKED,
    SKIPPED,
    UNCHANGED,
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
