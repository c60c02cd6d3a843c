"""``apply --adopt``: certificate files the state has no record of, judged instead of renewed.

An entry whose certificate file exists but is not in the state (written by a shell loop of
``aws acm-pca issue-certificate`` + ``get-certificate``, or left by a state that was lost) is
a candidate. It is adopted when the file chains to the entry's CA certificate
(GetCertificateAuthorityCertificate, once per CA), carries the entry's key, subject and SANs,
is signed with the entry's SigningAlgorithm, has the lifetime the request asks for (within
AWS's 60-minute backdate) and is not yet due for renewal. Otherwise it is renewed as without
``--adopt``, and the plan says why it was not adopted.

Read-only: :func:`judge` makes only GetCertificateAuthorityCertificate calls (retried as every
call is); apply records what it adopts (pca_batch.run.session).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pca_batch.acmpca import certificate_arn, serial_hex
from pca_batch.backends.base import Backend
from pca_batch.errors import BackendError
from pca_batch.model import UNCHANGED, Result
from pca_batch.plan import matching
from pca_batch.plan.converge import Step
from pca_batch.plan.renewal import NO_RECORD, due_for_renewal
from pca_batch.run.retry import Retrier, RetryPolicy
from pca_batch.times import rfc3339

PLANNED_ADOPTION = "not in the state; chains to the CA and fits the entry: recorded, not renewed"
ADOPTED = ("not in the state; it chains to the CA and fits the entry (key, subject, SANs, signing algorithm, "
           "lifetime): adopted")


@dataclass(frozen=True)
class Judged:
    """One candidate, judged: adoptable when ``differences`` is empty."""

    step: Step
    differences: tuple[str, ...]
    expected: matching.Expected | None = None
    certificate: x509.Certificate | None = None

    @property
    def adoptable(self) -> bool:
        return not self.differences and self.expected is not None and self.certificate is not None

    @property
    def leaf_pem(self) -> str:
        assert self.certificate is not None
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @property
    def certificate_arn(self) -> str:
        """The ARN AWS gives this certificate: the CA's, then its serial."""
        assert self.certificate is not None and self.step.entry.ca_arn is not None
        return certificate_arn(self.step.entry.ca_arn, serial_hex(self.certificate.serial_number))


def is_candidate(step: Step) -> bool:
    """A renewal only because the state has no record of the certificate on disk."""
    d = step.decision
    return d.action == "renew" and d.reason == NO_RECORD and d.existing is not None and d.record is None


def candidates(steps: Sequence[Step]) -> list[Step]:
    return [s for s in steps if is_candidate(s)]


class CaCertificates:
    """Each CA's certificate, asked for once (GetCertificateAuthorityCertificate, retried)."""

    def __init__(self, backend: Backend, max_attempts: int) -> None:
        self._backend = backend
        self._retrier = Retrier(RetryPolicy(max_attempts=max(1, max_attempts)))
        self._known: dict[str, tuple[x509.Certificate, str] | BackendError] = {}

    def get(self, ca_arn: str) -> tuple[x509.Certificate, str]:
        """The CA's certificate and its chain (PEM, up to the root); BackendError when it cannot be had."""
        known = self._known.get(ca_arn)
        if known is None:
            try:
                bundle = self._retrier.call(lambda: self._backend.get_certificate_authority_certificate(ca_arn))
                cert = matching.load_pem(bundle.certificate)
                known = (cert, bundle.certificate.strip() + "\n" + bundle.chain.strip()) if cert is not None else \
                    BackendError("MalformedCertificate", f"the CA {ca_arn} answered no PEM certificate")
            except BackendError as exc:
                known = exc
            self._known[ca_arn] = known
        if isinstance(known, BackendError):
            raise known
        return known


def judge_one(step: Step, cas: CaCertificates, shown: Mapping[str, str | None], *, now: datetime,
              env: Mapping[str, str] | None) -> Judged:
    entry, existing = step.entry, step.decision.existing
    assert entry.ca_arn is not None and entry.request is not None and existing is not None
    try:
        want = matching.expected(entry, shown, env)
    except matching.KeyUnavailable as exc:
        return Judged(step, (str(exc),))
    cert = existing.certificate
    try:
        ca_cert, _chain = cas.get(entry.ca_arn)
    except BackendError as exc:
        return Judged(step, (f"the CA certificate could not be had (GetCertificateAuthorityCertificate answered "
                             f"{exc.code}: {exc.message})",))
    found = [d for d in (matching.issuer_difference(cert, ca_cert, entry.ca_arn),) if d is not None]
    found += matching.identity_differences(cert, want)
    found += matching.issuance_differences(cert, entry.request)
    if not found and due_for_renewal(existing, entry.renew_before, now):
        found.append("it is due for renewal")
    return Judged(step, tuple(found), want, cert)


def judge(steps: Sequence[Step], cas: CaCertificates, base_dir: Path, *, now: datetime,
          env: Mapping[str, str] | None = None) -> list[Judged]:
    """Every candidate among ``steps``, judged (in their order); ``cas`` asks for each CA's
    certificate once."""
    return [judge_one(s, cas, s.entry.outputs.relative_to(base_dir), now=now, env=env) for s in candidates(steps)]


def not_adopted(step: Step, judged: Judged) -> Step:
    """The renewal, with the reason it was not adopted."""
    why = "; ".join(judged.differences)
    return replace(step, decision=replace(step.decision, reason=f"{NO_RECORD}; not adopted: {why}"))


def plan_row(row: Result, judged: Judged) -> Result:
    """A plan's row for an entry apply --adopt would adopt: ``= adopt``."""
    cert = judged.certificate
    assert cert is not None
    return replace(row, action="adopt", reason=PLANNED_ADOPTION, certificate_arn=judged.certificate_arn,
                   serial=serial_hex(cert.serial_number), not_before=rfc3339(cert.not_valid_before_utc),
                   not_after=rfc3339(cert.not_valid_after_utc),
                   idempotency_token=judged.expected.token if judged.expected else row.idempotency_token)


def adopted_result(judged: Judged, base_dir: Path) -> Result:
    """The report row of an adopted entry: unchanged, no IssueCertificate or GetCertificate call."""
    entry, cert, want = judged.step.entry, judged.certificate, judged.expected
    assert cert is not None and want is not None
    return Result(
        name=entry.name, status=UNCHANGED, certificate_authority_arn=entry.ca_arn,
        certificate_arn=judged.certificate_arn, serial=serial_hex(cert.serial_number),
        not_before=rfc3339(cert.not_valid_before_utc), not_after=rfc3339(cert.not_valid_after_utc),
        idempotency_token=want.token, outputs=entry.outputs.relative_to(base_dir), line=entry.line,
        action="unchanged", reason=ADOPTED,
    )
