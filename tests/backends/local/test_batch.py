"""The local CA's fast path (issue_many: signed in worker processes, recorded in one transaction)
against its slow path (issue_certificate, one request at a time), on generated requests."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pca_batch.backends.local.admin import audit_report, create_authority, set_authority_status
from pca_batch.backends.local.backend import LocalBackend
from pca_batch.backends.local.store import Store
from pca_batch.errors import BackendError
from pca_batch.model import NewAuthority
from pca_batch.run.delivery import certificate_facts, pem_text
from tests.support.local_ca import SettableClock, make_csr, request, rsa_key

END_ENTITY = "arn:aws:acm-pca:::template/EndEntityCertificate/V1"
PASSTHROUGH = "arn:aws:acm-pca:::template/EndEntityCertificate_APIPassthrough/V1"


@dataclass(frozen=True)
class Pki:
    folder: Path
    ec: str
    rsa: str
    disabled: str


def _pki(folder: Path) -> Pki:
    ec_ca = create_authority(folder, NewAuthority(common_name="Batch EC"))
    rsa_ca = create_authority(folder, NewAuthority(common_name="Batch RSA", key_algorithm="RSA_2048"))
    disabled = create_authority(folder, NewAuthority(common_name="Batch Disabled"))
    set_authority_status(folder, disabled, "DISABLED")
    return Pki(folder, ec_ca, rsa_ca, disabled)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pki, Pki]:
    """Two stores with the same CAs (the same ARNs: the second is a copy of the first)."""
    import shutil

    first = tmp_path_factory.mktemp("batch") / "one"
    pki = _pki(first)
    second = first.parent / "two"
    shutil.copytree(first, second)
    return pki, Pki(second, pki.ec, pki.rsa, pki.disabled)


CSRS = {
    "ec": make_csr("a.example", ("a.example",)),
    "ec-no-san": make_csr("b.example", ()),
    "rsa": make_csr("c.example", ("c.example",), key=rsa_key()),
    "weak-rsa": make_csr("d.example", ("d.example",), key=rsa_key(1024)),
    "empty": make_csr(None, ()),
    "garbage": b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
}


@st.composite
def requests(draw: st.DrawFn, pki: Pki) -> dict[str, Any]:
    ca = draw(st.sampled_from([pki.ec, pki.ec, pki.rsa, pki.disabled]))
    algorithm = draw(st.sampled_from(["SHA256WITHECDSA", "SHA384WITHECDSA", "SHA256WITHRSA", "SHA512WITHRSA_PSS"]))
    members: dict[str, Any] = {
        "SigningAlgorithm": algorithm,
        "Validity": draw(st.sampled_from([{"Value": 30, "Type": "DAYS"}, {"Value": 0, "Type": "DAYS"},
                                          {"Value": 2, "Type": "YEARS"}, {"Value": 99, "Type": "YEARS"},
                                          {"Value": 20301231235959, "Type": "END_DATE"},
                                          {"Value": 1924991999, "Type": "ABSOLUTE"}])),
    }
    if draw(st.booleans()):
        members["ValidityNotBefore"] = {"Value": draw(st.sampled_from([1, 3])), "Type": "DAYS"}
    token = draw(st.none() | st.sampled_from(["t1", "t2", "t3", "t4"]))
    if token is not None:
        members["IdempotencyToken"] = token
    template = draw(st.sampled_from([None, END_ENTITY, PASSTHROUGH, "arn:aws:acm-pca:::template/Nope/V1"]))
    if template is not None:
        members["TemplateArn"] = template
    if draw(st.booleans()):
        members["ApiPassthrough"] = {"Subject": {"CommonName": "api.example"}}
    return request(ca, CSRS[draw(st.sampled_from(sorted(CSRS)))], **members)


def _outcome(answer: str | BackendError, backend: LocalBackend, ca_arn: str) -> tuple[Any, ...]:
    """What an answer says, serial and signature aside: the error, or the certificate's contents."""
    if isinstance(answer, BackendError):
        return ("error", answer.code, answer.message)
    bundle = backend.get_certificate(ca_arn, answer)
    # the facts the backend gives without parsing (those it just issued) are the parsed ones
    assert bundle.facts is not None
    assert bundle.facts == certificate_facts(pem_text(bundle.certificate))
    cert = x509.load_pem_x509_certificate(bundle.certificate.encode())
    extensions = [(e.oid.dotted_string, e.critical, e.value.public_bytes()) for e in cert.extensions]
    return ("issued", cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), cert.not_valid_before_utc,
            cert.not_valid_after_utc, cert.signature_algorithm_oid.dotted_string, extensions,
            cert.public_key().public_bytes(*_SPKI))


from cryptography.hazmat.primitives import serialization  # noqa: E402

_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _one_by_one(backend: LocalBackend, batch: list[dict[str, Any]]) -> list[str | BackendError]:
    out: list[str | BackendError] = []
    for item in batch:
        try:
            out.append(backend.issue_certificate(item))
        except BackendError as exc:
            out.append(exc)
    return out


def _records(folder: Path, ca_arn: str) -> list[tuple[Any, ...]]:
    store = Store(folder)
    try:
        return [(r.ca_arn, r.not_before, r.not_after, r.issued_at, r.template_arn, r.token, r.token_at)
                for r in store.certificates(ca_arn)]
    finally:
        store.close()


@pytest.fixture(scope="module")
def signing(stores: tuple[Pki, Pki]) -> Iterator[LocalBackend]:
    """The fast side, with its worker processes (the test process may have threads: then they spawn)."""
    backend = LocalBackend(stores[1].folder, clock=CLOCK)
    assert backend.start_signers(2) == 2
    yield backend
    backend.close()


CLOCK = SettableClock()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), size=st.integers(1, 12))
def test_issue_many_answers_what_one_by_one_answers(
    stores: tuple[Pki, Pki], signing: LocalBackend, data: st.DataObject, size: int
) -> None:
    slow_pki, fast_pki = stores
    # each example in its own idempotency window, the clock not on a whole second
    CLOCK.advance(minutes=10, microseconds=data.draw(st.integers(0, 999_999)))
    batch = data.draw(st.lists(requests(slow_pki), min_size=size, max_size=size))
    slow = LocalBackend(slow_pki.folder, clock=CLOCK)
    try:
        before = {ca: len(_records(slow_pki.folder, ca)) for ca in (slow_pki.ec, slow_pki.rsa)}
        expected = _one_by_one(slow, batch)
        got = signing.issue_many(batch)
        assert len(got) == len(batch)
        for item, one, many in zip(batch, expected, got, strict=True):
            ca = item["CertificateAuthorityArn"]
            assert _outcome(many, signing, ca) == _outcome(one, slow, ca)
        # a token used twice answers the first certificate, in both ways
        arns = [(a, b) for a, b in zip(expected, got, strict=True) if isinstance(a, str) and isinstance(b, str)]
        assert len({a for a, _ in arns}) == len({b for _, b in arns})
        for ca in (slow_pki.ec, slow_pki.rsa):  # the same records (a batch's own order aside)
            assert sorted(_records(slow_pki.folder, ca)[before[ca]:], key=repr) == sorted(
                _records(fast_pki.folder, ca)[before[ca]:], key=repr)
    finally:
        slow.close()


def test_a_batch_is_signed_in_the_worker_processes(tmp_path: Path) -> None:
    """The workers sign (the main process only records); one killed is replaced by signing here."""
    pki = _pki(tmp_path / "store")
    backend = LocalBackend(pki.folder)
    try:
        assert backend.start_signers(2) == 2
        signers = backend._signers
        assert signers is not None
        pids = [w.process.pid or 0 for w in signers._all]
        assert all(pid not in (0, os.getpid()) for pid in pids)
        batch = [request(pki.ec, make_csr(f"w{i}.example", (f"w{i}.example",)), IdempotencyToken=f"w{i}")
                 for i in range(16)]
        first = backend.issue_many(batch)
        assert all(isinstance(a, str) for a in first)
        os.kill(pids[0], signal.SIGKILL)
        os.kill(pids[1], signal.SIGKILL)
        time.sleep(0.2)
        more = [request(pki.ec, make_csr(f"x{i}.example", (f"x{i}.example",)), IdempotencyToken=f"x{i}")
                for i in range(16)]
        second = backend.issue_many(more[:8]) + backend.issue_many(more[8:])
        assert all(isinstance(a, str) for a in second)  # signed here, each batch losing a dead worker
        assert signers.running == 0
        assert backend.issue_many(batch) == first  # the tokens hold
    finally:
        backend.close()
    assert len(audit_report(pki.folder, pki.ec)) == 33  # the CA's own certificate and 32
