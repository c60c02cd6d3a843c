"""The dry run: what would be issued, with which token, and every problem, before anything happens."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pca_batch.model import INVALID, PLANNED, Entry, Manifest, Result
from pca_batch.pki import validity
from pca_batch.plan import converge
from pca_batch.plan.converge import Step
from pca_batch.plan.guard import recorded
from pca_batch.plan.lostkeys import NOT_HERE
from pca_batch.plan.prune import NO_LONGER_LISTED, Revocation
from pca_batch.plan.renewal import IssuedIndex, serial_of
from pca_batch.report.json_report import summary_line
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
    "revoke": "- revoke",
    "orphaned": "? orphaned",
    "adopt": "= adopt",
    "fetch": "< fetch",
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


FETCHED_AGAIN = "on record in the state as serial {serial}: fetched again, no IssueCertificate call"


def with_fetches(rows: Sequence[Result], steps: Sequence[Step], index: IssuedIndex) -> list[Result]:
    """Rows to issue or renew whose certificate the state already holds under the very token
    the entry would send (its files were lost, or a run stopped before writing them): apply
    fetches that certificate again instead of issuing one, so the plan says ``< fetch``."""
    by_name = {s.entry.name: s for s in steps}
    out = []
    for row in rows:
        step = by_name.get(row.name)
        record = recorded(step, index) if step is not None and row.action in ("issue", "renew") else None
        if record is not None:
            fetched = FETCHED_AGAIN.format(serial=serial_of(record))
            why = f"{row.reason}; {fetched}" if row.action == "renew" and row.reason else fetched
            row = replace(row, action="fetch", certificate_arn=record.certificate_arn, reason=why)
        out.append(row)
    return out


def orphan_rows(orphans: Sequence[Revocation], *, prune: bool) -> list[Result]:
    """A row for each certificate on record for a name the manifest no longer lists:
    ``- revoke`` with --prune, ``? orphaned`` (left alone) without."""
    rows = []
    for o in orphans:
        if not prune:
            why = f"{NO_LONGER_LISTED}; apply --prune revokes it"
        elif o.revoked is not None:
            why = f"{NO_LONGER_LISTED}; revoked already ({o.revoked.reason}): its files are removed"
        else:
            why = NO_LONGER_LISTED
        rows.append(Result(
            name=o.name, status=PLANNED, certificate_authority_arn=o.issued.ca_arn,
            certificate_arn=o.issued.certificate_arn, serial=o.serial, outputs=o.outputs,
            action="revoke" if prune else "orphaned", reason=why,
            revocation_reason=None,
        ))
    return rows


def with_replaced(rows: Sequence[Result], pending: Mapping[str, Sequence[Revocation]],
                  steps: Sequence[Step]) -> list[Result]:
    """The rows of entries with ``revoke_replaced``: a renewal says what it will revoke once its
    new certificate is in place; an unchanged entry whose replaced certificates were not revoked
    yet (a run stopped in between) becomes ``- revoke``."""
    by_name = {s.entry.name: s for s in steps}
    out = []
    for row in rows:
        step = by_name.get(row.name)
        reason = step.entry.revoke_replaced if step is not None else None
        if step is not None and reason is not None and row.action == "renew" and step.decision.replaces is not None:
            serial = serial_of(step.decision.replaces)
            row = replace(row, reason=f"{row.reason}; then revoke serial {serial} ({reason})")
        elif row.name in pending and row.action == "unchanged":
            serials = ", ".join(r.serial for r in pending[row.name])
            row = replace(row, status=PLANNED, action="revoke",
                          reason=f"the certificate(s) it replaced: serial {serials} ({reason})")
        out.append(row)
    return out


def plan_summary(manifest: Manifest, results: Sequence[Result], *, issuing: str = "") -> str:
    """``3 entries, 1 planned, 2 unchanged; 1 to adopt; to issue: 1 from arn:… (general purpose);
    2 to revoke (no longer in the manifest)``. ``issuing``: the count to issue per CA (pca_batch.plan.guard)."""
    names = {e.name for e in manifest.entries}
    text = summary_line([r for r in results if r.name in names])
    adopt = sum(1 for r in results if r.action == "adopt")
    if adopt:
        text += f"; {adopt} to adopt (recorded, not renewed)"
    fetch = sum(1 for r in results if r.action == "fetch")
    if fetch:
        text += f"; {fetch} to fetch again (on record in the state, not issued)"
    if issuing:
        text += f"; {issuing}"
    gone = [r for r in results if r.name not in names]
    revoke = sum(1 for r in gone if r.action == "revoke")
    orphaned = sum(1 for r in gone if r.action == "orphaned")
    if revoke:
        text += f"; {revoke} to revoke ({NO_LONGER_LISTED})"
    if orphaned:
        text += f"; {orphaned} orphaned ({NO_LONGER_LISTED}; apply --prune revokes them)"
    return text


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
        style = {"invalid": "red", "refused": "red", "renew": "yellow", "unchanged": "dim", "revoke": "magenta",
                 "orphaned": "yellow", "adopt": "cyan", "fetch": "cyan"}.get(
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
    if r.action in ("revoke", "orphaned") and e is None:  # no longer in the manifest: its certificate
        return " ".join([_action(r), r.name, f"ca={r.certificate_authority_arn or '-'}", f"serial={r.serial or '-'}"])
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
    elif r.reason and (r.action in ("renew", "unchanged", "revoke", "orphaned", "adopt", "fetch")
                       or NOT_HERE in r.reason):
        why = r.reason  # an issue says why only when a key made on another runner was lost
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
