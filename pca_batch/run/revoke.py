"""``pca-batch revoke``: revoke the current certificate of named entries, once each.

An entry's current certificate is the last one the journal records as issued for its
name. Every name is checked before anything is revoked: an unknown name, or one with no
certificate on record, is a usage error and nothing is revoked. Each revocation is
RevokeCertificate through the one retry path, then a ``revoked`` journal line made
durable; a certificate the journal already records as revoked is not asked again. A
crash between the call and the line is mended by the next run: the CA answers that it is
revoked already (RequestAlreadyProcessedException, or nothing from the aws backend) and
the line is written then. So a re-run neither revokes twice nor forgets one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pca_batch.acmpca import RevocationReason, serial_hex, serial_of_arn
from pca_batch.errors import EXIT_FAILED, EXIT_OK, BackendError, UsageError, suggestion
from pca_batch.model import FAILED, REVOKED, ApplyOptions, Manifest, Result
from pca_batch.run.journal import Journal, JournalRecord, RevocationRecord, default_journal_path, read_events
from pca_batch.run.retry import DEFAULT_MAX_ATTEMPTS, Retrier, RetryPolicy

if TYPE_CHECKING:
    from rich.console import Console

    from pca_batch.backends import Backend

ALREADY = "RequestAlreadyProcessedException"


@dataclass(frozen=True)
class Target:
    """A named entry's current certificate, and its revocation if the journal has one."""

    name: str
    issued: JournalRecord
    revoked: RevocationRecord | None


def targets(manifest: Manifest, names: Sequence[str], journal_path: Path) -> list[Target]:
    """The certificate of each name (in the order given, each once); UsageError naming every
    name that is not an entry of the manifest or has no certificate on record."""
    events, _ = read_events(journal_path)
    current: dict[str, JournalRecord] = {}
    revoked: dict[str, RevocationRecord] = {}
    for event in events:
        if isinstance(event, JournalRecord):
            current[event.name] = event
        else:
            revoked[event.certificate_arn] = event
    known = [e.name for e in manifest.entries]
    problems = []
    for name in dict.fromkeys(names):
        if name not in known:
            problems.append(f"{name}: no entry of that name in {manifest.display}{suggestion(name, known)}")
        elif name not in current:
            problems.append(f"{name}: no certificate on record in {journal_path} (never issued by pca-batch)")
    if problems:
        raise UsageError("pca-batch revoke: nothing revoked:\n  " + "\n  ".join(problems))
    return [
        Target(name, current[name], revoked.get(current[name].certificate_arn)) for name in dict.fromkeys(names)
    ]


def _result(target: Target, reason: str, started: float) -> Result:
    return Result(
        name=target.name,
        status=REVOKED,
        certificate_authority_arn=target.issued.ca_arn,
        certificate_arn=target.issued.certificate_arn,
        serial=serial_hex(serial_of_arn(target.issued.certificate_arn)),
        revocation_reason=reason,
        duration_s=time.monotonic() - started,
    )


def revoke_one(backend: Backend | None, journal: Journal, target: Target, reason: RevocationReason,
               retrier: Retrier) -> Result:
    """Revoke one target (unless the journal says it is revoked) and record it durably.
    ``backend`` may be None only when every target is revoked already."""
    started = time.monotonic()
    if target.revoked is not None:
        return replace(_result(target, target.revoked.reason, started), reason=f"already revoked {target.revoked.time}")
    assert backend is not None
    issued = target.issued
    serial = serial_hex(serial_of_arn(issued.certificate_arn))
    attempts = 0

    def call() -> None:
        nonlocal attempts
        attempts += 1
        backend.revoke_certificate(issued.ca_arn, serial, reason)

    try:
        retrier.call(call)
    except BackendError as exc:
        if exc.code != ALREADY:
            return replace(_result(target, reason, started), status=FAILED, revocation_reason=None,
                           attempts=attempts, error_code=exc.code, error_message=exc.message)
    journal.record_revoked(name=target.name, ca_arn=issued.ca_arn, certificate_arn=issued.certificate_arn,
                           reason=reason)
    return replace(_result(target, reason, started), attempts=attempts)


def run_revoke(manifest: Manifest, names: Sequence[str], reason: RevocationReason, options: ApplyOptions,
               console: Console) -> int:
    """Revoke the named entries' current certificates; 0 when every one is revoked, 1 otherwise."""
    from pca_batch.report.json_report import summary_line, write_report
    from pca_batch.report.live import plain_line
    from pca_batch.report.text import write_lines
    from pca_batch.run.session import open_for_run

    journal_path = options.journal or default_journal_path(manifest.path)
    chosen = targets(manifest, names, journal_path)
    attempts = options.max_attempts or manifest.settings.max_attempts or DEFAULT_MAX_ATTEMPTS
    retrier = Retrier(RetryPolicy(max_attempts=attempts))
    results: list[Result] = []
    backend = None if all(t.revoked for t in chosen) else open_for_run(manifest.backend, manifest.settings, options)
    try:
        with Journal(journal_path) as journal:
            for target in chosen:
                result = revoke_one(backend, journal, target, reason, retrier)
                results.append(result)
                write_lines(console, [plain_line(result)])
    finally:
        if backend is not None:
            backend.close()
        if options.report is not None:
            write_report(options.report, results)
    write_lines(console, [summary_line(results)])
    return EXIT_OK if all(r.status == REVOKED for r in results) else EXIT_FAILED
