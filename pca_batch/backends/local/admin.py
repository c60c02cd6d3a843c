"""What `pca-batch ca ...` does to a local store, as plain functions over a store folder.

Each function opens the store, does one thing and closes it. Read-only ones never
create a store that is not there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from pca_batch.acmpca import account_of
from pca_batch.backends.local.authorities import (
    authority_row,
    chain_of,
    check_ca_arn,
    create,
    load_authority,
    new_arn,
    status_at,
    utc,
)
from pca_batch.backends.local.store import DB_NAME, AuthorityRow, Store
from pca_batch.errors import BackendError
from pca_batch.model import AuthoritySpec, NewAuthority
from pca_batch.pki.algorithms import default_signing_algorithm
from pca_batch.times import audit_time

CA_STATUSES = ("ACTIVE", "DISABLED")


@contextmanager
def _opened(folder: Path, *, create: bool) -> Iterator[Store]:
    store = Store(folder, create=create)
    try:
        yield store
    finally:
        store.close()


def _known(store: Store, ca_arn: str) -> AuthorityRow:
    return authority_row(store, check_ca_arn(ca_arn))


def create_authority(folder: Path, new: NewAuthority, *, now: datetime | None = None) -> str:
    """Create a local CA (a root, or a subordinate of ``new.parent_arn``); returns its new ARN."""
    arn = new_arn(parent_arn=new.parent_arn, region=new.region, account=new.account)
    spec = AuthoritySpec(
        arn=arn,
        common_name=new.common_name,
        key_algorithm=new.key_algorithm,
        parent=new.parent_arn,
        validity_days=new.validity_days,
        usage_mode=new.usage_mode,
        crl=new.crl,
    )
    with _opened(folder, create=True) as store:
        create(store, spec, now or datetime.now(UTC))
    return arn


def list_authorities(folder: Path, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """ListCertificateAuthorities' items for every CA in the store (none when no store)."""
    if not (folder / DB_NAME).exists():
        return []
    now = now or datetime.now(UTC)
    with _opened(folder, create=False) as store:
        rows = store.authorities()
    return [_listed(row, now) for row in rows]


def _listed(row: AuthorityRow, now: datetime) -> dict[str, Any]:
    listed: dict[str, Any] = {
        "Arn": row.arn,
        "OwnerAccount": account_of(row.arn),
        "CreatedAt": utc(row.created_at).isoformat(),
        "Type": row.ca_type or ("SUBORDINATE" if row.parent_arn else "ROOT"),
        "ParentArn": row.parent_arn,
        "Status": status_at(row, now),
        "UsageMode": row.usage_mode,
        "NotBefore": utc(row.not_before).isoformat(),
        "NotAfter": utc(row.not_after).isoformat(),
        "CertificateAuthorityConfiguration": {
            "KeyAlgorithm": row.key_algorithm,
            "SigningAlgorithm": row.signing_algorithm or default_signing_algorithm(row.key_algorithm),
            "Subject": {"CommonName": row.common_name},
        },
    }
    if not row.has_certificate:  # made by `pca-batch serve`, waiting for its certificate
        del listed["NotBefore"], listed["NotAfter"]
    return listed


def authority_certificate(folder: Path, ca_arn: str) -> str:
    """The CA's own certificate, PEM."""
    with _opened(folder, create=False) as store:
        return _certified(store, ca_arn).certificate_pem


def _certified(store: Store, ca_arn: str) -> AuthorityRow:
    """The CA's row, when it has a certificate (one `pca-batch serve` made may wait for it)."""
    row = _known(store, ca_arn)
    if not row.has_certificate:
        raise BackendError("InvalidStateException", f"certificate authority {ca_arn} is {row.status}: no certificate")
    return row


def get_certificate_authority_certificate(folder: Path, ca_arn: str) -> dict[str, str]:
    """GetCertificateAuthorityCertificate's answer: the CA's own certificate (PEM) and, for a
    subordinate CA, its CertificateChain (its issuer's certificate and theirs, up to the root)."""
    with _opened(folder, create=False) as store:
        row = _certified(store, ca_arn)
        answer = {"Certificate": row.certificate_pem}
        if row.parent_arn is not None:
            answer["CertificateChain"] = chain_of(store, authority_row(store, row.parent_arn))
        return answer


def set_authority_status(folder: Path, ca_arn: str, status: str) -> None:
    """UpdateCertificateAuthority's Status: ACTIVE or DISABLED."""
    if status not in CA_STATUSES:
        raise BackendError("InvalidArgsException", f"Status must be one of {', '.join(CA_STATUSES)}")
    with _opened(folder, create=False) as store:
        row = _certified(store, ca_arn)
        if row.status not in CA_STATUSES:  # DELETED: RestoreCertificateAuthority brings it back, not this
            raise BackendError("InvalidStateException", f"certificate authority {ca_arn} is {row.status}")
        store.set_authority_status(ca_arn, status)


def _audit_time(seconds: int | None) -> str | None:
    return None if seconds is None else audit_time(seconds)


def _subject(certificate_pem: str) -> str:
    return x509.load_pem_x509_certificate(certificate_pem.encode("ascii")).subject.rfc4514_string()


def audit_report(folder: Path, ca_arn: str) -> list[dict[str, Any]]:
    """The CA's audit report: one object per certificate it issued, oldest first."""
    with _opened(folder, create=False) as store:
        _known(store, ca_arn)
        return audit_entries(store, ca_arn)


def audit_entries(store: Store, ca_arn: str) -> list[dict[str, Any]]:
    """The objects of the CA's audit report, read from an open store."""
    rows = store.certificates(ca_arn)
    account = account_of(ca_arn)
    return [
        {
            "awsAccountId": account,
            "certificateArn": row.arn,
            "serial": ":".join(row.serial[i : i + 2] for i in range(0, len(row.serial), 2)),
            "subject": _subject(row.certificate_pem),
            "notBefore": _audit_time(row.not_before),
            "notAfter": _audit_time(row.not_after),
            "issuedAt": _audit_time(row.issued_at),
            "revokedAt": _audit_time(row.revoked_at),
            "revocationReason": row.revocation_reason,
            "templateArn": row.template_arn,
        }
        for row in rows
    ]


def certificate_revocation_list(
    folder: Path, ca_arn: str, *, now: datetime | None = None
) -> x509.CertificateRevocationList:
    """The CA's current complete CRL, under the next CRL number (each call makes a new CRL)."""
    from pca_batch.backends.local.crl import CrlContents, build_crl

    this_update = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    with _opened(folder, create=False) as store:
        authority = load_authority(store, check_ca_arn(ca_arn))
        number, revoked = store.next_crl(ca_arn, at=int(this_update.timestamp()))
    return build_crl(authority, CrlContents(number, this_update, revoked))
