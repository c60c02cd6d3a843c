"""The seam between the runner and a certificate authority service.

Both backends (the embedded local CA and AWS Private CA through boto3)
implement :class:`Backend`. Requests and answers have the shapes of the AWS
API (IssueCertificate, GetCertificate, DescribeCertificateAuthority); errors
are raised as :class:`pca_batch.errors.BackendError` carrying the AWS code.
Backends never retry: retries live in the runner alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from pca_batch.acmpca import RevocationReason
from pca_batch.errors import BackendError


@dataclass(frozen=True)
class CertificateFacts:
    """What reports say of a certificate: its serial and validity."""

    serial: str  # lowercase hex, no colons
    not_before: str  # RFC 3339, UTC
    not_after: str


@dataclass(frozen=True)
class CertificateBundle:
    """GetCertificate's answer: the leaf and its chain up to the root (leaf excluded).

    ``facts``: the leaf's serial and validity, when the backend knows them without parsing
    the PEM (the local CA, for a certificate it issued in this process); else None, and the
    runner reads them from the certificate. Both ways give the same facts (tested).
    """

    certificate: str
    chain: str
    facts: CertificateFacts | None = field(default=None, compare=False)  # a shortcut, not part of the answer


@dataclass(frozen=True)
class CaDescription:
    """The part of DescribeCertificateAuthority that preflight needs."""

    arn: str
    status: str  # CREATING | PENDING_CERTIFICATE | ACTIVE | DELETED | DISABLED | EXPIRED | FAILED
    # As the service answered: an AwsKeyAlgorithm (pca_batch.pki.algorithms) and a
    # UsageMode (pca_batch.acmpca), or a name newer than pca-batch, which preflight leaves alone.
    key_algorithm: str
    usage_mode: str
    not_after: datetime | None  # the CA certificate's NotAfter (UTC), when known


class Backend(Protocol):
    """What the runner calls. Implementations must be safe to call from many threads."""

    name: str

    def issue_certificate(self, request: Mapping[str, Any]) -> str:
        """IssueCertificate. ``request`` is the API input (``Csr`` as PEM bytes).

        Returns the certificate ARN.
        """
        ...

    def get_certificate(self, ca_arn: str, certificate_arn: str) -> CertificateBundle:
        """GetCertificate; may raise RequestInProgressException."""
        ...

    def describe_certificate_authority(self, ca_arn: str) -> CaDescription:
        """DescribeCertificateAuthority (read-only)."""
        ...

    def get_certificate_authority_certificate(self, ca_arn: str) -> CertificateBundle:
        """GetCertificateAuthorityCertificate (read-only): the CA's own certificate and, for a
        subordinate CA, its chain up to the root."""
        ...

    def revoke_certificate(self, ca_arn: str, serial: str, reason: RevocationReason) -> None:
        """RevokeCertificate of the certificate of ``serial`` (hex, colons allowed) that the CA issued.

        A certificate revoked already may answer RequestAlreadyProcessedException (the local
        CA, as AWS does) or nothing (the aws backend: a retry after a lost answer meets it, so
        it is done); callers treat both as done."""
        ...

    def close(self) -> None:
        ...


@runtime_checkable
class BatchBackend(Protocol):
    """A backend that issues many certificates in one call (the local CA): the runner then takes
    entries in batches, one journal write and one batch of files for each."""

    def issue_many(self, requests: Sequence[Mapping[str, Any]]) -> list[str | BackendError]:
        """IssueCertificate for each request: its ARN or the error it met, in order."""
        ...

    def start_signers(self, workers: int | None = None) -> int:
        """Start signing in worker processes, when the backend can; returns how many run."""
        ...
