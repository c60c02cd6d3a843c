"""Preflight: what AWS Private CA would refuse, found before any IssueCertificate call.

Read-only and backend-agnostic: each distinct CA is described once
(DescribeCertificateAuthority), then every entry is checked against its CA's
description. An entry that fails gets the error AWS itself would have answered
(ResourceNotFoundException, InvalidStateException, InvalidArgsException) with
a message saying what preflight found, so the runner can fail it without
calling IssueCertificate.

Preflight judges only what the description proves. When the describe call
itself fails for another reason (access denied, throttled, a 5xx), that CA's
entries are left unjudged: issuing will tell, under the runner's retries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pca_batch.acmpca import SHORT_LIVED, SHORT_LIVED_MAX
from pca_batch.backends.base import Backend, CaDescription
from pca_batch.errors import BackendError
from pca_batch.model import Entry
from pca_batch.pki.algorithms import key_family, signing_family
from pca_batch.pki.validity import ValidityError, not_after, not_before
from pca_batch.times import rfc3339

# Codes of a describe answer that say something about the entries' CA itself.
_CA_MISSING = frozenset({"ResourceNotFoundException", "InvalidArnException"})


def _span(delta: timedelta) -> str:
    days = delta / timedelta(days=1)
    return f"{days:g} days" if days == int(days) else f"{days:.2f} days"


def _argument_findings(request: Mapping[str, Any], ca: CaDescription, now: datetime) -> list[str]:
    found: list[str] = []
    signing = str(request.get("SigningAlgorithm", ""))
    ca_family, wanted = key_family(ca.key_algorithm), signing_family(signing)
    if ca_family and wanted and ca_family != wanted:
        found.append(
            f"SigningAlgorithm {signing} is for {wanted} keys, but the CA's key is "
            f"{ca.key_algorithm} ({ca_family})"
        )
    validity = request.get("Validity")
    if not isinstance(validity, Mapping):
        return found
    try:
        end = not_after(validity, now)
        start_spec = request.get("ValidityNotBefore")
        start = not_before(start_spec, now) if isinstance(start_spec, Mapping) else now
    except ValidityError as exc:
        found.append(f"Validity cannot be read: {exc}")
        return found
    if ca.not_after is not None and end > ca.not_after:
        found.append(f"NotAfter {rfc3339(end)} lies past the CA certificate's NotAfter {rfc3339(ca.not_after)}")
    if ca.usage_mode == SHORT_LIVED and end - start > SHORT_LIVED_MAX:
        found.append(
            f"the CA is in {SHORT_LIVED} usage mode, which issues at most 7 days, "
            f"and this entry asks for {_span(end - start)}"
        )
    return found


def check_entry(entry: Entry, ca: CaDescription, now: datetime) -> BackendError | None:
    """The error AWS would answer this entry's IssueCertificate with, judged from ``ca``; None if none."""
    if ca.status != "ACTIVE":
        return BackendError(
            "InvalidStateException",
            f"preflight: the CA {ca.arn} is {ca.status or 'in no known state'}, not ACTIVE, "
            "so it issues nothing",
        )
    if entry.request is None:
        return None
    found = _argument_findings(entry.request, ca, now)
    if found:
        return BackendError("InvalidArgsException", "preflight: " + "; ".join(found))
    return None


def describe_all(
    arns: Sequence[str],
    backend: Backend,
    described: Mapping[str, CaDescription | BackendError] | None = None,
    describe: Callable[[str], CaDescription] | None = None,
) -> dict[str, CaDescription | BackendError]:
    """Each CA described once (those in ``described`` not again): its description, or the
    error describing it answered."""
    found: dict[str, CaDescription | BackendError] = {}
    for arn in dict.fromkeys(arns):
        known = described.get(arn) if described else None
        if known is not None:
            found[arn] = known
            continue
        try:
            found[arn] = (describe or backend.describe_certificate_authority)(arn)
        except BackendError as exc:
            found[arn] = exc
    return found


def preflight(
    entries: Sequence[Entry],
    backend: Backend,
    *,
    now: datetime | None = None,
    described: Mapping[str, CaDescription | BackendError] | None = None,
    describe: Callable[[str], CaDescription] | None = None,
    seen: dict[str, CaDescription | BackendError] | None = None,
) -> dict[str, BackendError]:
    """Describe each distinct CA once; return, per entry name, the error that entry would get.

    Entries that are not valid or name no CA are left out (validation reports them).
    ``described``: CAs already described during this run (see ``backends.Opening``),
    with what describing them answered; they are not described again. ``describe``: how to
    describe one (the run's paced, retried call); by default one plain call to the backend.
    ``seen``, when given, receives what each CA's description was (the plan shows their usage modes).
    """
    moment = now or datetime.now(UTC)
    by_ca: dict[str, list[Entry]] = {}
    for entry in entries:
        if entry.valid and entry.ca_arn is not None:
            by_ca.setdefault(entry.ca_arn, []).append(entry)

    cas = describe_all(list(by_ca), backend, described, describe)
    if seen is not None:
        seen.update(cas)
    findings: dict[str, BackendError] = {}
    for arn, group in by_ca.items():
        ca = cas[arn]
        if isinstance(ca, BackendError):
            if ca.code in _CA_MISSING:
                what = "was not found" if ca.code == "ResourceNotFoundException" else "is not a valid CA ARN"
                for entry in group:
                    findings[entry.name] = BackendError(
                        ca.code, f"preflight: the CA {arn} {what} ({ca.message})", status=ca.status
                    )
            continue
        for entry in group:
            error = check_entry(entry, ca, moment)
            if error is not None:
                findings[entry.name] = error
    return findings
