"""The dry run: what would be issued, with which token, and every problem, before anything happens."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from pca_batch import validity
from pca_batch.model import INVALID, OUTPUT_KINDS, PLANNED, Entry, Manifest, Result

ACTION_MARKS = {"issue": "+ issue", "renew": "~ renew", "unchanged": "= unchanged", "invalid": "! invalid"}


def plan_result(entry: Entry, root: Path) -> Result:
    """The report row of an entry in a plan."""
    if not entry.valid:
        first = entry.problems[0] if entry.problems else None
        return Result(
            name=entry.name,
            status=INVALID,
            certificate_authority_arn=entry.ca_arn,
            idempotency_token=entry.token,
            outputs=relative_outputs(entry, root),
            error_code="InvalidManifest" if first else None,
            error_message=(f"{first.path}: {first.message}" if first else None),
            line=entry.line,
            action="invalid",
        )
    return Result(
        name=entry.name,
        status=PLANNED,
        certificate_authority_arn=entry.ca_arn,
        idempotency_token=entry.token,
        outputs=relative_outputs(entry, root),
        line=entry.line,
        action="issue",
    )


def relative_outputs(entry: Entry, root: Path) -> dict[str, str | None]:
    """An entry's output paths as the report shows them: relative to the manifest's folder."""
    out: dict[str, str | None] = {}
    for kind in OUTPUT_KINDS:
        path = getattr(entry.outputs, kind)
        out[kind] = os.path.relpath(path, root) if path is not None else None
    return out


def build_plan(manifest: Manifest) -> list[Result]:
    return [plan_result(e, manifest.root) for e in manifest.entries]


def _short_arn(arn: str | None) -> str:
    if not arn:
        return ""
    head, _, tail = arn.rpartition("/")
    return "…/" + tail if head else arn


def render_plan(manifest: Manifest, results: Sequence[Result], console: Console) -> None:
    entries = {e.name: e for e in manifest.entries}
    if console.is_terminal:
        table = Table(title=f"Plan for {manifest.display}", title_justify="left", expand=False)
        for column in ("name", "action", "CA", "signing algorithm", "validity", "subject / SANs", "idempotency token"):
            table.add_column(column, overflow="fold")
        for r in results:
            e = entries.get(r.name)
            style = "red" if r.status == INVALID else "green"
            table.add_row(
                r.name,
                Text(ACTION_MARKS.get(r.action or "", r.action or ""), style=style),
                _short_arn(r.certificate_authority_arn),
                _get(e, "SigningAlgorithm"),
                validity.describe(e.request.get("Validity") if e and e.request else None),
                _names(e),
                r.idempotency_token or "",
            )
        console.print(table)
    else:
        for r in results:
            e = entries.get(r.name)
            fields = [
                ACTION_MARKS.get(r.action or "", r.action or ""),
                r.name,
                f"ca={r.certificate_authority_arn or '-'}",
                f"alg={_get(e, 'SigningAlgorithm') or '-'}",
                f"validity={validity.describe(e.request.get('Validity') if e and e.request else None) or '-'}",
                f"names={_names(e) or '-'}",
                f"token={r.idempotency_token or '-'}",
            ]
            console.print(" ".join(fields), markup=False, highlight=False, soft_wrap=True)


def _get(entry: Entry | None, key: str) -> str:
    if entry is None or entry.request is None:
        return ""
    value = entry.request.get(key)
    return value if isinstance(value, str) else ""


def _names(entry: Entry | None) -> str:
    if entry is None or entry.csr is None:
        return ""
    parts = [entry.csr.subject] if entry.csr.subject else []
    parts += list(entry.csr.sans)
    return ", ".join(parts)
