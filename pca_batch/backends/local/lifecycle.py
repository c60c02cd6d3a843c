"""A local CA's life as AWS Private CA runs it, for `pca-batch serve`.

CreateCertificateAuthority makes the key and the CSR and leaves the CA in
PENDING_CERTIFICATE; ImportCertificateAuthorityCertificate installs its certificate (checked
by :mod:`.importing`) and makes it ACTIVE; UpdateCertificateAuthority switches ACTIVE and
DISABLED and changes the revocation configuration; DeleteCertificateAuthority leaves a CA
that is not ACTIVE DELETED, restorable for 7 to 30 days (RestoreCertificateAuthority brings
back the status it had), after which it is gone (:func:`purge`).

Each change is one write transaction whose condition is checked inside it, so two servers or a
server and ``pca-batch ca`` on one store never both win a race. CAs that ``pca-batch ca create``
or a manifest made are the same rows: they can be disabled, deleted and restored here too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from pca_batch.acmpca import IDEMPOTENCY_WINDOW
from pca_batch.backends.local.authorities import authority_row, status_at
from pca_batch.backends.local.importing import check_import
from pca_batch.backends.local.keys import load_key, remove_key, write_key
from pca_batch.backends.local.passthrough import general_name, key_usage
from pca_batch.backends.local.store import AuthorityRow, Store
from pca_batch.backends.local.x509 import CaKey, generate_key, signing_algorithm
from pca_batch.errors import BackendError
from pca_batch.pki.algorithms import default_signing_algorithm, family_of

PENDING = "PENDING_CERTIFICATE"
DELETED = "DELETED"
RESTORE_DAYS = 30  # PermanentDeletionTimeInDays when none is given
CA_QUOTA = 200  # AWS's default quota of CAs per account and region
_AUTH_COLUMNS = tuple(f.name for f in fields(AuthorityRow))
_ACCESS_METHODS = {
    "CA_REPOSITORY": x509.oid.SubjectInformationAccessOID.CA_REPOSITORY,
    "RESOURCE_PKI_MANIFEST": x509.ObjectIdentifier("1.3.6.1.5.5.7.48.10"),
    "RESOURCE_PKI_NOTIFY": x509.ObjectIdentifier("1.3.6.1.5.5.7.48.13"),
}


def _invalid(message: str) -> BackendError:
    return BackendError("InvalidArgsException", message)


def _state(message: str) -> BackendError:
    return BackendError("InvalidStateException", message)


@dataclass(frozen=True)
class NewCa:
    """CreateCertificateAuthority's request, checked against the model, with its CRL settings."""

    arn: str
    ca_type: str  # ROOT | SUBORDINATE
    configuration: Mapping[str, Any]  # CertificateAuthorityConfiguration
    revocation: Mapping[str, Any] | None  # RevocationConfiguration
    crl_url: str | None  # the folder of the CRL Distribution Point (None: no CRL, or the extension omitted)
    crl_days: int | None
    usage_mode: str
    key_storage: str | None = None
    token: str | None = None


def _renamed(error: BackendError) -> BackendError:
    """passthrough's messages name ApiPassthrough; here the member is the CA configuration's."""
    return BackendError(error.code, error.message.replace("ApiPassthrough.", "CsrExtensions."))


def csr_extensions(extensions: Mapping[str, Any] | None) -> list[x509.Extension[x509.ExtensionType]]:
    """The extensions of a CA's CSR: CA basic constraints, and the CsrExtensions asked for."""
    out: list[x509.Extension[x509.ExtensionType]] = [
        x509.Extension(x509.BasicConstraints.oid, True, x509.BasicConstraints(ca=True, path_length=None))
    ]
    extensions = extensions or {}
    try:
        usage = key_usage(extensions.get("KeyUsage") or {})
        if usage is not None:
            out.append(x509.Extension(usage.oid, True, usage))
        descriptions = []
        for i, item in enumerate(extensions.get("SubjectInformationAccess") or ()):
            method = item.get("AccessMethod") or {}
            oid = (
                x509.ObjectIdentifier(method["CustomObjectIdentifier"])
                if method.get("CustomObjectIdentifier")
                else _ACCESS_METHODS[method.get("AccessMethodType", "CA_REPOSITORY")]
            )
            location = general_name(item.get("AccessLocation") or {}, f"SubjectInformationAccess[{i}].AccessLocation")
            descriptions.append(x509.AccessDescription(oid, location))
    except BackendError as exc:
        raise _renamed(exc) from None
    except (ValueError, KeyError):
        raise _invalid("CsrExtensions.SubjectInformationAccess: an AccessMethod is not valid") from None
    if descriptions:
        sia = x509.SubjectInformationAccess(descriptions)
        out.append(x509.Extension(sia.oid, False, sia))
    return out


def make_csr(key: CaKey, subject: x509.Name, algorithm_name: str, extensions: Sequence[x509.Extension[Any]]) -> str:
    """The CA's CSR, signed with its key under its SigningAlgorithm."""
    algorithm = signing_algorithm(algorithm_name, family_of(key))
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    for extension in extensions:
        builder = builder.add_extension(extension.value, critical=extension.critical)
    padding = algorithm.padding()
    if padding is not None:
        csr = builder.sign(key, algorithm.hash, rsa_padding=padding)  # type: ignore[arg-type]
    else:
        csr = builder.sign(key, algorithm.hash)  # type: ignore[arg-type]
    return csr.public_bytes(Encoding.PEM).decode("ascii")


def _common_name(subject: x509.Name) -> str:
    names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def _token_holder(conn: Any, token: str | None, now: datetime) -> str | None:
    if token is None:
        return None
    since = (now - IDEMPOTENCY_WINDOW).timestamp()
    found = conn.execute(
        "SELECT arn FROM authorities WHERE create_token = ? AND create_token_at >= ? ORDER BY create_token_at DESC",
        (token, since),
    ).fetchone()
    return None if found is None else str(found[0])


def _pending_row(new: NewCa, subject: x509.Name, key_file: str, csr: str, now: datetime) -> AuthorityRow:
    config, seconds = new.configuration, int(now.timestamp())
    return AuthorityRow(
        arn=new.arn,
        parent_arn=None,
        common_name=_common_name(subject),
        key_algorithm=str(config["KeyAlgorithm"]),
        usage_mode=new.usage_mode,
        status=PENDING,
        key_file=key_file,
        certificate_pem="",
        not_before=0,
        not_after=0,
        created_at=seconds,
        crl_url=new.crl_url,
        crl_days=new.crl_days,
        ca_type=new.ca_type,
        signing_algorithm=str(config["SigningAlgorithm"]),
        configuration=json.dumps(config),
        revocation=None if new.revocation is None else json.dumps(new.revocation),
        csr_pem=csr,
        changed_at=seconds,
        key_storage=new.key_storage,
        create_token=new.token,
        create_token_at=None if new.token is None else now.timestamp(),
    )


def _check_quota(conn: Any, arn: str, now: datetime) -> None:
    prefix = arn.split(":certificate-authority/")[0] + ":certificate-authority/"
    count = conn.execute(
        "SELECT COUNT(*) FROM authorities WHERE substr(arn, 1, ?) = ? "
        "AND NOT (status = 'DELETED' AND restorable_until < ?)",
        (len(prefix), prefix, int(now.timestamp())),
    ).fetchone()[0]
    if count >= CA_QUOTA:
        raise BackendError(
            "LimitExceededException", f"this account has {count} CAs in this region: the quota is {CA_QUOTA}"
        )


def create(store: Store, new: NewCa, subject: x509.Name, now: datetime) -> str:
    """Create the CA in PENDING_CERTIFICATE: its key, its CSR. The ARN of the CA that holds: another
    one when ``new.token`` created it in the last five minutes (nothing new is made then)."""
    earlier = _token_holder(store.connection(), new.token, now)
    if earlier is not None:
        return earlier
    config = new.configuration
    key = generate_key(str(config["KeyAlgorithm"]))
    csr = make_csr(key, subject, str(config["SigningAlgorithm"]), csr_extensions(config.get("CsrExtensions")))
    key_file = write_key(store.folder, key)
    row = _pending_row(new, subject, key_file, csr, now)
    try:
        with store.write() as tx:
            earlier = _token_holder(tx, new.token, now)
            if earlier is None:
                _check_quota(tx, new.arn, now)
                columns, marks = ", ".join(_AUTH_COLUMNS), ", ".join("?" * len(_AUTH_COLUMNS))
                values = tuple(getattr(row, c) for c in _AUTH_COLUMNS)
                tx.execute(f"INSERT INTO authorities ({columns}) VALUES ({marks})", values)
    except BaseException:
        remove_key(store.folder, key_file)
        raise
    if earlier is not None:
        remove_key(store.folder, key_file)
        return earlier
    return new.arn


def visible(row: AuthorityRow, now: datetime) -> bool:
    """False for a CA deleted for good (its restoration period is over): AWS knows it no more."""
    return not (row.status == DELETED and (row.restorable_until or 0) < now.timestamp())


def known(store: Store, arn: str, now: datetime) -> AuthorityRow:
    """The CA's row; ResourceNotFoundException when there is none, or it is deleted for good."""
    row = authority_row(store, arn)
    if not visible(row, now):
        raise BackendError("ResourceNotFoundException", f"certificate authority {arn} was not found")
    return row


def ca_type(row: AuthorityRow) -> str:
    return row.ca_type or ("SUBORDINATE" if row.parent_arn else "ROOT")


def csr_of(store: Store, row: AuthorityRow) -> str:
    """GetCertificateAuthorityCsr's CSR: the one made at creation; for a CA that `ca create` or a
    manifest made (it had none), one made now with its key for its certificate's subject."""
    if row.csr_pem:
        return row.csr_pem
    key = load_key(store.folder, row.key_file, row.arn)
    subject = x509.load_pem_x509_certificate(row.certificate_pem.encode("ascii")).subject
    algorithm = row.signing_algorithm or default_signing_algorithm(row.key_algorithm)
    return make_csr(key, subject, algorithm, csr_extensions(None))


def _set(tx: Any, arn: str, values: Mapping[str, object]) -> None:
    assignments = ", ".join(f"{column} = ?" for column in values)  # column names are this module's own
    tx.execute(f"UPDATE authorities SET {assignments} WHERE arn = ?", (*values.values(), arn))


def _parent_in_store(store: Store, issuer: x509.Certificate) -> str | None:
    der = issuer.public_bytes(Encoding.DER)
    for row in store.authorities():
        if row.has_certificate:
            mine = x509.load_pem_x509_certificate(row.certificate_pem.encode("ascii"))
            if mine.public_bytes(Encoding.DER) == der:
                return row.arn
    return None


def import_certificate(store: Store, arn: str, certificate: bytes, chain: bytes | None, now: datetime) -> None:
    """ImportCertificateAuthorityCertificate: check the certificate and chain, install them; a
    PENDING_CERTIFICATE CA becomes ACTIVE (an ACTIVE or DISABLED one keeps its status)."""
    row = known(store, arn, now)
    if row.status not in (PENDING, "ACTIVE", "DISABLED"):
        raise _state(f"certificate authority {arn} is {row.status}: a certificate cannot be imported")
    key = load_key(store.folder, row.key_file, arn)
    imported = check_import(ca_type(row), key.public_key(), certificate, chain, now)
    cert = imported.certificate
    values: dict[str, object] = {
        "certificate_pem": imported.certificate_pem,
        "chain_pem": imported.chain_pem or None,
        "parent_arn": _parent_in_store(store, imported.chain[0]) if imported.chain else None,
        "not_before": int(cert.not_valid_before_utc.timestamp()),
        "not_after": int(cert.not_valid_after_utc.timestamp()),
        "common_name": _common_name(cert.subject),
        "ca_type": ca_type(row),
        "changed_at": int(now.timestamp()),
    }
    with store.write() as tx:
        current = tx.execute("SELECT status FROM authorities WHERE arn = ?", (arn,)).fetchone()
        if current is None or current[0] not in (PENDING, "ACTIVE", "DISABLED"):
            raise _state(f"certificate authority {arn} changed state while its certificate was imported")
        _set(tx, arn, {**values, "status": "ACTIVE" if current[0] == PENDING else current[0]})


@dataclass(frozen=True)
class Update:
    """UpdateCertificateAuthority's changes (None: unchanged)."""

    status: str | None = None  # ACTIVE | DISABLED
    revocation: Mapping[str, Any] | None = None
    crl_url: str | None = None
    crl_days: int | None = None


def update(store: Store, arn: str, change: Update, now: datetime) -> None:
    row = known(store, arn, now)
    status = status_at(row, now)
    if status not in ("ACTIVE", "DISABLED"):
        raise _state(f"certificate authority {arn} is {status}: only an ACTIVE or DISABLED CA can be updated")
    values: dict[str, object] = {}
    if change.status is not None and change.status != row.status:
        values.update(status=change.status, changed_at=int(now.timestamp()))
    if change.revocation is not None:
        values.update(revocation=json.dumps(change.revocation), crl_url=change.crl_url, crl_days=change.crl_days)
    if not values:
        return
    with store.write() as tx:
        current = tx.execute("SELECT status FROM authorities WHERE arn = ?", (arn,)).fetchone()
        if current is None or current[0] not in ("ACTIVE", "DISABLED"):
            raise _state(f"certificate authority {arn} is {current[0] if current else 'gone'}")
        _set(tx, arn, values)


def delete(store: Store, arn: str, days: int | None, now: datetime) -> None:
    """DeleteCertificateAuthority: DELETED, restorable for ``days`` (default 30); not an ACTIVE CA."""
    row = known(store, arn, now)
    status = status_at(row, now)
    if status == "ACTIVE":
        raise _state(f"certificate authority {arn} is ACTIVE: disable it before deleting it")
    if status == DELETED:
        raise _state(f"certificate authority {arn} is already DELETED")
    until = now + timedelta(days=RESTORE_DAYS if days is None else days)
    with store.write() as tx:
        cursor = tx.execute(
            "UPDATE authorities SET deleted_from = status, status = 'DELETED', restorable_until = ?, changed_at = ? "
            "WHERE arn = ? AND status = ?",
            (int(until.timestamp()), int(now.timestamp()), arn, row.status),
        )
        if cursor.rowcount != 1:
            raise BackendError("ConcurrentModificationException", f"certificate authority {arn} changed meanwhile")


def restore(store: Store, arn: str, now: datetime) -> None:
    """RestoreCertificateAuthority: a DELETED CA within its restoration period gets its status back."""
    row = known(store, arn, now)
    if row.status != DELETED:
        raise _state(f"certificate authority {arn} is {status_at(row, now)}, not DELETED")
    with store.write() as tx:
        tx.execute(
            "UPDATE authorities SET status = deleted_from, deleted_from = NULL, restorable_until = NULL, "
            "changed_at = ? WHERE arn = ? AND status = 'DELETED'",
            (int(now.timestamp()), arn),
        )


def purge(store: Store, now: datetime) -> list[str]:
    """Remove the CAs deleted for good (their restoration period over): rows, tags, permissions,
    policy and key file. What they issued stays recorded. Returns their ARNs."""
    with store.write() as tx:
        gone = tx.execute(
            "SELECT arn, key_file FROM authorities WHERE status = 'DELETED' AND restorable_until < ?",
            (int(now.timestamp()),),
        ).fetchall()
        for arn, _ in gone:
            for table in ("tags", "permissions", "policies"):
                tx.execute(f"DELETE FROM {table} WHERE ca_arn = ?", (arn,))
            tx.execute("DELETE FROM authorities WHERE arn = ?", (arn,))
    for _, key_file in gone:
        remove_key(store.folder, key_file)
    return [arn for arn, _ in gone]
