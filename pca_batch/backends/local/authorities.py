"""Local certificate authorities: create, load, list, enable/disable, audit report.

A root CA signs its own certificate under the RootCACertificate template; a
subordinate CA's certificate is issued by its parent under
SubordinateCACertificate_PathLenN, so chains have real depth and every CA
certificate is recorded in its issuer's audit report, as AWS does.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from pca_batch.acmpca import CA_ARN, SHORT_LIVED, USAGE_MODES, serial_hex
from pca_batch.backends.local.keys import load_key, remove_key, write_key
from pca_batch.backends.local.store import AuthorityRow, CertificateRow, SerialTaken, Store
from pca_batch.backends.local.templates import (
    Template,
    certificate_extensions,
    resolve_template,
    template_arn,
    with_distribution_point,
)
from pca_batch.backends.local.x509 import SIGNING_ALGORITHMS, CaKey, ToBeSigned, generate_key, new_serial
from pca_batch.errors import BackendError, UsageError
from pca_batch.model import AuthoritySpec
from pca_batch.pki.algorithms import KEY_ALGORITHMS, default_signing_algorithm, family_of
from pca_batch.pki.validity import NOT_BEFORE_BACKDATE

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"
MAX_PATH_LENGTH = 3  # the longest SubordinateCACertificate_PathLenN template
CRL_DAYS_MAX = 5000  # CrlConfiguration's bound on ExpirationInDays


def check_ca_arn(arn: object) -> str:
    if not isinstance(arn, str) or not CA_ARN.match(arn):
        raise BackendError("InvalidArnException", f"{arn!r} is not a certificate authority ARN")
    return arn


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
    """PEM of the CA's certificate followed by its ancestors', up to and including the root
    (for a CA whose certificate was imported with a chain: that chain, as AWS answers it)."""
    if row.chain_pem:
        return _joined(row.certificate_pem, row.chain_pem)
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


def _joined(*pems: str) -> str:
    return "".join(p if p.endswith("\n") else p + "\n" for p in pems if p)


def _subject_key_identifier(cert: x509.Certificate) -> x509.SubjectKeyIdentifier:
    """The certificate's SKI; an imported CA certificate may have none: then the key's own."""
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key())  # type: ignore[arg-type]


def load_authority(store: Store, arn: str) -> Authority:
    row = authority_row(store, arn)
    if not row.has_certificate:
        raise BackendError(
            "InvalidStateException", f"certificate authority {arn} is {row.status}: it has no certificate yet"
        )
    return authority_of(store.folder, row, chain_of(store, row))


def authority_of(folder: Path, row: AuthorityRow, chain_pem: str) -> Authority:
    """The CA of ``row`` (which has a certificate), its key read from the store ``folder``."""
    key = load_key(folder, row.key_file, row.arn)
    cert = x509.load_pem_x509_certificate(row.certificate_pem.encode("ascii"))
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    return Authority(
        row=row,
        certificate=cert,
        key=key,
        ski=_subject_key_identifier(cert),
        path_length=bc.path_length,
        chain_pem=chain_pem,
        family=family_of(key),
    )


def distribution_point(row: AuthorityRow) -> str | None:
    """The URL of the CA's CRL (``<crl url>/<CA id>.crl``, as AWS names it), or None: no CRLs."""
    if row.crl_url is None:
        return None
    return f"{row.crl_url.rstrip('/')}/{row.arn.rsplit('/', 1)[1]}.crl"


def status_at(row: AuthorityRow, now: datetime) -> str:
    if row.status == "ACTIVE" and now.timestamp() > row.not_after:
        return "EXPIRED"
    return row.status


def _subordinate_path_length(parent: Authority, usage_mode: str) -> int:
    if parent.row.usage_mode == SHORT_LIVED:
        raise BackendError(
            "InvalidArgsException",
            f"{parent.arn} issues short-lived certificates: it must be the last CA in its hierarchy",
        )
    if parent.path_length == 0:
        raise BackendError("InvalidArgsException", f"{parent.arn} has path length 0: it cannot sign a CA")
    if usage_mode == SHORT_LIVED:
        return 0
    return MAX_PATH_LENGTH if parent.path_length is None else min(MAX_PATH_LENGTH, parent.path_length - 1)


def _check(spec: AuthoritySpec) -> None:
    if spec.key_algorithm not in KEY_ALGORITHMS:
        raise BackendError("InvalidArgsException", f"KeyAlgorithm must be one of {', '.join(KEY_ALGORITHMS)}")
    if spec.usage_mode not in USAGE_MODES:
        raise BackendError("InvalidArgsException", f"UsageMode must be one of {', '.join(USAGE_MODES)}")
    if not spec.common_name or len(spec.common_name) > 64:
        raise BackendError("InvalidArgsException", "the common name must have 1 to 64 characters")
    if not 1 <= spec.validity_days <= 36500:
        raise BackendError("InvalidArgsException", "the validity must be 1 to 36500 days")
    if spec.crl is not None and not 1 <= spec.crl.days <= CRL_DAYS_MAX:
        raise BackendError("InvalidArgsException", f"a CRL's ExpirationInDays must be 1 to {CRL_DAYS_MAX}")
    if spec.crl is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", spec.crl.url):
        raise BackendError("InvalidArgsException", f"the CRL URL {spec.crl.url!r} is not an http(s) URL")


def _issuer(store: Store, spec: AuthoritySpec, now: datetime) -> tuple[Authority | None, Template]:
    """The parent that signs the new CA's certificate (None: it signs its own) and the template."""
    if spec.parent is None:
        return None, resolve_template(template_arn("RootCACertificate"))
    parent = load_authority(store, spec.parent)
    if status_at(parent.row, now) != "ACTIVE":
        raise BackendError("InvalidStateException", f"the parent CA {parent.arn} is not ACTIVE")
    path_length = _subordinate_path_length(parent, spec.usage_mode)
    return parent, resolve_template(template_arn(f"SubordinateCACertificate_PathLen{path_length}"))


@dataclass(frozen=True)
class _CaCertificate:
    """A new CA's certificate, signed once its serial is drawn."""

    issuer_arn: str
    template: Template
    not_before: datetime
    not_after: datetime
    sign: Callable[[int], x509.Certificate]  # the certificate under a serial: ToBeSigned.sign


def _ca_certificate(
    spec: AuthoritySpec, key: CaKey, parent: Authority | None, template: Template, now: datetime
) -> _CaCertificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, spec.common_name)])
    not_before, not_after = now - NOT_BEFORE_BACKDATE, now + timedelta(days=spec.validity_days)
    if parent is not None:
        # A CA of our own making is clamped to its parent's life rather than refused.
        not_after = min(not_after, parent.not_after)
    signer_algorithm = parent.row.key_algorithm if parent else spec.key_algorithm
    sign = ToBeSigned(
        subject=subject,
        issuer=parent.certificate.subject if parent else subject,
        public_key=key.public_key(),
        not_before=not_before,
        not_after=not_after,
        extensions=with_distribution_point(
            certificate_extensions(
                template, subject=subject, public_key=key.public_key(), issuer_ski=parent.ski if parent else None
            ),
            distribution_point(parent.row) if parent else None,
        ),
        signing_key=parent.key if parent else key,
        algorithm=SIGNING_ALGORITHMS[default_signing_algorithm(signer_algorithm)],
    ).sign
    return _CaCertificate(parent.arn if parent else spec.arn, template, not_before, not_after, sign)


def _add_authority(
    store: Store, spec: AuthoritySpec, certificate: _CaCertificate, key_file: str, now: datetime
) -> bool:
    """Sign the certificate under a fresh serial and record the CA; False when its ARN was taken."""
    not_before, not_after = int(certificate.not_before.timestamp()), int(certificate.not_after.timestamp())
    while True:
        serial = new_serial()
        cert_pem = pem(certificate.sign(serial))
        record = CertificateRow(
            serial=serial_hex(serial),
            ca_arn=certificate.issuer_arn,
            issued_at=int(now.timestamp()),
            template_arn=certificate.template.arn,
            certificate_pem=cert_pem,
            not_before=not_before,
            not_after=not_after,
        )
        row = AuthorityRow(
            arn=spec.arn,
            parent_arn=spec.parent,
            common_name=spec.common_name,
            key_algorithm=spec.key_algorithm,
            usage_mode=spec.usage_mode,
            status="ACTIVE",
            key_file=key_file,
            certificate_pem=cert_pem,
            not_before=not_before,
            not_after=not_after,
            created_at=int(now.timestamp()),
            crl_url=spec.crl.url if spec.crl else None,
            crl_days=spec.crl.days if spec.crl else None,
        )
        try:
            return store.add_authority(row, record)
        except SerialTaken:
            continue


def create(store: Store, spec: AuthoritySpec, now: datetime) -> bool:
    """Create the CA ``spec`` declares, under its ARN; False when another process created it first."""
    _check(spec)
    now = now.replace(microsecond=0)
    parent, template = _issuer(store, spec, now)
    key = generate_key(spec.key_algorithm)
    certificate = _ca_certificate(spec, key, parent, template, now)
    key_file = write_key(store.folder, key)
    try:
        created = _add_authority(store, spec, certificate, key_file, now)
    except BaseException:
        remove_key(store.folder, key_file)
        raise
    if not created:
        remove_key(store.folder, key_file)
    return created


def new_arn(*, parent_arn: str | None = None, region: str | None = None, account: str | None = None) -> str:
    """A new random CA ARN; region and account default to the parent's."""
    if parent_arn is not None:
        check_ca_arn(parent_arn)
        parts = parent_arn.split(":")
        region, account = region or parts[3], account or parts[4]
    region, account = region or DEFAULT_REGION, account or DEFAULT_ACCOUNT
    if not re.fullmatch(r"[a-z0-9-]+", region):
        raise UsageError(f"--region {region!r} is not an AWS region name")
    if not re.fullmatch(r"[0-9]{12}", account):
        raise UsageError(f"--account {account!r} is not a 12-digit AWS account ID")
    return f"arn:aws:acm-pca:{region}:{account}:certificate-authority/{uuid.uuid4()}"


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
        create(store, spec, now or datetime.now(UTC))
