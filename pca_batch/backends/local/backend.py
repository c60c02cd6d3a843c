"""The embedded local private CA: AWS Private CA's IssueCertificate, GetCertificate and
DescribeCertificateAuthority on a store folder (SQLite and key files).

It follows AWS's documented behaviour (the AWS Private CA API reference): ARNs and
serials, NotBefore backdating, the five Validity types, the CA's NotAfter and
SHORT_LIVED_CERTIFICATE limits, signing algorithm families and PSS, templates and
passthrough, five-minute idempotency tokens, and AWS's error codes.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from pca_batch.acmpca import (
    GENERAL_PURPOSE,
    IDEMPOTENCY_WINDOW,
    REVOCATION_REASONS,
    SHORT_LIVED,
    SHORT_LIVED_MAX,
    RevocationReason,
    parse_serial,
    serial_hex,
)
from pca_batch.backends.base import CaDescription, CertificateBundle, CertificateFacts
from pca_batch.backends.local.authorities import (
    Authority,
    authority_row,
    chain_of,
    check_ca_arn,
    ensure_declared,
    load_authority,
    pem,
    status_at,
    utc,
)
from pca_batch.backends.local.issuance import Issuance, PendingRoot, certificate_contents, checked_request, invalid
from pca_batch.backends.local.keys import load_key
from pca_batch.backends.local.signers import BATCH_MIN, Signed, Signers, SignJob, build, worker_count
from pca_batch.backends.local.store import AuthorityRow, CertificateRow, SerialTaken, Store
from pca_batch.backends.local.templates import Template, resolve_template
from pca_batch.backends.local.x509 import ToBeSigned, new_serial, parse_csr, signing_algorithm
from pca_batch.errors import BackendError
from pca_batch.model import AuthoritySpec
from pca_batch.pki.algorithms import family_of
from pca_batch.pki.validity import ValidityError, not_after, not_before
from pca_batch.times import RFC3339_FORMAT, rfc3339

__all__ = ["LocalBackend", "ensure_authorities"]

_CERT_ARN = re.compile(r"^(.+)/certificate/([0-9a-f]{32})$")
_RECENT_MAX = 8192  # issued PEMs kept in memory for the GetCertificate that follows
_TOKENS_MAX = 65536
STATUS_TTL_S = 1.0


def _certificate_row(serial: int, certificate_pem: str, issuance: Issuance) -> CertificateRow:
    clock = issuance.clock
    return CertificateRow(
        serial=serial_hex(serial),
        ca_arn=issuance.ca_arn,
        not_before=int(issuance.not_before.timestamp()),
        not_after=int(issuance.not_after.timestamp()),
        issued_at=int(clock.replace(microsecond=0).timestamp()),
        template_arn=issuance.template_arn,
        certificate_pem=certificate_pem,
        token=issuance.token,
        token_at=None if issuance.token is None else clock.timestamp(),
    )


@functools.lru_cache(maxsize=256)  # a batch's certificates share their few moments
def _epoch_rfc3339(seconds: int) -> str:
    """Unix seconds as :func:`~pca_batch.times.rfc3339` writes the moment."""
    return time.strftime(RFC3339_FORMAT, time.gmtime(seconds))


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
        self._recent: dict[str, tuple[str, CertificateFacts]] = {}  # ARN -> (PEM, facts)
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._statuses: dict[str, tuple[str, float]] = {}
        self._signers: Signers | None = None

    # -- the Backend protocol ---------------------------------------------------------

    def issue_certificate(self, request: Mapping[str, Any]) -> str:
        ca_arn, template, token = checked_request(request)
        if template.self_signed:
            row = self._store.authority(ca_arn)
            if row is not None and not row.has_certificate:
                return self._issue_own(request, row, template, token)
        prepared = self._prepare(request, ca_arn, token)
        if isinstance(prepared, str):
            return prepared
        return self._sign_and_record(*prepared)

    def issue_many(self, requests: Sequence[Mapping[str, Any]]) -> list[str | BackendError]:
        """IssueCertificate for each request, as :meth:`issue_certificate` answers it (an ARN or
        the error), with the certificates signed by the worker processes (when started) and
        recorded in one store transaction."""
        out: list[str | BackendError | None] = [None] * len(requests)
        todo: list[tuple[int, SignJob, Issuance]] = []
        later: list[int] = []  # the one-by-one way, once the others are recorded
        tokens: set[tuple[str, str]] = set()
        for i, request in enumerate(requests):
            try:
                ca_arn, template, token = checked_request(request)
                # A root CA's own certificate (maybe), or a token an earlier request of the batch
                # holds: answered as if the requests came one at a time.
                if template.self_signed or (token is not None and (ca_arn, token) in tokens):
                    later.append(i)
                    continue
                prepared = self._prepare(request, ca_arn, token)
                if token is not None:
                    tokens.add((ca_arn, token))
            except BackendError as exc:
                out[i] = exc
                continue
            if isinstance(prepared, str):
                out[i] = prepared
            else:
                job, issuance = prepared
                todo.append((i, replace(job, serial=new_serial()), issuance))
        pems = self._sign_all([job for _i, job, _issuance in todo])
        signed = [(i, job, issuance, found) for (i, job, issuance), found in zip(todo, pems, strict=True)]
        for i, found in self._record_many([s for s in signed if isinstance(s[3], str)]).items():
            out[i] = found
        for i, _job, _issuance, found in signed:
            if isinstance(found, BackendError):
                out[i] = found
        for i in later:
            try:
                out[i] = self.issue_certificate(requests[i])
            except BackendError as exc:
                out[i] = exc
        return [o if o is not None else BackendError("InternalFailure", "the request was not issued") for o in out]

    def _sign_and_record(self, job: SignJob, issuance: Issuance) -> str:
        """Sign here and record, under a fresh serial (again while the serial drawn is taken)."""
        authority = self._authority(issuance.ca_arn)
        return self._record(lambda serial: build(authority, replace(job, serial=serial)), issuance)

    def start_signers(self, workers: int | None = None) -> int:
        """Start the worker processes that sign for :meth:`issue_many` (call while this process
        has one thread, so that they fork); returns how many run."""
        if self._signers is None:
            self._signers = Signers(self._store.folder, worker_count() if workers is None else workers)
        return self._signers.running

    def _prepare(self, request: Mapping[str, Any], ca_arn: str, token: str | None) -> str | tuple[SignJob, Issuance]:
        """What the request would sign (every check but the CSR's and the template's, which
        signing makes), or the ARN its token holds already."""
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
        template = resolve_template(request.get("TemplateArn"))
        job = SignJob(request, authority.row, start, end, algorithm.name, serial=0)  # drawn when signed
        return job, Issuance(ca_arn, template.arn, token, clock, start, end)

    def _sign_all(self, jobs: Sequence[SignJob]) -> list[str | BackendError]:
        """PEM text (or the error) of each job: in the worker processes for batches worth sending."""
        answers: list[Signed] = [None] * len(jobs)
        if self._signers is not None and len(jobs) >= BATCH_MIN:
            answers = self._signers.sign(jobs)
        out: list[str | BackendError] = []
        for job, answer in zip(jobs, answers, strict=True):
            if isinstance(answer, str):
                out.append(answer)
            elif isinstance(answer, tuple):
                out.append(BackendError(*answer))
            else:  # no worker, or something unexpected there: here, where a bug shows as one
                try:
                    out.append(build(self._authority(job.authority.arn), job))
                except BackendError as exc:
                    out.append(exc)
        return out

    def _record_many(self, signed: Sequence[tuple[int, SignJob, Issuance, Any]]) -> dict[int, str | BackendError]:
        """Record signed certificates in one transaction; a serial taken is signed again here."""
        rows = [_certificate_row(job.serial, found, issuance) for _i, job, issuance, found in signed]
        since = [(issuance.clock - IDEMPOTENCY_WINDOW).timestamp() for _i, _job, issuance, _found in signed]
        answers = self._store.add_certificates(rows, since=since)
        out: dict[int, str | BackendError] = {}
        for (i, job, issuance, _found), row, answer in zip(signed, rows, answers, strict=True):
            if isinstance(answer, SerialTaken):
                try:
                    answer = self._sign_and_record(job, issuance)
                except BackendError as exc:
                    answer = exc
            elif isinstance(answer, str) and answer == row.arn:
                token = issuance.token
                self._remember(answer, row,
                               None if token is None else (issuance.ca_arn, token, issuance.clock.timestamp()))
            out[i] = answer
        return out

    def _issue_own(
        self, request: Mapping[str, Any], row: AuthorityRow, template: Template, token: str | None
    ) -> str:
        """A root CA in PENDING_CERTIFICATE signs its own certificate (its CSR, a RootCACertificate
        template), as AWS's users activate a root: the certificate is then imported."""
        if row.parent_arn is not None or row.ca_type == "SUBORDINATE":
            raise invalid(f"{template.name} is for a root CA; {row.arn} is a subordinate CA")
        if row.status != "PENDING_CERTIFICATE":
            raise BackendError("InvalidStateException", f"certificate authority {row.arn} is {row.status}")
        signer = PendingRoot(row, load_key(self._store.folder, row.key_file, row.arn))
        algorithm = signing_algorithm(request["SigningAlgorithm"], family_of(signer.key))
        clock = self._clock().astimezone(UTC)
        # The CA's own certificate: neither its NotAfter nor its usage mode's 7 days bound it.
        start, end = self._validity(request, clock.replace(microsecond=0), None, GENERAL_PURPOSE)
        csr, public_key = parse_csr(request["Csr"])
        subject, extensions = certificate_contents(request, template, signer, csr, public_key)
        tbs = ToBeSigned(subject, subject, public_key, start, end, extensions, signer.key, algorithm)
        issuance = Issuance(row.arn, template.arn, token, clock, start, end)
        return self._record(lambda serial: pem(tbs.sign(serial)), issuance, pending=True)

    def _record(self, sign: Callable[[int], str], issuance: Issuance, *, pending: bool = False) -> str:
        """Sign (PEM text) under a fresh serial and record the certificate; the ARN that holds."""
        since = (issuance.clock - IDEMPOTENCY_WINDOW).timestamp()
        arn, issued = self._add(sign, lambda serial, text: _certificate_row(serial, text, issuance), since, pending)
        if arn == issued.arn:
            token = issuance.token
            self._remember(arn, issued,
                           None if token is None else (issuance.ca_arn, token, issuance.clock.timestamp()))
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
        recent = self._recent.get(certificate_arn)
        if recent is not None:  # issued here: its facts known from its record (the runner need not parse it)
            certificate_pem, facts = recent
        else:
            row = self._store.certificate(m.group(2))
            if row is None or row.ca_arn != ca_arn:
                raise missing
            certificate_pem, facts = row.certificate_pem, None
        if chain.startswith(certificate_pem):
            # The root CA's own certificate, which it signed while it had none: issued without
            # a chain, AWS answers it without one, before its import and after.
            chain = ""
        return CertificateBundle(certificate=certificate_pem, chain=chain, facts=facts)

    def describe_certificate_authority(self, ca_arn: str) -> CaDescription:
        row = authority_row(self._store, check_ca_arn(ca_arn))
        return CaDescription(
            arn=row.arn,
            status=status_at(row, self._clock().astimezone(UTC)),
            key_algorithm=row.key_algorithm,
            usage_mode=row.usage_mode,
            not_after=utc(row.not_after) if row.has_certificate else None,
        )

    def get_certificate_authority_certificate(self, ca_arn: str) -> CertificateBundle:
        row = authority_row(self._store, check_ca_arn(ca_arn))
        if not row.has_certificate:
            raise BackendError("InvalidStateException",
                               f"certificate authority {ca_arn} is {row.status}: no certificate")
        chain = chain_of(self._store, authority_row(self._store, row.parent_arn)) if row.parent_arn is not None else ""
        return CertificateBundle(certificate=row.certificate_pem, chain=chain)

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
        if self._signers is not None:
            self._signers.close()
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
        sign: Callable[[int], str],
        row: Callable[[int, str], CertificateRow],
        since: float,
        pending: bool = False,
    ) -> tuple[str, CertificateRow]:
        """Sign under a fresh serial and record the certificate; the ARN the store answers
        (another certificate's, when the token was used since ``since``) and the row."""
        while True:
            serial = new_serial()
            issued = row(serial, sign(serial))
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

    def _remember(self, arn: str, row: CertificateRow, token: tuple[str, str, float] | None) -> None:
        """A certificate just issued, for the GetCertificate that follows (and its token's next ask)."""
        facts = CertificateFacts(row.serial, _epoch_rfc3339(row.not_before), _epoch_rfc3339(row.not_after))
        with self._lock:
            if len(self._recent) >= _RECENT_MAX:
                self._recent.pop(next(iter(self._recent)))
            self._recent[arn] = (row.certificate_pem, facts)
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
            raise invalid(str(exc)) from None
        except (AttributeError, TypeError):
            raise invalid("Validity and ValidityNotBefore must each have a Value and a Type") from None
        if end <= start:
            raise invalid("the certificate's NotAfter must be later than its NotBefore")
        if end <= now:
            raise invalid(f"the certificate's NotAfter {rfc3339(end)} is in the past")
        if limit is not None and end > limit:
            raise invalid(
                f"the certificate's NotAfter {rfc3339(end)} is past the CA's own NotAfter {rfc3339(limit)}"
            )
        if usage_mode == SHORT_LIVED:
            span = end - (start if explicit_start is not None else now)
            if span > SHORT_LIVED_MAX:
                raise invalid("a CA in SHORT_LIVED_CERTIFICATE mode issues certificates of at most 7 days")
        return start, end
