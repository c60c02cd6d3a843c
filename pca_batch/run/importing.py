"""``pca-batch state import MANIFEST NAME CERTIFICATE_ARN``: a certificate issued earlier (by a
shell loop, the console, another tool) taken under management.

GetCertificate through the run's backend (retried as every call is), then the checks of
:mod:`pca_batch.plan.matching`: the ARN names the entry's CA and ends in the certificate's
serial, the certificate was issued by that CA (issuer and signature), for the entry's key,
subject and SANs. Any difference is a usage error naming each one, and nothing is recorded or
written. Otherwise the certificate is recorded in the journal (an ``issued`` line, durable,
under the token the next apply looks for, with the manifest and the outputs, as apply writes
them) and then its files are written as apply writes them (atomically, inside the manifest's
folder). The next apply finds the entry ``unchanged`` and makes no call for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pca_batch import files
from pca_batch.acmpca import CERTIFICATE_ARN, serial_hex, serial_of_arn
from pca_batch.backends.base import Backend, CertificateBundle
from pca_batch.errors import EXIT_FAILED, EXIT_OK, BackendError, UsageError, suggestion
from pca_batch.model import ApplyOptions, Entry, Manifest
from pca_batch.plan import converge, matching
from pca_batch.plan.renewal import IssuedIndex
from pca_batch.report.text import write_lines
from pca_batch.run.delivery import write_outputs
from pca_batch.run.journal import Issued
from pca_batch.run.retry import Retrier, RetryPolicy
from pca_batch.run.settings import open_for_run, resolve_config
from pca_batch.state import ALL, State, open_state
from pca_batch.times import rfc3339

if TYPE_CHECKING:
    from cryptography import x509
    from rich.console import Console

PREFIX = "pca-batch state import"
_NOT_FOUND = frozenset({"ResourceNotFoundException", "InvalidArnException"})


@dataclass(frozen=True)
class Fetched:
    """GetCertificate's answer, read: the leaf and the certificate of the CA that issued it."""

    bundle: CertificateBundle
    certificate: x509.Certificate
    ca_certificate: x509.Certificate


@dataclass(frozen=True)
class Claim:
    """What the command line claims: this certificate (of this CA) is this entry's, which wants ``want``."""

    entry: Entry
    certificate_arn: str
    ca_arn: str
    want: matching.Expected


def find_entry(manifest: Manifest, name: str) -> Entry:
    entries = {e.name: e for e in manifest.entries}
    entry = entries.get(name)
    if entry is None:
        raise UsageError(f"{PREFIX}: no entry named {name!r} in {manifest.display}{suggestion(name, entries)}")
    if not entry.valid:
        first = entry.problems[0] if entry.problems else None
        why = f": {first.path}: {first.message}" if first else ""
        raise UsageError(f"{PREFIX}: entry {name} of {manifest.display} is not valid{why}; fix the manifest first")
    return entry


def split_arn(certificate_arn: str, entry: Entry) -> str:
    """The CA ARN a certificate ARN names; UsageError when it is no certificate ARN or names
    another CA than the entry's."""
    m = CERTIFICATE_ARN.match(certificate_arn)
    if m is None:
        raise UsageError(
            f"{PREFIX}: {certificate_arn!r} is not a certificate ARN "
            "(arn:aws:acm-pca:REGION:ACCOUNT:certificate-authority/CA_ID/certificate/SERIAL)"
        )
    ca_arn = m.group(1)
    if ca_arn != entry.ca_arn:
        raise UsageError(
            f"{PREFIX}: nothing recorded: the certificate is of the CA {ca_arn}, "
            f"entry {entry.name} is issued by {entry.ca_arn}"
        )
    return ca_arn


def fetch(backend: Backend, ca_arn: str, certificate_arn: str, max_attempts: int) -> Fetched:
    """GetCertificate (retried like any call), and the issuing CA's certificate: the first of the
    chain, or GetCertificateAuthorityCertificate when the answer has no chain."""
    retrier = Retrier(RetryPolicy(max_attempts=max_attempts))
    try:
        bundle = retrier.call(lambda: backend.get_certificate(ca_arn, certificate_arn))
    except BackendError as exc:
        if exc.code in _NOT_FOUND:
            raise UsageError(f"{PREFIX}: nothing recorded: the CA {ca_arn} has no certificate {certificate_arn} "
                             f"(GetCertificate answered {exc.code})") from None
        raise
    certificate = matching.load_pem(bundle.certificate)
    if certificate is None:
        raise BackendError("MalformedCertificate", f"GetCertificate of {certificate_arn} answered no PEM certificate")
    ca_pem = bundle.chain
    if not ca_pem.strip():
        ca_pem = retrier.call(lambda: backend.get_certificate_authority_certificate(ca_arn)).certificate
    ca_certificate = matching.load_pem(ca_pem)
    if ca_certificate is None:
        raise BackendError("MalformedCertificate", f"no PEM certificate for the CA {ca_arn}")
    return Fetched(bundle, certificate, ca_certificate)


def differences(fetched: Fetched, certificate_arn: str, ca_arn: str, want: matching.Expected) -> list[str]:
    """Everything that keeps the fetched certificate from being the entry's."""
    out = []
    serial = serial_hex(fetched.certificate.serial_number)
    if serial_of_arn(certificate_arn) != fetched.certificate.serial_number:
        out.append(f"the certificate's serial {serial} is not the one its ARN ends in")
    issuer = matching.issuer_difference(fetched.certificate, fetched.ca_certificate, ca_arn)
    if issuer is not None:
        out.append(issuer)
    return out + matching.identity_differences(fetched.certificate, want)


def _recorded(index: IssuedIndex, certificate_arn: str, name: str) -> bool:
    """True when the journal holds this certificate for this entry already; UsageError when it
    holds it for another entry, or records it as revoked."""
    record = index.get(serial_hex(serial_of_arn(certificate_arn)))
    if record is None or record.certificate_arn != certificate_arn:
        return False
    if record.name != name:
        raise UsageError(f"{PREFIX}: nothing recorded: {certificate_arn} is recorded already for entry {record.name}")
    revoked = index.revocation(record)
    if revoked is not None:
        raise UsageError(f"{PREFIX}: nothing recorded: {certificate_arn} was revoked ({revoked.reason}, "
                         f"{revoked.time}); apply issues entry {name} a new certificate")
    return True


def run_import(manifest: Manifest, name: str, certificate_arn: str, options: ApplyOptions, console: Console,
               env: Mapping[str, str] | None = None) -> int:
    """Check, record, write; 0 when the certificate is recorded and its files are in place."""
    entry = find_entry(manifest, name)
    ca_arn = split_arn(certificate_arn, entry)
    base_dir = manifest.path.parent
    shown = entry.outputs.relative_to(base_dir)
    try:
        want = matching.expected(entry, shown, env)
    except matching.KeyUnavailable as exc:
        raise UsageError(f"{PREFIX}: nothing recorded: entry {name}: {exc}") from None
    state = open_state(manifest, options)
    try:
        with state.locked("state import", ALL, options.lock_timeout):
            claim = Claim(entry, certificate_arn, ca_arn, want)
            return _import_locked(state, manifest, claim, options, console, env)
    finally:
        state.close()


def _import_locked(state: State, manifest: Manifest, claim: Claim, options: ApplyOptions, console: Console,
                   env: Mapping[str, str] | None) -> int:
    """Under the state's lock: read it, fetch, check, record, write."""
    entry, certificate_arn, ca_arn, want = claim.entry, claim.certificate_arn, claim.ca_arn, claim.want
    name, shown = entry.name, entry.outputs.relative_to(manifest.path.parent)
    view = state.read()
    already = _recorded(IssuedIndex.from_events(view.events), certificate_arn, name)
    config = resolve_config(manifest.backend, manifest.settings, options)
    backend = open_for_run(manifest.backend, manifest.settings, options)
    try:
        fetched = fetch(backend, ca_arn, certificate_arn, config.max_attempts)
    finally:
        backend.close()
    found = differences(fetched, certificate_arn, ca_arn, want)
    if found:
        raise UsageError(f"{PREFIX}: nothing recorded: {certificate_arn} does not fit entry {name} of "
                         f"{manifest.display}:\n  " + "\n  ".join(found))
    cert = fetched.certificate
    lines = [f"imported {name}: serial {serial_hex(cert.serial_number)}, valid "
             f"{rfc3339(cert.not_valid_before_utc)} to {rfc3339(cert.not_valid_after_utc)}"]
    if already:
        lines.append(f"  recorded already in {state.display}")
    else:
        outputs = {k: v for k, v in shown.items() if v is not None}
        with contextlib.closing(state.open_recorder(view)) as journal:
            journal.record_issued(name=name, token=want.token, ca_arn=ca_arn, certificate_arn=certificate_arn,
                                  issued=Issued(manifest=manifest.path.name, outputs=outputs))
        lines.append(f"  recorded in {state.display} (token {want.token})")
    code = _deliver(entry, fetched, want, shown, lines)
    lines.append(f"  the next apply: {_next_apply(entry, state, env)}")
    write_lines(console, lines)
    return code


def _deliver(entry: Entry, fetched: Fetched, want: matching.Expected, shown: Mapping[str, str | None],
             lines: list[str]) -> int:
    """Write the files as apply does (and move a pending key in that this certificate is for)."""
    try:
        _facts, changed = write_outputs(fetched.bundle, entry.outputs, dict(shown))
        moved = want.pending_key and converge.deliver_key(entry)
        files.flush_renames()
    except (BackendError, OSError) as exc:
        reason = exc.message if isinstance(exc, BackendError) else (exc.strerror or str(exc))
        lines.append(f"  its files could not be written: {reason}; apply writes them (GetCertificate only)")
        return EXIT_FAILED
    written = [p for k, p in shown.items() if p is not None and k != "private_key"]
    lines.append(f"  {'wrote' if changed else 'files already in place:'} {', '.join(written) or '(no output files)'}")
    if moved:
        lines.append(f"  its pending private key moved into place: {shown.get('private_key')}")
    return EXIT_OK


def _next_apply(entry: Entry, state: State, env: Mapping[str, str] | None) -> str:
    """What apply will do with the entry now, as the plan says it."""
    index = IssuedIndex.from_events(state.read().events)
    step = converge.decide_entry(entry, index, now=datetime.now(UTC), force=False, env=env)
    return f"{step.decision.action} ({step.decision.reason})"
