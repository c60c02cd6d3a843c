"""Does a certificate issued elsewhere fit a manifest entry? For ``state import`` and ``apply --adopt``.

A certificate issued by a shell loop, the console or another tool is taken under management
only when it is what the entry would have been issued: from the entry's CA (its issuer is the
CA certificate's subject and its signature verifies with the CA's key), for the entry's key
(the CSR's, or the private key pca-batch keeps for it), with the entry's subject and SANs; and,
for adoption, signed with the entry's SigningAlgorithm and for the lifetime the entry asks for
(AWS backdates NotBefore by 60 minutes; a certificate may start anywhere in that hour before
its issuance). Each difference is said in words: what the certificate has, what the entry wants.

Where an ApiPassthrough template replaces the subject or the SANs, those are not compared (the
CSR's would not be the certificate's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import SignatureAlgorithmOID

from pca_batch.model import Entry
from pca_batch.pki import keys
from pca_batch.pki.validity import NOT_BEFORE_BACKDATE, ValidityError, absolute_time, describe, not_after
from pca_batch.plan import tokens
from pca_batch.plan.converge import current_key, replaced_by_passthrough
from pca_batch.plan.renewal import OnDisk
from pca_batch.plan.tokens import key_request
from pca_batch.times import rfc3339

SLACK = timedelta(minutes=2)  # clocks and whole seconds: how far a NotAfter may be off and still fit
_SPAN_TYPES = ("DAYS", "MONTHS", "YEARS")
_KINDS = {
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ECDSA", SignatureAlgorithmOID.ECDSA_WITH_SHA384: "ECDSA",
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: "ECDSA", SignatureAlgorithmOID.RSA_WITH_SHA256: "RSA",
    SignatureAlgorithmOID.RSA_WITH_SHA384: "RSA", SignatureAlgorithmOID.RSA_WITH_SHA512: "RSA",
    SignatureAlgorithmOID.RSASSA_PSS: "RSA_PSS",
}  # fmt: skip


class KeyUnavailable(Exception):
    """The entry's key cannot be read, so no certificate can be judged against it."""


@dataclass(frozen=True)
class Expected:
    """What a certificate must carry to be this entry's, and the token to record it under
    (the one the next apply looks for)."""

    entry: Entry
    token: str
    spki: str | None  # SHA-256 of the SubjectPublicKeyInfo, hex
    key_from: str  # "its CSR", "its private key out/web.key"
    subject: str | None  # RFC 4514; None: not compared
    sans: tuple[str, ...] | None
    pending_key: bool = False  # the key is the pending one of an interrupted renewal


def expected(entry: Entry, shown: Mapping[str, str | None], env: Mapping[str, str] | None = None) -> Expected:
    """What ``entry`` wants of its certificate. ``shown``: the entry's outputs as messages name
    them. KeyUnavailable when its managed key does not exist yet or cannot be read."""
    assert entry.request is not None and entry.token is not None
    request, csr = entry.request, entry.csr
    subject = csr.subject if csr is not None and not replaced_by_passthrough(request, "Subject") else None
    sans = csr.sans if csr is not None and not replaced_by_passthrough(request, "SANs") else None
    if entry.key is None:
        spki = csr.public_key_sha256 if csr is not None else None
        return Expected(entry, entry.token, spki or None, "its CSR", subject, sans)
    where = shown.get("private_key") or "its private key"
    try:
        key, pending = current_key(entry, env)
    except keys.KeyError_ as exc:
        raise KeyUnavailable(f"its private key cannot be read: {exc}") from None
    if key is None:
        raise KeyUnavailable(f"its private key {where} does not exist, so no certificate can be checked against it")
    spki = keys.spki_sha256(key)
    token = tokens.token_for(entry.name, key_request(request, entry.key, spki))
    return Expected(entry, token, spki, f"its {'pending ' if pending else ''}private key {where}", subject, sans,
                    pending_key=pending)


def _names(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "(none)"


def identity_differences(cert: x509.Certificate, want: Expected) -> list[str]:
    """How the certificate's key, subject and SANs differ from what the entry wants."""
    found = OnDisk(cert)
    out = []
    if want.spki is not None and found.spki_sha256 != want.spki:
        out.append(f"the certificate's public key (SHA-256 {found.spki_sha256[:16]}…) is not the one of "
                   f"{want.key_from} (SHA-256 {want.spki[:16]}…)")
    if want.subject is not None and found.subject != want.subject:
        out.append(f"the certificate's subject {found.subject or '(empty)'} differs from the entry's "
                   f"{want.subject or '(empty)'}")
    if want.sans is not None and set(found.sans) != set(want.sans):
        out.append(f"the certificate's SANs {_names(found.sans)} differ from the entry's {_names(want.sans)}")
    return out


def issuer_difference(cert: x509.Certificate, ca_cert: x509.Certificate, ca_arn: str) -> str | None:
    """Why the certificate was not issued by this CA certificate, or None when it was."""
    if cert.issuer != ca_cert.subject:
        return (f"the certificate's issuer {cert.issuer.rfc4514_string()} is not the entry's CA {ca_arn} "
                f"(its certificate's subject is {ca_cert.subject.rfc4514_string()})")
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (InvalidSignature, ValueError, TypeError):
        return f"the certificate's signature does not verify with the key of the entry's CA {ca_arn}"
    return None


def signing_algorithm_of(cert: x509.Certificate) -> str | None:
    """The SigningAlgorithm name of a certificate's signature (SHA256WITHECDSA, ...); None when
    AWS has no name for it."""
    kind = _KINDS.get(cert.signature_algorithm_oid)
    digest = cert.signature_hash_algorithm
    if kind is None or digest is None:
        return None
    return f"{digest.name.upper()}WITH{kind}"


def issuance_differences(cert: x509.Certificate, request: Mapping[str, Any]) -> list[str]:
    """How the certificate's signature algorithm and lifetime differ from the request's."""
    out = []
    wanted = request.get("SigningAlgorithm")
    signed = signing_algorithm_of(cert)
    if isinstance(wanted, str) and signed != wanted:
        out.append(f"the certificate is signed with {signed or cert.signature_algorithm_oid.dotted_string}, "
                   f"the entry asks for {wanted}")
    lifetime = lifetime_difference(cert, request)
    if lifetime is not None:
        out.append(lifetime)
    return out


def lifetime_difference(cert: x509.Certificate, request: Mapping[str, Any]) -> str | None:
    """Why the certificate's NotBefore/NotAfter are not what the request's Validity (and
    ValidityNotBefore) give, or None when they are."""
    validity, start = request.get("Validity"), request.get("ValidityNotBefore")
    if not isinstance(validity, Mapping):
        return None
    nb, na = cert.not_valid_before_utc, cert.not_valid_after_utc
    try:
        if isinstance(start, Mapping):
            wanted_start = absolute_time(start, nb)
            if abs(nb - wanted_start) > SLACK:
                return f"the certificate starts {rfc3339(nb)}, the entry's ValidityNotBefore is {rfc3339(wanted_start)}"
            if validity.get("Type") in _SPAN_TYPES:
                return None  # counted from the issuance, which a set NotBefore no longer tells
            earliest = latest = nb
        else:  # issued between NotBefore (no backdate) and NotBefore + 60 minutes (AWS's backdate)
            earliest, latest = nb, nb + NOT_BEFORE_BACKDATE
        low, high = not_after(validity, earliest), not_after(validity, latest)
    except ValidityError:
        return None  # the manifest's validation says what is wrong with it
    if low - SLACK <= na <= high + SLACK:
        return None
    return (f"the certificate's lifetime ({_span(na - nb)}, {rfc3339(nb)} to {rfc3339(na)}) is not the "
            f"{describe(validity)} the entry asks for")


def _span(delta: timedelta) -> str:
    days = delta / timedelta(days=1)
    return f"{days:.0f} days" if abs(days - round(days)) < 0.01 else f"{days:.2f} days"


def load_pem(pem: str) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(pem.encode("utf-8"))
    except ValueError:
        return None


__all__ = ["Expected", "KeyUnavailable", "expected", "identity_differences", "issuance_differences",
           "issuer_difference", "lifetime_difference", "load_pem", "signing_algorithm_of"]

