"""The embedded local private CA: AWS Private CA's IssueCertificate, GetCertificate and
DescribeCertificateAuthority on a store folder (SQLite and key files).

It follows AWS's documented behaviour (the AWS Private CA API reference): ARNs and
serials, NotBefore backdating, the five Validity types, the CA's NotAfter and
SHORT_LIVED_CERTIFICATE limits, signing algorithm families and PSS, templates and
passthrough, five-minute idempotency tokens, and AWS's error codes.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID

from pca_batch.acmpca import (
    CSR_MAX_BYTES,
    GENERAL_PURPOSE,
    IDEMPOTENCY_WINDOW,
    REVOCATION_REASONS,
    SHORT_LIVED,
    SHORT_LIVED_MAX,
    TOKEN_MAX,
    RevocationReason,
    parse_serial,
    serial_hex,
)
from pca_batch.backends.base import CaDescription, CertificateBundle
from pca_batch.backends.local.authorities import (
    Authority,
    authority_row,
    chain_of,
    check_ca_arn,
    distribution_point,
    ensure_declared,
    load_authority,
    pem,
    status_at,
    utc,
)
from pca_batch.backends.local.keys import load_key
from pca_batch.backends.local.passthrough import api_extensions, api_name
from pca_batch.backends.local.store import AuthorityRow, CertificateRow, SerialTaken, Store
from pca_batch.backends.local.templates import (
    Template,
    certificate_extensions,
    resolve_template,
    with_distribution_point,
)
from pca_batch.backends.local.x509 import CaKey, ToBeSigned, new_serial, parse_csr, signing_algorithm
from pca_batch.errors import BackendError
from pca_batch.model import AuthoritySpec
from pca_batch.pki.algorithms import family_of
from pca_batch.pki.validity import ValidityError, not_after, not_before
from pca_batch.times import rfc3339

__all__ = ["LocalBackend", "ensure_authorities"]


@dataclass(frozen=True)
class _Issuance:
    """What a certificate's record says besides the certificate: its CA, template, token, times."""

    ca_arn: str
    template_arn: str
    token: str | None
    clock: datetime  # the moment of the request (microseconds kept: the token's time)
    not_before: datetime
    not_after: datetime

_TOKEN = re.compile(rf"^[\t\n\r\x20-\xff]{{1,{TOKEN_MAX}}}$")
_CERT_ARN = re.compile(r"^(.+)/certificate/([0-9a-f]{32})$")
_RECENT_MAX = 8192  # issued PEMs kept in memory for the GetCertificate that follows
_TOKENS_MAX = 65536
STATUS_TTL_S = 1.0


def ensure_authorities(store: Path, specs: Sequence[AuthoritySpec]) -> None:
    """Create the declared local CAs that are missing (parents first, exact ARNs).

    Safe to call from several processes at once: a CA created by another process
    in the meantime is kept, and the loser's key file is removed.
    """
    opened = Store(store)
    try:
        ensure_declared(opened, specs)
    finally:
        opened.close()


def _invalid(message: str) -> BackendError:
    return BackendError("InvalidArgsException", message)


def _checked_request(request: Mapping[str, Any]) -> tuple[str, Template, str | None]:
    """The CA ARN, template and token of a request whose members have the API's shapes."""
    ca_arn = check_ca_arn(request.get("CertificateAuthorityArn"))
    for member in ("Csr", "SigningAlgorithm", "Validity"):
        if request.get(member) is None:
            raise _invalid(f"{member} is required")
    template = resolve_template(request.get("TemplateArn"))
    token = request.get("IdempotencyToken")
    if token is not None and not (isinstance(token, str) and _TOKEN.match(token)):
        raise _invalid(f"IdempotencyToken must be 1 to {TOKEN_MAX} characters of [\\t\\n\\r\\x20-\\xFF]")
    csr_data = request["Csr"]
    if isinstance(csr_data, bytes | bytearray | str) and len(csr_data) > CSR_MAX_BYTES:
        raise _invalid(f"Csr is longer than {CSR_MAX_BYTES} bytes")
    return ca_arn, template, token


class _Signer(Protocol):
    """What issuance needs of the CA that signs: an :class:`Authority`, or a root CA still
    waiting for its certificate, which signs its own (:class:`_PendingRoot`)."""

    @property
    def row(self) -> AuthorityRow: ...
    @property
    def key(self) -> CaKey: ...
    @property
    def ski(self) -> x509.SubjectKeyIdentifier | None: ...
    @property
    def path_length(self) -> int | None: ...


@dataclass(frozen=True)
class _PendingRoot:
    """A root CA in PENDING_CERTIFICATE: it can sign one thing, its own certificate."""

    row: AuthorityRow
    key: CaKey
    ski: x509.SubjectKeyIdentifier | None = None
    path_length: int | None = None


def _contents(
    request: Mapping[str, Any],
    template: Template,
    authority: _Signer,
    csr: x509.CertificateSigningRequest,
    public_key: Any,
) -> tuple[x509.Name, list[x509.Extension[x509.ExtensionType]]]:
    """The subject and extensions of the certificate: from the template, ApiPassthrough and the CSR."""
    subject, extra = csr.subject, []
    passthrough = request.get("ApiPassthrough") if template.api_passthrough else None
    if passthrough:
        try:
            if passthrough.get("Subject"):
                subject = api_name(passthrough["Subject"])
            extra = api_extensions(passthrough.get("Extensions") or {})
        except (AttributeError, TypeError, KeyError):
            raise _invalid("ApiPassthrough does not have the shape of the API's ApiPassthrough") from None
    _check_template(template, authority, public_key)
    extensions = certificate_extensions(
        template,
        subject=subject,
        public_key=public_key,
        issuer_ski=None if template.self_signed else authority.ski,
        csr_extensions=list(csr.extensions),
        api_extensions=extra,
    )
    if not template.self_signed:
        extensions = with_distribution_point(extensions, distribution_point(authority.row))
    if not subject and not any(e.oid == ExtensionOID.SUBJECT_ALTERNATIVE_NAME for e in extensions):
        raise BackendError("MalformedCSRException", "the CSR has neither a subject nor a subject alternative name")
    return subject, extensions


def _check_template(template: Template, authority: _Signer, public_key: Any) -> None:
    if template.self_signed:
        der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if public_key.public_bytes(*der) != authority.key.public_key().public_bytes(*der):
            raise _invalid(f"{template.name} signs the CA's own key; the CSR carries another key")
        return
    if not template.ca:
        return
    if authority.row.usage_mode == SHORT_LIVED:
        raise _invalid("a CA in SHORT_LIVED_CERTIFICATE mode cannot issue CA certificates")
    limit = authority.path_length
    if limit is not None and (limit == 0 or (template.path_length or 0) > limit - 1):
        raise _invalid(f"{template.name} exceeds the CA's path length constraint of {limit}")


class LocalBackend:
    """The Backend protocol on a local store; safe to call from many threads."""

    name = "local"

    def __init__(
        self, store: Path, *, clock: Callable[[], datetime] | None = None, read_only: bool = False
    ) -> None:
        """``read_only``: describe and get only, on a store that exists (see Store)."""
        self._store = Store(store, create=not read_only, read_only=read_only)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._authorities: dict[str, Authority] = {}
        self._chains: dict[str, str] = {}
        self._recent: dict[str, str] = {}
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._statuses: dict[str, tuple[str, float]] = {}

    # -- the Backend protocol ---------------------------------------------------------

    def issue_certificate(self, request: Mapping[str, Any]) -> str:
        ca_arn, template, token = _checked_request(request)
        if template.self_signed:
            row = self._store.authority(ca_arn)
            if row is not None and not row.has_certificate:
                return self._issue_own(request, row, template, token)
        authority = self._authority(ca_arn)
        algorithm = signing_algorithm(request["SigningAlgorithm"], authority.family)
        clock = self._clock().astimezone(UTC)
        now = clock.replace(microsecond=0)
        self._check_active(authority, now)
        since = (clock - IDEMPOTENCY_WINDOW).timestamp()
        if token is not None:
            # Tokens this instance recorded answer from memory; others (another process's,
            # or older ones) are checked in the transaction that records the certificate.
            mine = self._tokens.get((ca_arn, token))
            if mine is not None and mine[1] >= since:
                return mine[0]
        start, end = self._validity(request, now, authority.not_after, authority.row.usage_mode)
        csr, public_key = parse_csr(request["Csr"])
        subject, extensions = _contents(request, template, authority, csr, public_key)
        sign = ToBeSigned(
            subject=subject,
            issuer=subject if template.self_signed else authority.certificate.subject,
            public_key=public_key,
            not_before=start,
            not_after=end,
            extensions=extensions,
            signing_key=authority.key,
            algorithm=algorithm,
        ).sign
        return self._record(sign, _Issuance(ca_arn, template.arn, token, clock, start, end))

    def _issue_own(
        self, request: Mapping[str, Any], row: AuthorityRow, template: Template, token: str | None
    ) -> str:
        """A root CA in PENDING_CERTIFICATE signs its own certificate (its CSR, a RootCACertificate
        template), as AWS's users activate a root: the certificate is then imported."""
        if row.parent_arn is not None or row.ca_type == "SUBORDINATE":
            raise _invalid(f"{template.name} is for a root CA; {row.arn} is a subordinate CA")
        if row.status != "PENDING_CERTIFICATE":
            raise BackendError("InvalidStateException", f"certificate authority {row.arn} is {row.status}")
        signer = _PendingRoot(row, load_key(self._store.folder, row.key_file, row.arn))
        algorithm = signing_algorithm(request["SigningAlgorithm"], family_of(signer.key))
        clock = self._clock().astimezone(UTC)
        # The CA's own certificate: neither its NotAfter nor its usage mode's 7 days bound it.
        start, end = self._validity(request, clock.replace(microsecond=0), None, GENERAL_PURPOSE)
        csr, public_key = parse_csr(request["Csr"])
        subject, extensions = _contents(request, template, signer, csr, public_key)
        sign = ToBeSigned(subject, subject, public_key, start, end, extensions, signer.key, algorithm).sign
        return self._record(sign, _Issuance(row.arn, template.arn, token, clock, start, end), pending=True)

    def _record(self, sign: Callable[[int], x509.Certificate], issuance: _Issuance, *, pending: bool = False) -> str:
        """Sign under a fresh serial and record the certificate; the ARN that holds."""
        ca_arn, token, clock = issuance.ca_arn, issuance.token, issuance.clock
        start, end = issuance.not_before, issuance.not_after
        since = (clock - IDEMPOTENCY_WINDOW).timestamp()
        now = clock.replace(microsecond=0)

        def row(serial: int, certificate_pem: str) -> CertificateRow:
            return CertificateRow(
                serial=serial_hex(serial),
                ca_arn=ca_arn,
                not_before=int(start.timestamp()),
                not_after=int(end.timestamp()),
                issued_at=int(now.timestamp()),
                template_arn=issuance.template_arn,
                certificate_pem=certificate_pem,
                token=token,
                token_at=None if token is None else clock.timestamp(),
            )

        arn, issued = self._add(sign, row, since, pending)
        if arn == issued.arn:
            self._remember(arn, issued.certificate_pem, None if token is None else (ca_arn, token, clock.timestamp()))
        return arn

    def get_certificate(self, ca_arn: str, certificate_arn: str) -> CertificateBundle:
        check_ca_arn(ca_arn)
        m = _CERT_ARN.match(certificate_arn) if isinstance(certificate_arn, str) else None
        if m is None:
            raise BackendError("InvalidArnException", f"{certificate_arn!r} is not a certificate ARN")
        chain = self._chain(ca_arn)
        missing = BackendError("ResourceNotFoundException", f"certificate {certificate_arn} was not found")
        if m.group(1) != ca_arn:
            raise missing
        certificate_pem = self._recent.get(certificate_arn)
        if certificate_pem is None:
            row = self._store.certificate(m.group(2))
            if row is None or row.ca_arn != ca_arn:
                raise missing
            certificate_pem = row.certificate_pem
        if chain.startswith(certificate_pem):
            # The root CA's own certificate, which it signed while it had none: issued without
            # a chain, AWS answers it without one, before its import and after.
            chain = ""
        return CertificateBundle(certificate=certificate_pem, chain=chain)

    def describe_certificate_authority(self, ca_arn: str) -> CaDescription:
        row = authority_row(self._store, check_ca_arn(ca_arn))
        return CaDescription(
            arn=row.arn,
            status=status_at(row, self._clock().astimezone(UTC)),
            key_algorithm=row.key_algorithm,
            usage_mode=row.usage_mode,
            not_after=utc(row.not_after) if row.has_certificate else None,
        )

    def revoke_certificate(self, ca_arn: str, serial: str, reason: RevocationReason) -> None:
        """RevokeCertificate: ``serial`` in hex, with or without colons. Errors as AWS answers
        them: ResourceNotFoundException (a serial this CA did not issue),
        RequestAlreadyProcessedException (revoked already), InvalidStateException (the CA is
        not ACTIVE), InvalidRequestException (the root CA's own self-signed certificate)."""
        row = authority_row(self._store, check_ca_arn(ca_arn))
        if reason not in REVOCATION_REASONS:
            raise BackendError(
                "ValidationException", f"RevocationReason must be one of {', '.join(REVOCATION_REASONS)}"
            )
        number = parse_serial(serial)
        if number is None:
            raise BackendError("InvalidRequestException", f"CertificateSerial {serial!r} is not a hexadecimal serial")
        now = self._clock().astimezone(UTC)
        status = status_at(row, now)
        if status != "ACTIVE":
            raise BackendError("InvalidStateException", f"certificate authority {ca_arn} is {status}, not ACTIVE")
        own = x509.load_pem_x509_certificate(row.certificate_pem.encode("ascii")).serial_number
        if row.parent_arn is None and number == own:
            raise BackendError("InvalidRequestException", "Self-signed certificate can not be revoked")
        self._store.revoke(ca_arn, serial_hex(number), at=int(now.timestamp()), reason=reason)

    def forget(self, ca_arn: str) -> None:
        """Drop what this backend keeps of a CA (its key, certificate, chain, status): the CA changed
        (a certificate imported, its revocation configuration or status updated)."""
        with self._lock:
            self._authorities.pop(ca_arn, None)
            self._chains.pop(ca_arn, None)
            self._statuses.pop(ca_arn, None)

    def close(self) -> None:
        self._store.close()

    # -- helpers ------------------------------------------------------------------------

    def _check_active(self, authority: Authority, now: datetime) -> None:
        expired = status_at(authority.row, now) == "EXPIRED"
        status = "EXPIRED" if expired else self._status(authority.arn)
        if status != "ACTIVE":
            raise BackendError(
                "InvalidStateException", f"certificate authority {authority.arn} is {status}, not ACTIVE"
            )

    def _add(
        self,
        sign: Callable[..., x509.Certificate],
        row: Callable[[int, str], CertificateRow],
        since: float,
        pending: bool = False,
    ) -> tuple[str, CertificateRow]:
        """Sign under a fresh serial and record the certificate; the ARN the store answers
        (another certificate's, when the token was used since ``since``) and the row."""
        while True:
            serial = new_serial()
            issued = row(serial, pem(sign(serial)))
            try:
                return self._store.add_certificate(issued, since=since, pending=pending), issued
            except SerialTaken:
                continue

    def _authority(self, ca_arn: str) -> Authority:
        authority = self._authorities.get(ca_arn)
        if authority is None:
            with self._lock:  # load and decrypt each CA key once per backend
                authority = self._authorities.get(ca_arn)
                if authority is None:
                    authority = load_authority(self._store, ca_arn)
                    self._authorities[ca_arn] = authority
        return authority

    def _chain(self, ca_arn: str) -> str:
        if ca_arn in self._authorities:
            return self._authorities[ca_arn].chain_pem
        chain = self._chains.get(ca_arn)
        if chain is None:
            row = authority_row(self._store, ca_arn)
            chain = chain_of(self._store, row)
            if row.has_certificate:  # a pending CA's chain comes with its certificate
                self._chains[ca_arn] = chain
        return chain

    def _remember(self, arn: str, certificate_pem: str, token: tuple[str, str, float] | None) -> None:
        with self._lock:
            if len(self._recent) >= _RECENT_MAX:
                self._recent.pop(next(iter(self._recent)))
            self._recent[arn] = certificate_pem
            if token is not None:
                if len(self._tokens) >= _TOKENS_MAX:
                    self._tokens.pop(next(iter(self._tokens)))
                self._tokens[token[:2]] = (arn, token[2])

    def _status(self, ca_arn: str) -> str:
        """The CA's status; ACTIVE is trusted for a second (the commit re-checks it), others never."""
        cached = self._statuses.get(ca_arn)
        if cached is None or cached[0] != "ACTIVE" or time.monotonic() - cached[1] > STATUS_TTL_S:
            row = authority_row(self._store, ca_arn)
            cached = (row.status, time.monotonic())
            self._statuses[ca_arn] = cached
        return cached[0]

    def _validity(
        self, request: Mapping[str, Any], now: datetime, limit: datetime | None, usage_mode: str
    ) -> tuple[datetime, datetime]:
        """NotBefore and NotAfter of the request; ``limit``: the CA's own NotAfter (None: a root's own)."""
        explicit_start = request.get("ValidityNotBefore")
        try:
            start = not_before(explicit_start, now)
            end = not_after(request["Validity"], now)
        except ValidityError as exc:
            raise _invalid(str(exc)) from None
        except (AttributeError, TypeError):
            raise _invalid("Validity and ValidityNotBefore must each have a Value and a Type") from None
        if end <= start:
            raise _invalid("the certificate's NotAfter must be later than its NotBefore")
        if end <= now:
            raise _invalid(f"the certificate's NotAfter {rfc3339(end)} is in the past")
        if limit is not None and end > limit:
            raise _invalid(
                f"the certificate's NotAfter {rfc3339(end)} is past the CA's own NotAfter {rfc3339(limit)}"
            )
        if usage_mode == SHORT_LIVED:
            span = end - (start if explicit_start is not None else now)
            if span > SHORT_LIVED_MAX:
                raise _invalid("a CA in SHORT_LIVED_CERTIFICATE mode issues certificates of at most 7 days")
        return start, end
