"""What a manifest no longer lists, and what a renewal replaced: the certificates to revoke.

Both are read from the journal, and neither makes a call or writes anything (the plan
uses them too).

**Orphans** (``apply --prune``). A name the journal records certificates for, under
this manifest, that no entry of the manifest has any more. Its current certificate
(the last one issued for it) is revoked, for CESSATION_OF_OPERATION, and the files
pca-batch wrote for it, as its ``issued`` line records them, are removed; an orphan is
done when that certificate is revoked and its files no longer hold it. Whether a
certificate has expired is not judged: the CA is asked to revoke it all the same (a CRL
lists it until it expires). Files are only removed while the certificate file (or the
full chain, when there is none) still holds that very certificate: the other files go
first and that one last, so a run killed in between leaves the next run enough to
finish. A file that an entry of the manifest (of any shard) writes now, or that lies
outside the manifest's folder, is never removed. Lines written before pca-batch
recorded the manifest count as this manifest's; lines without outputs revoke but
remove nothing.

**Replaced certificates** (``revoke_replaced``). An ``issued`` line records the
certificate it replaces when the entry asked for that; once an entry's files hold a
certificate, every certificate its lineage replaced and the journal does not record as
revoked is revoked, with the entry's reason. That is never before the new files are in
place, and a run that stopped in between is finished by the next one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pca_batch.acmpca import CESSATION_OF_OPERATION, RevocationReason, serial_hex, serial_of_arn
from pca_batch.model import OUTPUT_KINDS, Entry, Manifest
from pca_batch.pki.keys import pending_path
from pca_batch.plan.converge import Step
from pca_batch.plan.renewal import IssuedIndex, read_certificate
from pca_batch.plan.shards import in_shard
from pca_batch.run.journal import JournalRecord, RevocationRecord

PRUNE_REASON: RevocationReason = CESSATION_OF_OPERATION
NO_LONGER_LISTED = "no longer in the manifest"
_REMOVAL_ORDER = ("private_key", "chain", "full_chain", "certificate")  # the anchor goes last


@dataclass(frozen=True)
class Revocation:
    """One certificate to revoke (``revoked`` set: the journal says it is revoked already),
    and, for an orphan, the files to remove once it is."""

    name: str
    issued: JournalRecord
    reason: RevocationReason
    revoked: RevocationRecord | None = None
    remove: tuple[Path, ...] = ()  # in order; the last one is the anchor
    outputs: Mapping[str, str | None] = field(default_factory=dict)  # as recorded, for the report
    kept: tuple[str, ...] = ()  # recorded outputs left alone, and why
    replaced_by: str | None = None  # revoke_replaced: the certificate ARN that replaced it
    why: str | None = None  # for the report: why it is revoked

    @property
    def serial(self) -> str:
        return serial_hex(serial_of_arn(self.issued.certificate_arn))

    @property
    def needs_call(self) -> bool:
        return self.revoked is None


def _ours(record: JournalRecord, manifest_file: str) -> bool:
    return record.issued.manifest in (None, manifest_file)


def _protected(entries: Iterable[Entry]) -> set[str]:
    """Every file an entry of the manifest writes (absolute, normalised)."""
    return {os.path.normpath(path) for e in entries for _, path in e.outputs.items()}


def _inside(path: str, root: Path) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def _files(record: JournalRecord, manifest: Manifest, protected: set[str]) -> tuple[dict[str, str], list[str]]:
    """The recorded outputs that may be removed (kind -> absolute path), and those left alone."""
    base = manifest.path.parent
    ok: dict[str, str] = {}
    kept: list[str] = []
    for kind, rel in record.issued.outputs.items():
        if kind not in OUTPUT_KINDS:
            continue
        path = os.path.normpath(os.path.join(base, rel))
        if path in protected:
            kept.append(f"{rel}: an entry of the manifest writes it now")
        elif not _inside(path, manifest.root):
            kept.append(f"{rel}: outside the manifest's folder")
        else:
            ok[kind] = path
    return ok, kept


def orphan(record: JournalRecord, index: IssuedIndex, manifest: Manifest, protected: set[str]) -> Revocation | None:
    """The revocation an orphan's current certificate needs, with its files; None when done."""
    revoked = index.revocation(record)
    files, kept = _files(record, manifest, protected)
    anchor = files.get("certificate") or files.get("full_chain")
    on_disk = read_certificate(Path(anchor)) if anchor else None
    holds = on_disk is not None and on_disk.serial == serial_hex(serial_of_arn(record.certificate_arn))
    if revoked is not None and not holds:
        return None
    remove: list[Path] = []
    if holds:
        key = files.get("private_key")
        if key is not None and os.path.lexists(pending_path(Path(key))):
            remove.append(pending_path(Path(key)))
        remove += [Path(files[k]) for k in _REMOVAL_ORDER if k in files and files[k] != anchor]
        remove.append(Path(anchor))  # type: ignore[arg-type]
    elif files:
        kept.append("the certificate file no longer holds this certificate: its files are left alone")
    return Revocation(
        name=record.name, issued=record, reason=PRUNE_REASON, revoked=revoked, remove=tuple(remove),
        outputs={k: record.issued.outputs.get(k) for k in OUTPUT_KINDS}, kept=tuple(kept), why=NO_LONGER_LISTED,
    )


def find_orphans(manifest: Manifest, index: IssuedIndex) -> list[Revocation]:
    """Every orphan of the manifest (of all its shards) that is not done yet; when the manifest
    is one shard of its entries, only the orphans whose names fall in that shard."""
    everyone = manifest.entries + manifest.others
    listed = {e.name for e in everyone}
    shard = manifest.shard
    manifest_file = manifest.path.name
    current: dict[str, JournalRecord] = {}
    for name in index.serials_of:
        if name in listed or (shard is not None and not in_shard(name, shard)):
            continue
        ours = [r for r in index.records_of(name) if _ours(r, manifest_file) and r.name == name]
        if ours:
            current[name] = ours[-1]
    if not current:
        return []
    protected = _protected(everyone)
    found = (orphan(record, index, manifest, protected) for record in current.values())
    return sorted((o for o in found if o is not None), key=lambda o: o.name)


def replaced(entry: Entry, certificate_arn: str, index: IssuedIndex, manifest_file: str) -> list[Revocation]:
    """For an entry with ``revoke_replaced`` whose files hold ``certificate_arn``: each
    certificate its lineage replaced that the journal does not record as revoked."""
    reason = entry.revoke_replaced
    if reason is None:
        return []
    records = [r for r in index.records_of(entry.name) if _ours(r, manifest_file)]
    by_arn = {r.certificate_arn: r for r in records}
    if certificate_arn not in by_arn:
        return []
    out: dict[str, Revocation] = {}
    for record in records:
        old = by_arn.get(record.issued.replaces or "")
        if old is not None and old.certificate_arn != certificate_arn and index.revocation(old) is None:
            why = f"replaced by serial {serial_hex(serial_of_arn(record.certificate_arn))}"
            out.setdefault(old.certificate_arn, Revocation(name=entry.name, issued=old, reason=reason,
                                                           replaced_by=record.certificate_arn, why=why))
        if record.certificate_arn == certificate_arn:
            break
    return list(out.values())


def pending_replaced(steps: Sequence[Step], index: IssuedIndex, manifest_file: str) -> dict[str, list[Revocation]]:
    """For the plan: the replaced certificates that unchanged entries still have to revoke
    (a run stopped between delivering the new certificate and revoking the old one)."""
    out: dict[str, list[Revocation]] = {}
    for step in steps:
        record = step.decision.record
        if step.entry.revoke_replaced is None or step.decision.action != "unchanged" or record is None:
            continue
        found = replaced(step.entry, record.certificate_arn, index, manifest_file)
        if found:
            out[step.entry.name] = found
    return out
