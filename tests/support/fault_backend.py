"""A fault-injecting in-memory backend that drives the runner in tests and the bench.

It implements the Backend protocol with a real in-memory EC CA (cryptography):
IssueCertificate signs a real certificate from the request's CSR, honours
idempotency tokens like AWS (the same CA and token within five minutes answer
the first certificate's ARN and issue nothing new), and GetCertificate
answers the leaf and the CA certificate as its chain.

Faults are scripted per idempotency token, one step per call, in order::

    FaultBackend(script={token: Script(issue=["throttle", "timeout"], get=["in_progress"] * 3)})

Steps: ``ok``; ``throttle`` (ThrottlingException, 400); ``5xx``
(InternalFailure, 500); ``connection`` (ConnectionError, nothing reaches the
CA); ``timeout`` (the CA issues, the answer is lost: ReadTimeout);
``crash`` (the CA issues, the answer is lost and the caller dies:
:class:`SimulatedCrash`, a BaseException, as between IssueCertificate and the
journal write); ``in_progress`` (GetCertificate only:
RequestInProgressException); ``error:CODE`` (a BackendError with that code).
``delay`` answers every call after that many seconds (the bench's slow mode).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pca_batch.backends.base import CaDescription, CertificateBundle
from pca_batch.errors import BackendError
from pca_batch.model import Entry, Outputs
from pca_batch.pki.validity import ValidityError, not_after, not_before

CA_ARN = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/11111111-2222-3333-4444-555555555555"
TOKEN_WINDOW = timedelta(minutes=5)
STEPS = ("ok", "throttle", "5xx", "connection", "timeout", "crash", "in_progress")


class SimulatedCrash(BaseException):
    """The process 'dies' right after the CA issued: nothing after this point happens."""


@dataclass
class Script:
    issue: list[str] = field(default_factory=list)
    get: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Issued:
    arn: str
    ca_arn: str
    token: str | None
    pem: str
    at: datetime


class _Authority:
    def __init__(self, arn: str) -> None:
        self.arn = arn
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Fault CA {arn[-4:]}")])
        self.not_after = now + timedelta(days=3650)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(self.not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def sign(self, csr: x509.CertificateSigningRequest, request: Mapping[str, Any], serial: int) -> str:
        now = datetime.now(UTC)
        try:
            end = not_after(request.get("Validity") or {"Value": 90, "Type": "DAYS"}, now)
            start = not_before(request.get("ValidityNotBefore"), now)
        except ValidityError as exc:
            raise BackendError("InvalidArgsException", str(exc), status=400) from None
        cert = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.certificate.subject)
            .public_key(csr.public_key())  # type: ignore[arg-type]
            .serial_number(serial)
            .not_valid_before(start)
            .not_valid_after(min(end, self.not_after))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


class FaultBackend:
    name = "fault"

    def __init__(
        self,
        *,
        ca_arns: Sequence[str] = (CA_ARN,),
        script: Mapping[str, Script] | None = None,
        delay: float = 0.0,
        before_issue: Callable[[Mapping[str, Any]], None] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.authorities = {arn: _Authority(arn) for arn in ca_arns}
        self.script: dict[str, Script] = {
            token: Script(list(steps.issue), list(steps.get)) for token, steps in (script or {}).items()
        }
        self.delay = delay
        self.before_issue = before_issue
        self._now = now
        self._clock = clock
        self.in_flight = 0
        self.most_in_flight = 0  # the most calls that were being answered at one moment
        self._lock = threading.Lock()
        self.issued: dict[str, Issued] = {}
        self._by_token: dict[tuple[str, str], str] = {}
        self.issue_calls: Counter[str] = Counter()  # per token
        self.get_calls: Counter[str] = Counter()  # per certificate ARN
        self.calls: list[tuple[str, float]] = []  # (operation, clock() on arrival)
        self.revoked: dict[tuple[str, int], str] = {}  # (CA ARN, serial) -> reason

    # -- what tests look at ----------------------------------------------------------------

    def certificates_for(self, token: str) -> list[str]:
        with self._lock:
            return [i.arn for i in self.issued.values() if i.token == token]

    def tokens_issued(self) -> Counter[str | None]:
        with self._lock:
            return Counter(i.token for i in self.issued.values())

    # -- the Backend protocol ----------------------------------------------------------------

    def _arrive(self, operation: str) -> None:
        with self._lock:
            self.calls.append((operation, self._clock()))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _step(self, token: str | None, kind: str) -> str:
        with self._lock:
            script = self.script.get(token or "")
            queue = getattr(script, kind) if script else []
            return queue.pop(0) if queue else "ok"

    def issue_certificate(self, request: Mapping[str, Any]) -> str:
        self._arrive("IssueCertificate")
        if self.before_issue is not None:
            self.before_issue(request)
        token = request.get("IdempotencyToken")
        with self._lock:
            self.issue_calls[token or ""] += 1
        step = self._step(token, "issue")
        _raise_plain(step)
        arn = self._issue(request, token)
        if step == "timeout":
            raise BackendError("ReadTimeout", "Read timeout on endpoint URL (the answer was lost)")
        if step == "crash":
            raise SimulatedCrash(arn)
        return arn

    def _issue(self, request: Mapping[str, Any], token: str | None) -> str:
        ca_arn = str(request.get("CertificateAuthorityArn"))
        authority = self.authorities.get(ca_arn)
        if authority is None:
            raise BackendError("ResourceNotFoundException", f"Could not find certificate authority {ca_arn}.",
                               status=400)
        try:
            csr = x509.load_pem_x509_csr(bytes(request["Csr"]))
        except (ValueError, KeyError, TypeError):
            raise BackendError("MalformedCSRException", "The certificate signing request is invalid.",
                               status=400) from None
        now = self._now()
        with self._lock:
            known = self._by_token.get((ca_arn, token)) if token else None
            if known is not None and now - self.issued[known].at < TOKEN_WINDOW:
                return known
        serial = int.from_bytes(os.urandom(16), "big") | (1 << 124)
        pem = authority.sign(csr, request, serial)
        arn = f"{ca_arn}/certificate/{serial:032x}"
        with self._lock:
            self.issued[arn] = Issued(arn=arn, ca_arn=ca_arn, token=token, pem=pem, at=now)
            if token:
                self._by_token[(ca_arn, token)] = arn
        return arn

    def get_certificate(self, ca_arn: str, certificate_arn: str) -> CertificateBundle:
        self._arrive("GetCertificate")
        with self._lock:
            self.get_calls[certificate_arn] += 1
            issued = self.issued.get(certificate_arn)
        if issued is None or issued.ca_arn != ca_arn:
            raise BackendError("ResourceNotFoundException", f"Could not find certificate {certificate_arn}.",
                               status=400)
        step = self._step(issued.token, "get")
        if step == "in_progress":
            raise BackendError("RequestInProgressException", "The request is still in progress.", status=400)
        _raise_plain(step)
        return CertificateBundle(certificate=issued.pem, chain=self.authorities[ca_arn].pem)

    def describe_certificate_authority(self, ca_arn: str) -> CaDescription:
        self._arrive("DescribeCertificateAuthority")
        authority = self.authorities.get(ca_arn)
        if authority is None:
            raise BackendError("ResourceNotFoundException", f"Could not find certificate authority {ca_arn}.",
                               status=400)
        return CaDescription(arn=ca_arn, status="ACTIVE", key_algorithm="EC_prime256v1",
                             usage_mode="GENERAL_PURPOSE", not_after=authority.not_after)

    def get_certificate_authority_certificate(self, ca_arn: str) -> CertificateBundle:
        self._arrive("GetCertificateAuthorityCertificate")
        authority = self.authorities.get(ca_arn)
        if authority is None:
            raise BackendError("ResourceNotFoundException", f"Could not find certificate authority {ca_arn}.",
                               status=400)
        return CertificateBundle(certificate=authority.pem, chain="")

    def revoke_certificate(self, ca_arn: str, serial: str, reason: str) -> None:
        self._arrive("RevokeCertificate")
        key = (ca_arn, int(serial.replace(":", ""), 16))
        with self._lock:
            if not any(i.ca_arn == ca_arn and int(i.arn[-32:], 16) == key[1] for i in self.issued.values()):
                raise BackendError("ResourceNotFoundException", f"Could not find certificate {serial}.", status=400)
            if key in self.revoked:
                raise BackendError("RequestAlreadyProcessedException", "already revoked", status=400)
            self.revoked[key] = reason

    def close(self) -> None:
        pass


def _raise_plain(step: str) -> None:
    """Raise the faults that happen before the CA sees the request."""
    if step == "throttle":
        raise BackendError("ThrottlingException", "Rate exceeded", status=400)
    if step == "5xx":
        raise BackendError("InternalFailure", "We encountered an internal error. Please try again.",
                           status=500)
    if step == "connection":
        raise BackendError("ConnectionError", "Could not connect to the endpoint URL")
    if step.startswith("error:"):
        raise BackendError(step.partition(":")[2], "injected error", status=400)


def make_csr(common_name: str, key: ec.EllipticCurvePrivateKey | None = None) -> str:
    """A PEM CSR for ``common_name`` (an EC P-256 key unless one is given)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def tokens_with_two_certificates(backend: FaultBackend) -> dict[str | None, int]:
    counts: defaultdict[str | None, int] = defaultdict(int)
    for token, n in backend.tokens_issued().items():
        if n > 1:
            counts[token] = n
    return dict(counts)


def make_entry(
    root: Path,
    name: str,
    *,
    index: int = 0,
    ca_arn: str = CA_ARN,
    csr: str | None = None,
    outputs: bool = True,
) -> Entry:
    """A valid Entry as the manifest loader would build it, writing under ``root/out``."""
    request = {
        "CertificateAuthorityArn": ca_arn,
        "Csr": csr or make_csr(f"{name}.example.com"),
        "SigningAlgorithm": "SHA256WITHECDSA",
        "Validity": {"Value": 30, "Type": "DAYS"},
    }
    out = root / "out"
    files = (
        Outputs(certificate=out / f"{name}.pem", chain=out / f"{name}.chain.pem",
                full_chain=out / f"{name}.full.pem")
        if outputs
        else Outputs()
    )
    return Entry(name=name, index=index, line=10 + 4 * index, request=request, token=f"tok-{name}",
                 csr=None, outputs=files)


def make_entries(root: Path, count: int, *, csr: str | None = None, prefix: str = "e") -> list[Entry]:
    shared = csr or make_csr("shared.example.com")
    return [make_entry(root, f"{prefix}{i:04d}", index=i, csr=shared) for i in range(count)]


class FakeClock:
    """A monotonic clock that moves only when someone sleeps; safe across threads."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds
