"""The dry run: what would be issued, with which token, and every problem, before anything happens."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pca_batch.model import INVALID, PLANNED, Entry, Manifest, Result
from pca_batch.pki import validity
from pca_batch.plan import converge
from pca_batch.plan.converge import Step
from pca_batch.report.text import write_lines

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

ACTION_MARKS = {
    "issue": "+ issue",
    "renew": "~ renew",
    "unchanged": "= unchanged",
    "invalid": "! invalid",
    "refused": "x refused",
}


def plan_result(entry: Entry, root: Path, step: Step | None = None) -> Result:
    """The report row of an entry in a plan."""
    if not entry.valid:
        first = entry.problems[0] if entry.problems else None
        return Result(
            name=entry.name,
            status=INVALID,
            certificate_authority_arn=entry.ca_arn,
            idempotency_token=entry.token,
            outputs=entry.outputs.relative_to(root),
            error_code="InvalidManifest" if first else None,
            error_message=(f"{first.path}: {first.message}" if first else None),
            line=entry.line,
            action="invalid",
        )
    if step is not None and step.decision.action == "unchanged":
        return converge.unchanged_result(step, root)
    decision = step.decision if step is not None else None
    token = entry.token
    if decision is not None:
        token = decision.token or (None if entry.key is not None else entry.token)
    return Result(
        name=entry.name,
        status=PLANNED,
        certificate_authority_arn=entry.ca_arn,
        idempotency_token=token,
        outputs=entry.outputs.relative_to(root),
        line=entry.line,
        action=decision.action if decision else "issue",
        reason=decision.reason if decision else None,
    )


def build_plan(manifest: Manifest, steps: Sequence[Step] = ()) -> list[Result]:
    by_name = {s.entry.name: s for s in steps}
    return [plan_result(e, manifest.root, by_name.get(e.name)) for e in manifest.entries]


def _short_arn(arn: str | None) -> str:
    """The end of a CA ARN's id: enough to tell a manifest's CAs apart (the report has it whole)."""
    if not arn:
        return ""
    head, _, tail = arn.rpartition("/")
    return "…" + tail[-12:] if head else arn


def render_plan(manifest: Manifest, results: Sequence[Result], console: Console) -> None:
    """A table on a terminal, a line per entry elsewhere."""
    entries = {e.name: e for e in manifest.entries}
    if console.is_terminal:
        console.print(_plan_table(manifest, results, entries))
    else:
        write_lines(console, [_plan_line(r, entries.get(r.name)) for r in results])


def _plan_table(manifest: Manifest, results: Sequence[Result], entries: Mapping[str, Entry]) -> Table:
    from rich.table import Table
    from rich.text import Text

    cas = {r.certificate_authority_arn for r in results if r.certificate_authority_arn}
    one_ca = len(cas) == 1
    title = f"Plan for {manifest.display}" + (f" (CA {next(iter(cas))})" if one_ca else "")
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("name", overflow="fold")
    table.add_column("action", overflow="fold", max_width=18)
    if not one_ca:
        table.add_column("CA", no_wrap=True)
    table.add_column("signing algorithm", no_wrap=True)
    table.add_column("validity", overflow="fold")
    table.add_column("subject / SANs", overflow="fold", min_width=30)
    table.add_column("idempotency token", no_wrap=True)
    for r in results:
        e = entries.get(r.name)
        style = {"invalid": "red", "refused": "red", "renew": "yellow", "unchanged": "dim"}.get(
            r.action or "", "green"
        )
        cells: list[str | Text] = [r.name, Text(_action(r, table=True), style=style)]
        if not one_ca:
            cells.append(_short_arn(r.certificate_authority_arn))
        table.add_row(
            *cells,
            _get(e, "SigningAlgorithm"),
            validity.describe(e.request.get("Validity") if e and e.request else None),
            _names(e, "\n"),
            r.idempotency_token or _no_token(e),
        )
    return table


def _plan_line(r: Result, e: Entry | None) -> str:
    if r.action == "unchanged":  # nothing to do: the line says so, and which certificate
        return " ".join([_action(r), r.name, f"serial={r.serial or '-'}", f"token={r.idempotency_token or '-'}"])
    return " ".join([
        _action(r),
        r.name,
        f"ca={r.certificate_authority_arn or '-'}",
        f"alg={_get(e, 'SigningAlgorithm') or '-'}",
        f"validity={validity.describe(e.request.get('Validity') if e and e.request else None) or '-'}",
        f"names={_names(e) or '-'}",
        f"token={r.idempotency_token or _no_token(e) or '-'}",
    ])


def _action(r: Result, table: bool = False) -> str:
    """``~ renew (expires in 3 days)``; in the table the why goes on a line of its own."""
    mark = ACTION_MARKS.get(r.action or "", r.action or "")
    why = ""
    if r.action == "refused":
        why = f"{r.error_code}: {r.error_message}"
    elif r.reason and r.action in ("renew", "unchanged"):
        why = r.reason
    if not why:
        return mark
    return f"{mark}\n{why}" if table else f"{mark} ({why})"


def _no_token(entry: Entry | None) -> str:
    return "(from the new key, at apply)" if entry is not None and entry.key is not None and entry.valid else ""


def _get(entry: Entry | None, key: str) -> str:
    if entry is None or entry.request is None:
        return ""
    value = entry.request.get(key)
    return value if isinstance(value, str) else ""


def _names(entry: Entry | None, sep: str = ", ") -> str:
    if entry is None or entry.csr is None:
        return ""
    parts = [entry.csr.subject] if entry.csr.subject else []
    parts += list(entry.csr.sans)
    return sep.join(parts)


def plan_cells(manifest: Manifest, results: Sequence[Result]) -> tuple[list[str], list[list[str]]]:
    """The plan as a header and rows of text, for tables outside the terminal (the GitHub step summary)."""
    entries = {e.name: e for e in manifest.entries}
    header = ["name", "action", "CA", "signing algorithm", "validity", "subject / SANs", "idempotency token"]
    rows = []
    for r in results:
        e = entries.get(r.name)
        rows.append([
            r.name,
            _action(r),
            r.certificate_authority_arn or "",
            _get(e, "SigningAlgorithm"),
            validity.describe(e.request.get("Validity") if e and e.request else None),
            _names(e),
            r.idempotency_token or _no_token(e),
        ])
    return header, rows
