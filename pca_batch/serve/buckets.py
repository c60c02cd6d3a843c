"""The S3 buckets AWS Private CA writes to, as a folder (``--s3-dir``): one sub-folder per bucket.

Where AWS puts each object (AWS Private CA user guide: "Planning a certificate revocation list",
"Using audit reports")::

    <bucket>/crl/<CA id>.crl                       the CA's CRL, DER (CustomPath replaces "crl")
    <bucket>/audit-report/<CA id>/<report id>.json  an audit report (or .csv)

A CA's CRL is made again when it is asked for (over HTTP, or after a revocation here) and
something changed since the last one: a certificate revoked (by this server or another process
on the store), or the last CRL's nextUpdate passed. CAs that ``pca-batch ca create --crl`` made
have no bucket: their CRL is served over HTTP but written nowhere.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from pca_batch.backends.local.admin import audit_entries
from pca_batch.backends.local.authorities import load_authority
from pca_batch.backends.local.crl import CrlContents, build_crl
from pca_batch.backends.local.store import AuthorityRow, Store
from pca_batch.files import atomic_write
from pca_batch.model import DEFAULT_CRL_DAYS

AUDIT_FIELDS = (
    "awsAccountId", "requestedByServicePrincipal", "certificateArn", "serial", "subject", "notBefore",
    "notAfter", "issuedAt", "revokedAt", "revocationReason", "templateArn",
)  # fmt: skip
_SAFE = re.compile(r"^[-a-zA-Z0-9._]+$")


def ca_id(arn: str) -> str:
    return arn.rsplit("/", 1)[1]


def crl_configuration(row: AuthorityRow) -> dict[str, Any] | None:
    """The CA's CrlConfiguration when CRLs are enabled; None when not. A CA that `ca create --crl`
    made (no RevocationConfiguration recorded) has CRLs by its CRL URL."""
    if row.revocation is not None:
        crl = json.loads(row.revocation).get("CrlConfiguration") or {}
        return crl if crl.get("Enabled") else None
    if row.crl_url is not None:
        return {"Enabled": True, "ExpirationInDays": row.crl_days or DEFAULT_CRL_DAYS}
    return None


def _inside(root: Path, *parts: str) -> Path:
    """``root/parts...``, refusing any part that could climb out of the folder."""
    for part in parts:
        for piece in part.split("/"):
            if piece in ("", ".", "..") or not _SAFE.match(piece):
                raise ValueError(f"{part!r} is not a safe S3 key part")
    return root.joinpath(*parts)


@dataclass(frozen=True)
class _Published:
    der: bytes
    next_update: float
    revocations: tuple[int, int]  # (count, latest revoked_at) of the CA's revocations it reflects


class Buckets:
    """The folder of buckets; safe to share between threads."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._crls: dict[str, _Published] = {}

    # -- CRLs -----------------------------------------------------------------------------

    def crl_file(self, row: AuthorityRow) -> Path | None:
        crl = crl_configuration(row)
        if crl is None or not crl.get("S3BucketName"):
            return None
        folder = str(crl.get("CustomPath") or "crl").strip("/") or "crl"
        return _inside(self.root, str(crl["S3BucketName"]), folder, f"{ca_id(row.arn)}.crl")

    def crl(self, store: Store, row: AuthorityRow, now: datetime) -> bytes:
        """The CA's current CRL (DER): the last one made, or a new one when something changed."""
        revocations = _revocations(store, row.arn)
        with self._lock:
            last = self._crls.get(row.arn)
            if last is not None and last.revocations == revocations and last.next_update > now.timestamp():
                return last.der
            authority = load_authority(store, row.arn)
            this_update = now.replace(microsecond=0)
            number, revoked = store.next_crl(row.arn, at=int(this_update.timestamp()))
            crl = build_crl(authority, CrlContents(number, this_update, revoked))
            der = crl.public_bytes(Encoding.DER)
            assert crl.next_update_utc is not None
            self._crls[row.arn] = _Published(der, crl.next_update_utc.timestamp(), revocations)
            path = self.crl_file(row)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(path, der)
        return der

    def forget(self, arn: str) -> None:
        """The CA's configuration changed: its next CRL is made anew."""
        with self._lock:
            self._crls.pop(arn, None)

    # -- audit reports --------------------------------------------------------------------

    def audit_key(self, arn: str, report_id: str, response_format: str) -> str:
        return f"audit-report/{ca_id(arn)}/{report_id}.{response_format.lower()}"

    def write_audit_report(self, store: Store, arn: str, bucket: str, key: str) -> Path:
        """Write the CA's audit report (JSON or CSV, as the key ends) into the bucket."""
        entries = audit_entries(store, arn)
        if key.endswith(".csv"):
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=AUDIT_FIELDS, extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            for entry in entries:
                writer.writerow({k: "" if v is None else v for k, v in entry.items()})
            data = out.getvalue()
        else:
            data = json.dumps([{k: v for k, v in e.items() if v is not None} for e in entries], indent=2) + "\n"
        path = _inside(self.root, bucket, *key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)
        return path


def _revocations(store: Store, arn: str) -> tuple[int, int]:
    sql = "SELECT COUNT(*), MAX(revoked_at) FROM certificates WHERE ca_arn = ? AND revoked_at IS NOT NULL"
    count, latest = store.connection().execute(sql, (arn,)).fetchone()
    return int(count), int(latest or 0)
