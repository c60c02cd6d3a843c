"""The local CA's certificate revocation lists, built as AWS Private CA builds its base CRLs.

Per the AWS Private CA user guide ("Planning a certificate revocation list (CRL)",
"CRL structure"): a complete (base) CRL, version 2, DER, signed by the CA with its
signing algorithm; issuer the CA's subject; thisUpdate and nextUpdate (thisUpdate plus
the configured ExpirationInDays); each revoked certificate by serial with its revocation
date and, unless the reason is UNSPECIFIED, a reason code entry extension; CRL
extensions AuthorityKeyIdentifier and CRLNumber. A revoked certificate is listed until it
expires, and in one CRL more after that. No delta CRLs, no IssuingDistributionPoint
(AWS writes one only into partitioned CRLs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

from pca_batch.acmpca import RevocationReason
from pca_batch.backends.local.authorities import Authority, utc
from pca_batch.backends.local.records import CertificateRow
from pca_batch.backends.local.x509 import SIGNING_ALGORITHMS
from pca_batch.model import DEFAULT_CRL_DAYS
from pca_batch.pki.algorithms import default_signing_algorithm

# RevokeCertificate's reasons as RFC 5280's CRLReason (UNSPECIFIED: no reason code at all).
REASON_FLAGS: dict[RevocationReason, x509.ReasonFlags] = {
    "KEY_COMPROMISE": x509.ReasonFlags.key_compromise,
    "CERTIFICATE_AUTHORITY_COMPROMISE": x509.ReasonFlags.ca_compromise,
    "AFFILIATION_CHANGED": x509.ReasonFlags.affiliation_changed,
    "SUPERSEDED": x509.ReasonFlags.superseded,
    "CESSATION_OF_OPERATION": x509.ReasonFlags.cessation_of_operation,
    "PRIVILEGE_WITHDRAWN": x509.ReasonFlags.privilege_withdrawn,
    "A_A_COMPROMISE": x509.ReasonFlags.aa_compromise,
}


@dataclass(frozen=True)
class CrlContents:
    """What one CRL says, before it is signed."""

    number: int
    this_update: datetime
    revoked: Sequence[CertificateRow]


def _entry(row: CertificateRow) -> x509.RevokedCertificate:
    assert row.revoked_at is not None
    builder = x509.RevokedCertificateBuilder(int(row.serial, 16), utc(row.revoked_at))
    flag = REASON_FLAGS.get(row.revocation_reason)  # type: ignore[call-overload]
    if flag is not None:
        builder = builder.add_extension(x509.CRLReason(flag), critical=False)
    return builder.build()


def build_crl(authority: Authority, contents: CrlContents) -> x509.CertificateRevocationList:
    """The CA's CRL of ``contents``, signed with the CA's signing algorithm."""
    days = authority.row.crl_days or DEFAULT_CRL_DAYS
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(authority.certificate.subject)
        .last_update(contents.this_update)
        .next_update(contents.this_update + timedelta(days=days))
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(authority.ski), critical=False)
        .add_extension(x509.CRLNumber(contents.number), critical=False)
    )
    for row in contents.revoked:
        builder = builder.add_revoked_certificate(_entry(row))
    name = authority.row.signing_algorithm or default_signing_algorithm(authority.row.key_algorithm)
    algorithm = SIGNING_ALGORITHMS[name]
    rsa_padding = algorithm.padding()
    if rsa_padding is not None:
        return builder.sign(authority.key, algorithm.hash, rsa_padding=rsa_padding)  # type: ignore[arg-type]
    return builder.sign(authority.key, algorithm.hash)  # type: ignore[arg-type]
