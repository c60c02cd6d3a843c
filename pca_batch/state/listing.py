"""``pca-batch state list``: each name's current certificate, as the state records it, and the
keys earlier runs made whose certificate is not on record (``pending key``: its run is under way,
or died, maybe on another runner; ``lost key``: the entry has a newer certificate since)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from pca_batch.acmpca import serial_hex, serial_of_arn
from pca_batch.model import Manifest
from pca_batch.plan.lostkeys import unanswered, unsettled
from pca_batch.plan.renewal import read_certificate
from pca_batch.run.journal import Event, JournalRecord, RevocationRecord


@dataclass(frozen=True)
class Row:
    entry: str
    serial: str
    certificate_arn: str
    not_after: str | None  # from the certificate on disk, when it holds this one
    status: str  # current, expired, revoked (REASON), not on disk, not in the manifest, pending key, lost key
    issued: str  # when it was recorded
    token: str | None = None  # a pending or lost key: the token its certificate was (or is) asked for with


def rows(manifest: Manifest, events: Sequence[Event], *, now: datetime | None = None) -> list[Row]:
    """One row per name the state records for this manifest: its newest certificate."""
    now = now or datetime.now(UTC)
    current: dict[str, JournalRecord] = {}
    revoked: dict[str, RevocationRecord] = {}
    for event in events:
        if isinstance(event, RevocationRecord):
            revoked[event.certificate_arn] = event
        elif isinstance(event, JournalRecord) and event.issued.manifest in (None, manifest.path.name):
            current[event.name] = event
    entries = {e.name: e for e in (*manifest.entries, *manifest.others)}
    out = []
    for name in sorted(current):
        record = current[name]
        serial = _serial(record.certificate_arn)
        entry = entries.get(name)
        anchor = (entry.outputs.certificate or entry.outputs.full_chain) if entry is not None else None
        on_disk = read_certificate(Path(anchor)) if anchor else None
        holds = on_disk is not None and on_disk.serial == serial
        not_after = on_disk.not_after if on_disk is not None and holds else None
        gone = revoked.get(record.certificate_arn)
        if gone is not None:
            status = f"revoked ({gone.reason})"
        elif entry is None:
            status = "not in the manifest"
        elif not holds:
            status = "not on disk"
        elif not_after is not None and not_after <= now:
            status = "expired"
        else:
            status = "current"
        out.append(Row(name, serial, record.certificate_arn,
                       not_after.strftime("%Y-%m-%dT%H:%M:%SZ") if not_after else None, status, record.time))
    return out + _keys(manifest, events)


def _keys(manifest: Manifest, events: Sequence[Event]) -> list[Row]:
    """A row for each key record no certificate answers: no serial, no ARN (the token says which
    request it was, for the CA's audit report)."""
    waiting = {id(k) for keys in unsettled(events).values() for k in keys}
    return [Row(k.name, "-", "-", None, "pending key" if id(k) in waiting else "lost key", k.time, k.token)
            for k in unanswered(events) if k.manifest in (None, manifest.path.name)]


def _serial(arn: str) -> str:
    try:
        return serial_hex(serial_of_arn(arn))
    except ValueError:
        return "-"


def as_json(found: Sequence[Row], where: str) -> str:
    return json.dumps({"state": where, "certificates": [asdict(r) for r in found]}, indent=2) + "\n"


def as_table(found: Sequence[Row]) -> list[str]:
    head = ("ENTRY", "SERIAL", "NOT AFTER", "STATUS", "ARN")
    cells = [(r.entry, r.serial, r.not_after or "-", r.status, f"token {r.token}" if r.token else r.certificate_arn)
             for r in found]
    widths = [max(len(row[i]) for row in (head, *cells)) for i in range(4)]
    return ["  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
            for row in (head, *cells)]
