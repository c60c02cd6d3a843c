"""What an IssueCertificate request puts in a certificate: its members checked, the subject and
extensions from the template, ApiPassthrough and the CSR, and the template's rules on the CA
that signs (a root's own key, path lengths, short-lived CAs). Used by :mod:`.backend`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID

from pca_batch.acmpca import CSR_MAX_BYTES, SHORT_LIVED, TOKEN_MAX
from pca_batch.backends.local.authorities import check_ca_arn, distribution_point
from pca_batch.backends.local.passthrough import api_extensions, api_name
from pca_batch.backends.local.store import AuthorityRow
from pca_batch.backends.local.templates import (
    Template,
    certificate_extensions,
    resolve_template,
    with_distribution_point,
)
from pca_batch.backends.local.x509 import CaKey
from pca_batch.errors import BackendError

_TOKEN = re.compile(rf"^[\t\n\r\x20-\xff]{{1,{TOKEN_MAX}}}$")


@dataclass(frozen=True)
class Issuance:
    """What a certificate's record says besides the certificate: its CA, template, token, times."""

    ca_arn: str
    template_arn: str
    token: str | None
    clock: datetime  # the moment of the request (microseconds kept: the token's time)
    not_before: datetime
    not_after: datetime


def invalid(message: str) -> BackendError:
    return BackendError("InvalidArgsException", message)


def checked_request(request: Mapping[str, Any]) -> tuple[str, Template, str | None]:
    """The CA ARN, template and token of a request whose members have the API's shapes."""
    ca_arn = check_ca_arn(request.get("CertificateAuthorityArn"))
    for member in ("Csr", "SigningAlgorithm", "Validity"):
        if request.get(member) is None:
            raise invalid(f"{member} is required")
    template = resolve_template(request.get("TemplateArn"))
    token = request.get("IdempotencyToken")
    if token is not None and not (isinstance(token, str) and _TOKEN.match(token)):
        raise invalid(f"IdempotencyToken must be 1 to {TOKEN_MAX} characters of [\\t\\n\\r\\x20-\\xFF]")
    csr_data = request["Csr"]
    if isinstance(csr_data, bytes | bytearray | str) and len(csr_data) > CSR_MAX_BYTES:
        raise invalid(f"Csr is longer than {CSR_MAX_BYTES} bytes")
    return ca_arn, template, token


class Signer(Protocol):
    """What issuance needs of the CA that signs: an :class:`Authority`, or a root CA still
    waiting for its certificate, which signs its own (:class:`PendingRoot`)."""

    @property
    def row(self) -> AuthorityRow: ...
    @property
    def key(self) -> CaKey: ...
    @property
    def ski(self) -> x509.SubjectKeyIdentifier | None: ...
    @property
    def path_length(self) -> int | None: ...


@dataclass(frozen=True)
class PendingRoot:
    """A root CA in PENDING_CERTIFICATE: it can sign one thing, its own certificate."""

    row: AuthorityRow
    key: CaKey
    ski: x509.SubjectKeyIdentifier | None = None
    path_length: int | None = None


def certificate_contents(
    request: Mapping[str, Any],
    template: Template,
    authority: Signer,
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
            raise invalid("ApiPassthrough does not have the shape of the API's ApiPassthrough") from None
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


def _check_template(template: Template, authority: Signer, public_key: Any) -> None:
    if template.self_signed:
        der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if public_key.public_bytes(*der) != authority.key.public_key().public_bytes(*der):
            raise invalid(f"{template.name} signs the CA's own key; the CSR carries another key")
        return
    if not template.ca:
        return
    if authority.row.usage_mode == SHORT_LIVED:
        raise invalid("a CA in SHORT_LIVED_CERTIFICATE mode cannot issue CA certificates")
    limit = authority.path_length
    if limit is not None and (limit == 0 or (template.path_length or 0) > limit - 1):
        raise invalid(f"{template.name} exceeds the CA's path length constraint of {limit}")
