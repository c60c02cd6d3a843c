"""From a loaded manifest and what is on disk to what each entry needs.

``decide_all`` runs in the main thread and makes no call and writes nothing
(the plan uses it too). ``prepare`` runs in a worker just before an entry's
first call: for an entry with a ``key:`` block it finds or makes the key (a new
one is saved as pending before anything is sent), builds the CSR and derives the
token from the public key. ``deliver_key`` moves a pending key into place once
its certificate is written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from pca_batch import files
from pca_batch.errors import BackendError
from pca_batch.model import UNCHANGED, Entry, Result
from pca_batch.pki import keys
from pca_batch.plan import lostkeys, renewal, tokens
from pca_batch.plan.renewal import Decision, IssuedIndex
from pca_batch.plan.tokens import key_request
from pca_batch.run.journal import KeyRecord
from pca_batch.times import rfc3339, utc_now

KEY_ERROR = "PrivateKeyError"
KEY_COMPROMISED = "KeyCompromised"
_SAME_KEY = ("its CSR is for the key of the certificate revoked for KEY_COMPROMISE: give it a CSR for a new key "
             "(pca-batch will not certify a compromised key again)")
_API_TEMPLATES = ("APIPassthrough", "APICSRPassthrough")


@dataclass(frozen=True)
class Step:
    entry: Entry  # as it will run: renewal tokens already salted
    decision: Decision


def replaced_by_passthrough(request: Mapping[str, Any], part: str) -> bool:
    """Does ApiPassthrough replace this part (Subject or SANs) of what the CSR asks for?"""
    template = str(request.get("TemplateArn", ""))
    if not any(t in template for t in _API_TEMPLATES):
        return False
    api = request.get("ApiPassthrough") or {}
    if part == "Subject":
        return bool(api.get("Subject"))
    return bool((api.get("Extensions") or {}).get("SubjectAlternativeNames"))


def current_key(entry: Entry, env: Mapping[str, str] | None) -> tuple[keys.PrivateKey | None, bool]:
    """The key a certificate on disk should carry: a pending one first (an interrupted renewal)."""
    spec: keys.KeySpec = entry.key
    path = entry.outputs.private_key
    if path is None:
        return None, False
    secret = keys.passphrase(spec, env)
    pending = keys.pending_path(path)
    if pending.exists():
        return keys.load(pending, secret), True
    if path.exists():
        return keys.load(path, secret), False
    return None, False


def decide_entry(entry: Entry, index: IssuedIndex, *, now: datetime, force: bool,
                 env: Mapping[str, str] | None = None) -> Step:
    assert entry.request is not None and entry.token is not None and entry.ca_arn is not None
    request = entry.request
    certificate = entry.outputs.certificate
    if certificate is None:
        return _without_output(entry, index, force)
    # A derived token covers the whole request, CSR included: a certificate the journal holds
    # for it was issued for this very CSR. With an explicit token (which does not change with
    # the request) the certificate is compared with the CSR itself.
    csr = entry.csr if entry.explicit_token and entry.key is None else None
    expected_subject = csr.subject if csr is not None and not replaced_by_passthrough(request, "Subject") else None
    expected_sans = csr.sans if csr is not None and not replaced_by_passthrough(request, "SANs") else None
    token, token_request = entry.token, dict(request)
    spki = csr.public_key_sha256 if csr is not None else None
    if entry.key is not None:
        try:
            key, pending = current_key(entry, env)
        except keys.KeyError_ as exc:
            return Step(entry, Decision("renew" if certificate.exists() else "issue", str(exc)))
        if key is None:
            reason = "no private key yet" if not certificate.exists() else "the private key is missing"
            decision = Decision("issue" if not certificate.exists() else "renew", reason)
            return Step(entry, _with_lost_keys(decision, entry, index, None, now))
        spki = keys.spki_sha256(key)
        token_request = key_request(request, entry.key, spki)
        token = tokens.token_for(entry.name, token_request)
    wanted = renewal.Wanted(
        name=entry.name, ca_arn=entry.ca_arn, request=token_request, token=token,
        explicit_token=entry.explicit_token, spki=spki, subject=expected_subject, sans=expected_sans,
        renew_before=entry.renew_before,
    )
    decision = renewal.decide(wanted, certificate, index, now=now, force=force)
    if entry.key is not None and pending and decision.existing is not None and decision.record is not None \
            and decision.existing.spki_sha256 == spki and decision.action != "unchanged":
        # the certificate for the pending key was written, the key not yet moved in
        decision = replace(decision, action="renew", reason="finishing an interrupted renewal",
                           token=decision.record.token, replaces=None)
    elif entry.key is not None and pending and decision.action == "unchanged":
        decision = replace(decision, action="renew", reason="finishing an interrupted renewal",
                           token=decision.record.token if decision.record else None)
    if decision.action == "unchanged":
        return Step(replace(entry, token=decision.record.token if decision.record else token), decision)
    if decision.compromised and entry.key is None and entry.csr is not None and decision.existing is not None \
            and decision.existing.spki_sha256 == entry.csr.public_key_sha256:
        decision = replace(decision, refusal=_SAME_KEY)
    reuses_key = entry.key is None or pending or (entry.key.rotate == "never" and not decision.compromised)
    if decision.action == "issue" and decision.token is None and reuses_key:
        decision = _issued_before(decision, entry, index, token, token_request, force)
    if decision.token is None and entry.key is None:
        salted = renewal.renewal_token(token, entry.explicit_token, entry.name, token_request, decision.salt)
        decision = replace(decision, token=salted)
    if entry.key is not None:
        decision = _with_lost_keys(decision, entry, index, spki if pending else None, now)
    return Step(entry, decision)


def _with_lost_keys(decision: Decision, entry: Entry, index: IssuedIndex, here: str | None,
                    now: datetime) -> Decision:
    """The keys earlier runs made for this entry on other runners, whose certificates are not on
    record (``here``: the public key digest of the pending key this runner has, if any)."""
    assert entry.ca_arn is not None
    newest = next((r for r in reversed(index.records_of(entry.name)) if r.ca_arn == entry.ca_arn), None)
    if newest is not None and newest.issued.key_lost and decision.replaces is None \
            and index.revocation(newest) is None:
        # a run asked for a lost key's certificate and stopped before the new one: this one replaces it
        decision = replace(decision, replaces=newest)
    lost = tuple(k for k in index.lost_keys.get((entry.name, entry.ca_arn), ()) if k.spki_sha256 != here)
    if not lost:
        return decision
    return replace(decision, lost_keys=lost, reason=f"{decision.reason}; {lostkeys.plan_reason(lost, now)}")


def _issued_before(decision: Decision, entry: Entry, index: IssuedIndex, token: str,
                   token_request: Mapping[str, Any], force: bool) -> Decision:
    """No certificate on disk, but the journal holds some for this request (the file was lost or
    deleted): the newest of them, not the first (which a renewal may have replaced); with
    ``--force``, a new one, under a token none of them was issued with.

    Only for an entry whose key stays the same (a CSR, ``rotate: never`` or a pending key): the
    token names a certificate for that key; a new key gets a new token anyway.
    """
    assert entry.ca_arn is not None
    latest = None
    if entry.name in index.serials_of:  # else the journal holds nothing for it (a new entry): no token to derive
        candidates = renewal.request_tokens(index, entry.name, token, entry.explicit_token, token_request)
        latest = renewal.latest_issued(index, entry.name, entry.ca_arn, candidates)
    if latest is None:
        return _past_revoked(decision, entry, index, token, token_request)
    if force:
        salt = renewal.serial_of(latest)
        fresh = renewal.renewal_token(token, entry.explicit_token, entry.name, token_request, salt)
        return replace(decision, reason="forced (--force)", record=latest, token=fresh, replaces=latest)
    return replace(decision, reason="no certificate on disk: the newest issued, per the journal",
                   record=latest, token=latest.token)


def _past_revoked(decision: Decision, entry: Entry, index: IssuedIndex, token: str,
                  request: Mapping[str, Any]) -> Decision:
    """An entry to issue whose token names a certificate revoked since: a token that does not."""
    assert entry.ca_arn is not None
    fresh, gone = renewal.past_revoked(index, entry.ca_arn, token, explicit=entry.explicit_token, name=entry.name,
                                       request=request)
    if gone is None:
        return decision
    return replace(decision, reason=f"its certificate was revoked ({gone.reason}): a new one", token=fresh,
                   compromised=gone.reason == renewal.KEY_COMPROMISE)


def _without_output(entry: Entry, index: IssuedIndex, force: bool) -> Step:
    """No certificate file to judge by: the journal says whether this request was issued (under
    its token, or, when that certificate was revoked since, under the token that replaced it)."""
    assert entry.token is not None and entry.ca_arn is not None
    token, gone = renewal.past_revoked(index, entry.ca_arn, entry.token, explicit=entry.explicit_token,
                                       name=entry.name, request=entry.request or {})
    record = index.by_token.get((entry.ca_arn, token))
    if record is None:
        if gone is None:
            return Step(entry, Decision("issue", "not issued yet"))
        return Step(entry, Decision("issue", f"its certificate was revoked ({gone.reason}): a new one", token=token,
                                    compromised=gone.reason == renewal.KEY_COMPROMISE))
    if not force:
        return Step(replace(entry, token=token),
                    Decision("unchanged", "issued before, per the journal (no certificate output to check)",
                             record=record))
    salt = renewal.serial_of(record)
    fresh = renewal.renewal_token(entry.token, entry.explicit_token, entry.name, entry.request or {}, salt)
    return Step(entry, Decision("renew", "forced (--force)", record=record, token=fresh, replaces=record))


def certainly_issued(entry: Entry) -> bool:
    """True when ``decide_entry`` can only say issue: the certificate file it names is not there.

    Cheap (one ``stat``), for a guess made while the manifest is still being read.
    """
    certificate = entry.outputs.certificate
    return certificate is not None and not os.path.lexists(certificate)


def decide_all(entries: Sequence[Entry], journal: Path | IssuedIndex, *, now: datetime, force: bool,
               env: Mapping[str, str] | None = None) -> list[Step]:
    """Each entry's step, judged by the journal (a path, or the index of one already read)."""
    index = journal if isinstance(journal, IssuedIndex) else IssuedIndex.load(journal)
    return [decide_entry(e, index, now=now, force=force, env=env) for e in entries]


def prepare(step: Step, env: Mapping[str, str] | None = None) -> Entry:
    """The entry exactly as it is sent: in a worker, before its first call."""
    entry, decision = step.entry, step.decision
    if entry.key is None:
        if decision.refusal is not None:
            raise BackendError(KEY_COMPROMISED, decision.refusal)
        if not decision.token or decision.token == entry.token:
            return entry  # as sent already (the usual new entry): no copy to make
        return replace(entry, token=decision.token)
    assert entry.outputs.private_key is not None and entry.request is not None
    spec = replace(entry.key, rotate="always") if decision.compromised else entry.key  # never the same key again
    try:
        key, _new = keys.key_for_issue(spec, entry.outputs.private_key, env)
    except keys.KeyError_ as exc:
        raise BackendError(KEY_ERROR, str(exc)) from None
    except OSError as exc:
        raise BackendError(KEY_ERROR, f"cannot save the new private key: {exc.strerror}") from None
    spki = keys.spki_sha256(key)
    request = dict(entry.request)
    request["Csr"] = keys.build_csr(entry.key, key)
    token_request = key_request(request, entry.key, spki)
    token = decision.token or renewal.renewal_token(
        tokens.token_for(entry.name, token_request), entry.explicit_token, entry.name, token_request,
        decision.salt,
    )
    return replace(entry, request=request, token=token)


def key_record(entry: Entry, manifest_file: str) -> KeyRecord | None:
    """What the state records before IssueCertificate for an entry whose key is new (made by
    ``prepare``, pending here): its token, CSR and public key digest; never the key."""
    private_key = entry.outputs.private_key
    if entry.key is None or private_key is None or entry.request is None or entry.token is None \
            or entry.ca_arn is None or not keys.pending_path(private_key).exists():
        return None
    csr = str(entry.request["Csr"])
    return KeyRecord(name=entry.name, ca_arn=entry.ca_arn, token=entry.token, spki_sha256=keys.csr_spki_sha256(csr),
                     csr=csr, time=utc_now(), manifest=manifest_file)


def deliver_key(entry: Entry) -> bool:
    """After the certificate is written: the pending key (if any) becomes the entry's key.

    Returns whether a key was moved; the move is made durable with the run's other renames
    (:func:`pca_batch.files.flush_renames`). OSError when it cannot be moved.
    """
    private_key = entry.outputs.private_key
    if entry.key is None or private_key is None or not keys.pending_path(private_key).exists():
        return False
    keys.install_pending(private_key)
    files.note_renamed(private_key)
    return True


def unchanged_result(step: Step, base_dir: Path) -> Result:
    entry, decision = step.entry, step.decision
    existing, record = decision.existing, decision.record
    return Result(
        name=entry.name,
        status=UNCHANGED,
        certificate_authority_arn=entry.ca_arn,
        certificate_arn=record.certificate_arn if record else None,
        serial=existing.serial if existing else None,
        not_before=rfc3339(existing.not_before) if existing else None,
        not_after=rfc3339(existing.not_after) if existing else None,
        idempotency_token=record.token if record else entry.token,
        outputs=entry.outputs.relative_to(base_dir),
        line=entry.line,
        action="unchanged",
        reason=decision.reason,
    )

