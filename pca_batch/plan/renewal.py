"""Re-runs converge: what each entry needs, judged from what is already on disk.

An entry whose certificate file exists, was issued by the entry's CA for the
request as it stands now (per the journal), carries the expected public key,
subject and SANs, and is outside its renewal window is ``unchanged``: no call
is made for it. Otherwise it is issued (nothing there yet) or renewed, and a
renewal salts its idempotency token with the serial of the certificate it
replaces: inside AWS's five-minute window the plain token would hand back the
very certificate being replaced.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pca_batch.acmpca import TOKEN_MAX, serial_hex, serial_of_arn
from pca_batch.model import Decided
from pca_batch.pki import csr as csrmod
from pca_batch.plan import tokens
from pca_batch.run.journal import Event, JournalRecord, KeyRecord, RevocationRecord, read_events

KEY_COMPROMISE = "KEY_COMPROMISE"
NO_RECORD = "the journal has no record of issuing this certificate"
# The salt of a renewal of a certificate the journal has no record of (a lost state): its serial
# would name nothing the next run could find, so the renewal's token would never be recognised.
UNRECORDED_SALT = "unrecorded"
DEFAULT_SHARE = 1 / 3  # of the lifetime, as cert-manager renews
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(d|h|m|%)\s*$")


class RenewBeforeError(ValueError):
    pass


def parse_renew_before(text: str | None) -> tuple[str, float]:
    """``30d``/``12h``/``90m`` -> ("abs", seconds); ``33%`` -> ("share", 0.33)."""
    if text is None:
        return ("share", DEFAULT_SHARE)
    m = _DURATION.match(str(text))
    if not m:
        raise RenewBeforeError(f"cannot read renew_before {text!r}: use a duration (30d, 12h, 90m) or a share (33%)")
    value, unit = float(m.group(1)), m.group(2)
    if unit == "%":
        if not 0 < value < 100:
            raise RenewBeforeError(f"renew_before {text!r} must lie between 0% and 100%")
        return ("share", value / 100)
    return ("abs", value * {"d": 86400, "h": 3600, "m": 60}[unit])


class OnDisk:
    """What pca-batch needs to know of a certificate file. The serial and validity are read
    at once; the key digest, subject and SANs on first use (most re-runs never need them)."""

    __slots__ = ("_cert", "serial", "not_before", "not_after", "_details")

    def __init__(self, cert: x509.Certificate) -> None:
        self._cert = cert
        self.serial = serial_hex(cert.serial_number)  # lowercase hex, as the ARN ends in it
        self.not_before: datetime = cert.not_valid_before_utc
        self.not_after: datetime = cert.not_valid_after_utc
        self._details: tuple[str, str, tuple[str, ...]] | None = None

    def _read(self) -> tuple[str, str, tuple[str, ...]]:
        if self._details is None:
            cert = self._cert
            try:
                san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                sans = tuple(csrmod._general_name(n) for n in san)
            except x509.ExtensionNotFound:
                sans = ()
            spki = cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            self._details = (hashlib.sha256(spki).hexdigest(), cert.subject.rfc4514_string(), sans)
        return self._details

    @property
    def certificate(self) -> x509.Certificate:
        return self._cert

    @property
    def spki_sha256(self) -> str:
        return self._read()[0]

    @property
    def subject(self) -> str:
        return self._read()[1]

    @property
    def sans(self) -> tuple[str, ...]:
        return self._read()[2]


def read_certificate(path: Path) -> OnDisk | None:
    """The first certificate in ``path``; None when there is none or it does not parse."""
    try:
        data = csrmod.read_limited(path, 1_048_576, "the certificate")
        return OnDisk(x509.load_pem_x509_certificate(data))
    except (csrmod.InputError, ValueError):
        return None


def _surely_missing(path: Path) -> bool:
    """True when ``path`` does not exist in a folder that can be looked in (else: maybe it exists,
    maybe it cannot be read; reading it tells which)."""
    return not os.access(path, os.F_OK) and os.access(os.path.dirname(path) or ".", os.X_OK)


class IssuedIndex:
    """The journal seen by serial: which CA issued a serial, for which entry, with which token;
    and which certificates were revoked since."""

    def __init__(self, records: Iterable[JournalRecord],
                 revocations: Iterable[RevocationRecord] = (),
                 lost_keys: dict[tuple[str, str], list[KeyRecord]] | None = None) -> None:
        # per (name, CA ARN): keys made by earlier runs whose certificate is not on record
        self.lost_keys = lost_keys or {}
        self.by_serial: dict[int, JournalRecord] = {}
        self.serials_of: dict[str, list[str]] = {}
        self.revoked: dict[str, RevocationRecord] = {r.certificate_arn: r for r in revocations}
        self.by_token: dict[tuple[str, str], JournalRecord] = {}
        for r in records:
            self.by_token[(r.ca_arn, r.token)] = r
            try:
                serial = serial_of_arn(r.certificate_arn)
            except ValueError:
                continue
            self.by_serial[serial] = r
            self.serials_of.setdefault(r.name, []).append(serial_hex(serial))

    def records_of(self, name: str) -> list[JournalRecord]:
        return [self.by_serial[int(s, 16)] for s in self.serials_of.get(name, ())]

    def get(self, serial_hex: str) -> JournalRecord | None:
        return self.by_serial.get(int(serial_hex, 16))

    def revocation(self, record: JournalRecord | None) -> RevocationRecord | None:
        return self.revoked.get(record.certificate_arn) if record is not None else None

    @classmethod
    def load(cls, journal: Path) -> IssuedIndex:
        events, _ = read_events(journal)
        return cls.from_events(events)

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> IssuedIndex:
        """The index of a state's records (see pca_batch.state), in the order they were recorded."""
        from pca_batch.plan.lostkeys import unsettled

        events = list(events)
        return cls([e for e in events if isinstance(e, JournalRecord)],
                   [e for e in events if isinstance(e, RevocationRecord)], unsettled(events))


@dataclass(frozen=True)
class Decision:
    action: Decided
    reason: str
    existing: OnDisk | None = None
    record: JournalRecord | None = None
    token: str | None = None  # the token to send, when it is not the entry's own
    replaces: JournalRecord | None = None  # the certificate a renewal replaces, when the journal knows it
    compromised: bool = False  # the certificate it replaces was revoked for KEY_COMPROMISE: never reuse its key
    refusal: str | None = None  # why apply must not send this entry at all (its CSR is for a compromised key)
    lost_keys: tuple[KeyRecord, ...] = ()  # keys earlier runs made on other runners, certificates not on record

    @property
    def salt(self) -> str:
        """Mixed into the token of a renewal: the serial of the certificate replaced, or, when the
        journal has no record of that one, a fixed salt (which request_tokens knows)."""
        if self.action != "renew" or not self.existing:
            return ""
        recorded = self.record is not None or self.replaces is not None
        return self.existing.serial if recorded else UNRECORDED_SALT


def renewal_token(base: str, explicit: bool, name: str, request: Mapping[str, Any], salt: str) -> str:
    if not salt:
        return base
    if explicit:  # the given token, its end made room for "~" and 8 characters of the salt
        return (base[: TOKEN_MAX - 9] + "~" + salt[:8])[:TOKEN_MAX]
    return tokens.derive(name, request, salt=salt)


def request_tokens(
    index: IssuedIndex, name: str, token: str, explicit_token: bool, request: Mapping[str, Any]
) -> set[str]:
    """Every token this request can have been issued under: its own, and each renewal's
    (salted with the serial of a certificate the journal holds for the entry)."""
    serials = (*index.serials_of.get(name, ()), UNRECORDED_SALT)
    return {token} | {renewal_token(token, explicit_token, name, request, s) for s in serials}


def latest_issued(index: IssuedIndex, name: str, ca_arn: str, candidates: set[str]) -> JournalRecord | None:
    """The newest certificate the journal holds for this entry, CA and request and has not
    recorded as revoked (the journal's order is the order of issuance)."""
    found = None
    for record in index.records_of(name):
        if record.ca_arn == ca_arn and record.token in candidates and index.revocation(record) is None:
            found = record
    return found


def past_revoked(index: IssuedIndex, ca_arn: str, token: str, *, explicit: bool, name: str,
                 request: Mapping[str, Any]) -> tuple[str, RevocationRecord | None]:
    """A token under which the CA has issued nothing revoked: ``token`` itself, unless the
    journal records a revoked certificate for it (the CA would hand that one back inside its
    idempotency window, and the journal at any time), then salted with that certificate's serial,
    again as often as needed. Also returns the revocation that made it change, if any."""
    first = None
    while (record := index.by_token.get((ca_arn, token))) is not None and (gone := index.revocation(record)):
        first = first or gone
        token = renewal_token(token, explicit, name, request, serial_of(record))
    return token, first


def serial_of(record: JournalRecord) -> str:
    """The serial (lowercase hex) a certificate ARN ends in."""
    return serial_hex(serial_of_arn(record.certificate_arn))


@dataclass(frozen=True)
class Wanted:
    """What an entry asks for now, to judge the certificate on disk by.

    ``spki``, ``subject`` and ``sans``: what the certificate should carry (the public
    key's SHA-256, the RFC 4514 subject, the SANs); None where it is not compared.
    """

    name: str
    ca_arn: str
    request: Mapping[str, Any]
    token: str
    explicit_token: bool
    spki: str | None = None
    subject: str | None = None
    sans: tuple[str, ...] | None = None
    renew_before: str | None = None  # "30d", "12h", "33%"; None: a third of the lifetime


def decide(wanted: Wanted, certificate: Path | None, index: IssuedIndex, *, now: datetime, force: bool) -> Decision:
    """The action an entry needs, and why."""
    if certificate is None:
        return Decision("issue", "no certificate output to compare with")
    if _surely_missing(certificate):  # the usual new entry: said without raising and catching an OSError
        return Decision("issue", "no certificate yet")
    existing = read_certificate(certificate)
    if existing is None:
        if certificate.exists():
            return Decision("issue", "the certificate file does not hold a readable certificate")
        return Decision("issue", "no certificate yet")
    record = index.get(existing.serial)
    if record is not None and record.name != wanted.name:
        record = None
    if force:
        return Decision("renew", "forced (--force)", existing, replaces=record)
    if record is None:
        return Decision("renew", NO_RECORD, existing)
    revoked = index.revocation(record)
    if revoked is not None:
        # revoked already: nothing for revoke_replaced to do
        return Decision("renew", f"its certificate was revoked ({revoked.reason})", existing, record,
                        compromised=revoked.reason == KEY_COMPROMISE)
    changed = _what_changed(wanted, existing, record, index)
    if changed:
        return Decision("renew", changed, existing, record, replaces=record)
    left = (existing.not_after - now).total_seconds()
    if left <= _renewal_window(existing, wanted.renew_before):
        return Decision("renew", _expiry_reason(left), existing, record, replaces=record)
    return Decision("unchanged", f"valid until {existing.not_after:%Y-%m-%d}", existing, record)


def _what_changed(wanted: Wanted, existing: OnDisk, record: JournalRecord, index: IssuedIndex) -> str | None:
    """Why the certificate on disk is not the one the entry now asks for; None when it is."""
    if record.ca_arn != wanted.ca_arn:
        return "the CA changed"
    if record.token != wanted.token and record.token not in request_tokens(
        index, wanted.name, wanted.token, wanted.explicit_token, wanted.request
    ):
        return "the request changed"
    if wanted.spki is not None and existing.spki_sha256 != wanted.spki:
        return "the key changed"
    if wanted.subject is not None and existing.subject != wanted.subject:
        return "the subject changed"
    if wanted.sans is not None and set(existing.sans) != set(wanted.sans):
        return "the SANs changed"
    return None


def due_for_renewal(existing: OnDisk, renew_before: str | None, now: datetime) -> bool:
    """Is the certificate inside its renewal window (or expired)?"""
    return (existing.not_after - now).total_seconds() <= _renewal_window(existing, renew_before)


def _renewal_window(existing: OnDisk, renew_before: str | None) -> float:
    """How long before its end a certificate is renewed, in seconds."""
    kind, amount = parse_renew_before(renew_before)
    if kind == "abs":
        return amount
    return (existing.not_after - existing.not_before).total_seconds() * amount


def _expiry_reason(left: float) -> str:
    if left <= 0:
        return "expired"
    days = left / 86400
    if days >= 1:
        return f"expires in {days:.0f} day{'s' if round(days) != 1 else ''}"
    return f"expires in {left / 3600:.0f} hours"


__all__ = ["Decision", "IssuedIndex", "OnDisk", "Wanted", "decide", "latest_issued", "parse_renew_before",
           "read_certificate", "request_tokens", "serial_of"]
