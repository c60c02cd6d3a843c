"""Local certificate authorities: create, load, list, enable/disable, audit report.

A root CA signs its own certificate under the RootCACertificate template; a
subordinate CA's certificate is issued by its parent under
SubordinateCACertificate_PathLenN, so chains have real depth and every CA
certificate is recorded in its issuer's audit report, as AWS does.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from pca_batch.backends.base import KEY_ALGORITHMS, USAGE_MODES
from pca_batch.backends.local.keys import load_key, remove_key, write_key
from pca_batch.backends.local.store import AuthorityRow, CertificateRow, SerialTaken, Store
from pca_batch.backends.local.templates import certificate_extensions, resolve_template, template_arn
from pca_batch.backends.local.x509 import (
    SIGNING_ALGORITHMS,
    CaKey,
    default_signing_algorithm,
    generate_key,
    key_family,
    new_serial,
    serial_hex,
    sign_certificate,
)
from pca_batch.errors import BackendError, UsageError
from pca_batch.model import AuthoritySpec
from pca_batch.pki.validity import NOT_BEFORE_BACKDATE

CA_ARN = re.compile(r"^arn:[\w+=/,.@-]+:acm-pca:([\w+=/,.@-]*):([0-9]*):certificate-authority/[\w+=,.@-]+$")
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"
MAX_PATH_LENGTH = 3  # the longest SubordinateCACertificate_PathLenN template


def check_ca_arn(arn: object) -> str:
    if not isinstance(arn, str) or not CA_ARN.match(arn):
        raise BackendError("InvalidArnException", f"{arn!r} is not a certificate authority ARN")
    return arn


def account_of(arn: str) -> str:
    m = CA_ARN.match(arn)
    return m.group(2) if m else ""


def utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


@dataclass(frozen=True)
class Authority:
    """A CA loaded for signing: its key decrypted once, its chain assembled once."""

    row: AuthorityRow
    certificate: x509.Certificate
    key: CaKey
    ski: x509.SubjectKeyIdentifier
    path_length: int | None
    chain_pem: str  # this CA's certificate and its ancestors', up to the root
    family: str  # RSA | EC, the key's

    @property
    def arn(self) -> str:
        return self.row.arn

    @property
    def not_after(self) -> datetime:
        return utc(self.row.not_after)


def authority_row(store: Store, arn: str) -> AuthorityRow:
    row = store.authority(arn)
    if row is None:
        raise BackendError("ResourceNotFoundException", f"certificate authority {arn} was not found")
    return row


def chain_of(store: Store, row: AuthorityRow) -> str:
    """PEM of the CA's certificate followed by its ancestors', up to and including the root."""
    chain = [row.certificate_pem]
    parent, seen = row.parent_arn, {row.arn}
    while parent is not None and parent not in seen:
        seen.add(parent)
        parent_row = store.authority(parent)
        if parent_row is None:
            raise BackendError("InvalidStateException", f"the parent CA {parent} of {row.arn} is missing")
        chain.append(parent_row.certificate_pem)
        parent = parent_row.parent_arn
    return "".join(chain)


def load_authority(store: Store, arn: str) -> Authority:
    row = authority_row(store, arn)
    key = load_key(store.folder, row.key_file, arn)
    cert = x509.load_pem_x509_certificate(row.certificate_pem.encode("ascii"))
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    return Authority(
        row=row,
        certificate=cert,
        key=key,
        ski=cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value,
        path_length=bc.path_length,
        chain_pem=chain_of(store, row),
        family=key_family(key),
    )


def status_at(row: AuthorityRow, now: datetime) -> str:
    if row.status == "ACTIVE" and now.timestamp() > row.not_after:
        return "EXPIRED"
    return row.status


def _subordinate_path_length(parent: Authority, usage_mode: str) -> int:
    if parent.row.usage_mode == "SHORT_LIVED_CERTIFICATE":
        raise BackendError(
            "InvalidArgsException",
            f"{parent.arn} issues short-lived certificates: it must be the last CA in its hierarchy",
        )
    if parent.path_length == 0:
        raise BackendError("InvalidArgsException", f"{parent.arn} has path length 0: it cannot sign a CA")
    if usage_mode == "SHORT_LIVED_CERTIFICATE":
        return 0
    return MAX_PATH_LENGTH if parent.path_length is None else min(MAX_PATH_LENGTH, parent.path_length - 1)


def _create(
    store: Store,
    *,
    arn: str,
    common_name: str,
    key_algorithm: str,
    validity_days: int,
    parent_arn: str | None,
    usage_mode: str,
    now: datetime,
) -> bool:
    """Create one CA under ``arn``; False when another process created it first."""
    if key_algorithm not in KEY_ALGORITHMS:
        raise BackendError("InvalidArgsException", f"KeyAlgorithm must be one of {', '.join(KEY_ALGORITHMS)}")
    if usage_mode not in USAGE_MODES:
        raise BackendError("InvalidArgsException", f"UsageMode must be one of {', '.join(USAGE_MODES)}")
    if not common_name or len(common_name) > 64:
        raise BackendError("InvalidArgsException", "the common name must have 1 to 64 characters")
    if not 1 <= validity_days <= 36500:
        raise BackendError("InvalidArgsException", "the validity must be 1 to 36500 days")
    now = now.replace(microsecond=0)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    not_before, not_after = now - NOT_BEFORE_BACKDATE, now + timedelta(days=validity_days)
    parent = load_authority(store, parent_arn) if parent_arn is not None else None
    if parent is not None:
        if status_at(parent.row, now) != "ACTIVE":
            raise BackendError("InvalidStateException", f"the parent CA {parent.arn} is not ACTIVE")
        path_length = _subordinate_path_length(parent, usage_mode)
        template = resolve_template(template_arn(f"SubordinateCACertificate_PathLen{path_length}"))
        # A CA of our own making is clamped to its parent's life rather than refused.
        not_after = min(not_after, parent.not_after)
    else:
        template = resolve_template(template_arn("RootCACertificate"))
    key = generate_key(key_algorithm)
    signer_key = parent.key if parent else key
    signer_algorithm = parent.row.key_algorithm if parent else key_algorithm
    extensions = certificate_extensions(
        template, subject=subject, public_key=key.public_key(), issuer_ski=parent.ski if parent else None
    )
    key_file = write_key(store.folder, key)
    try:
        while True:
            serial = new_serial()
            cert = sign_certificate(
                subject=subject,
                issuer=parent.certificate.subject if parent else subject,
                public_key=key.public_key(),
                serial=serial,
                not_before=not_before,
                not_after=not_after,
                extensions=extensions,
                signing_key=signer_key,
                algorithm=SIGNING_ALGORITHMS[default_signing_algorithm(signer_algorithm)],
            )
            cert_pem = pem(cert)
            issuer_arn = parent.arn if parent else arn
            record = CertificateRow(
                serial=serial_hex(serial),
                ca_arn=issuer_arn,
                not_before=int(not_before.timestamp()),
                not_after=int(not_after.timestamp()),
                issued_at=int(now.timestamp()),
                template_arn=template.arn,
                certificate_pem=cert_pem,
            )
            row = AuthorityRow(
                arn=arn,
                parent_arn=parent_arn,
                common_name=common_name,
                key_algorithm=key_algorithm,
                usage_mode=usage_mode,
                status="ACTIVE",
                key_file=key_file,
                certificate_pem=cert_pem,
                not_before=int(not_before.timestamp()),
                not_after=int(not_after.timestamp()),
                created_at=int(now.timestamp()),
            )
            try:
                created = store.add_authority(row, record)
                break
            except SerialTaken:
                continue
    except BaseException:
        remove_key(store.folder, key_file)
        raise
    if not created:
        remove_key(store.folder, key_file)
    return created


def new_authority(
    store: Store,
    *,
    common_name: str,
    key_algorithm: str = "EC_prime256v1",
    validity_days: int = 3650,
    parent_arn: str | None = None,
    usage_mode: str = "GENERAL_PURPOSE",
    region: str | None = None,
    account: str | None = None,
    now: datetime | None = None,
) -> str:
    """Create a CA with a new random ARN (region and account default to the parent's)."""
    if parent_arn is not None:
        check_ca_arn(parent_arn)
        parts = parent_arn.split(":")
        region, account = region or parts[3], account or parts[4]
    region, account = region or DEFAULT_REGION, account or DEFAULT_ACCOUNT
    if not re.fullmatch(r"[a-z0-9-]+", region):
        raise UsageError(f"--region {region!r} is not an AWS region name")
    if not re.fullmatch(r"[0-9]{12}", account):
        raise UsageError(f"--account {account!r} is not a 12-digit AWS account ID")
    arn = f"arn:aws:acm-pca:{region}:{account}:certificate-authority/{uuid.uuid4()}"
    _create(
        store,
        arn=arn,
        common_name=common_name,
        key_algorithm=key_algorithm,
        validity_days=validity_days,
        parent_arn=parent_arn,
        usage_mode=usage_mode,
        now=now or datetime.now(UTC),
    )
    return arn


def ensure_declared(store: Store, specs: Sequence[AuthoritySpec], *, now: datetime | None = None) -> None:
    """Create the declared CAs that are missing, parents first, each under its exact ARN."""
    by_arn = {spec.arn: spec for spec in specs}
    order: list[AuthoritySpec] = []
    state: dict[str, str] = {}

    def visit(spec: AuthoritySpec) -> None:
        if state.get(spec.arn) == "done":
            return
        if state.get(spec.arn) == "visiting":
            raise UsageError(f"backend.authorities: {spec.arn} is its own ancestor")
        state[spec.arn] = "visiting"
        if spec.parent is not None and spec.parent in by_arn:
            visit(by_arn[spec.parent])
        state[spec.arn] = "done"
        order.append(spec)

    for spec in specs:
        if not CA_ARN.match(spec.arn):
            raise UsageError(f"backend.authorities: {spec.arn!r} is not a certificate authority ARN")
        visit(spec)
    for spec in order:
        if store.authority(spec.arn) is not None:
            continue
        if spec.parent is not None and spec.parent not in by_arn and store.authority(spec.parent) is None:
            raise UsageError(f"backend.authorities: the parent {spec.parent} of {spec.arn} is not declared")
        _create(
            store,
            arn=spec.arn,
            common_name=spec.common_name,
            key_algorithm=spec.key_algorithm,
            validity_days=spec.validity_days,
            parent_arn=spec.parent,
            usage_mode=spec.usage_mode,
            now=now or datetime.now(UTC),
        )
