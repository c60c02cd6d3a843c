"""The CA lifecycle of the local store (for `pca-batch serve`): pending CAs and their CSRs, the
import of a CA certificate with AWS's checks, delete, restore, the end of the restoration period."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID, SubjectInformationAccessOID

from pca_batch.backends.local import lifecycle
from pca_batch.backends.local.backend import LocalBackend
from pca_batch.backends.local.keys import KEYS_DIR, load_key
from pca_batch.backends.local.store import Store
from pca_batch.errors import BackendError
from tests.support.local_ca import request, split_pems

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PEM = Encoding.PEM
CONFIG = {"KeyAlgorithm": "EC_prime256v1", "SigningAlgorithm": "SHA384WITHECDSA", "Subject": {"CommonName": "Sub"}}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "store")
    yield s
    s.close()


def new_ca(store: Store, ca_type: str = "SUBORDINATE", name: str = "a", **more: Any) -> str:
    arn = f"arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/{name}"
    new = lifecycle.NewCa(arn=arn, ca_type=ca_type, configuration=more.pop("configuration", CONFIG), revocation=None,
                          crl_url=None, crl_days=None, usage_mode="GENERAL_PURPOSE", **more)  # fmt: skip
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Sub")])
    return lifecycle.create(store, new, subject, NOW)


def csr_of(store: Store, arn: str) -> x509.CertificateSigningRequest:
    row = store.authority(arn)
    assert row is not None
    return x509.load_pem_x509_csr(lifecycle.csr_of(store, row).encode())


class ExternalCa:
    """A CA outside the store, to sign what is imported."""

    def __init__(self, name: str, parent: ExternalCa | None = None, path_length: int | None = None) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.parent = parent
        signer = parent or self
        self.certificate = self._sign(self.key.public_key(), self.name, signer, path_length)

    def _sign(
        self, public_key: Any, subject: x509.Name, signer: ExternalCa, path_length: int | None, **options: Any
    ) -> x509.Certificate:
        """Options: extensions (value, critical) pairs, ca (default True), not_after."""
        extensions: Sequence[tuple[x509.ExtensionType, bool]] = options.get("extensions", ())
        ca: bool = options.get("ca", True)
        not_after: datetime = options.get("not_after", NOW + timedelta(days=3650))
        builder = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(signer.name).public_key(public_key)
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(not_after)
        )  # fmt: skip
        if ca is not None:
            builder = builder.add_extension(x509.BasicConstraints(ca, path_length if ca else None), critical=True)
        for value, critical in extensions:
            builder = builder.add_extension(value, critical=critical)
        return builder.sign(signer.key, hashes.SHA256())

    def sign_csr(self, csr: x509.CertificateSigningRequest, **options: Any) -> bytes:
        cert = self._sign(csr.public_key(), csr.subject, self, options.pop("path_length", 0), **options)
        return cert.public_bytes(Encoding.PEM)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(Encoding.PEM)

    def chain(self) -> bytes:
        return self.pem + (self.parent.chain() if self.parent else b"")


def self_signed_with_the_cas_key(store: Store, arn: str) -> bytes:
    row = store.authority(arn)
    assert row is not None
    mine = ExternalCa("Sub")
    mine.key = load_key(store.folder, row.key_file, arn)  # type: ignore[assignment]
    return mine._sign(mine.key.public_key(), mine.name, mine, None).public_bytes(Encoding.PEM)


def refused(code: str, call: Any, *args: Any) -> str:
    with pytest.raises(BackendError) as raised:
        call(*args)
    assert raised.value.code == code, raised.value.message
    return raised.value.message


def test_a_new_ca_is_pending_with_a_csr_of_its_key_and_configuration(store: Store) -> None:
    config = {**CONFIG, "CsrExtensions": {
        "KeyUsage": {"KeyCertSign": True, "CRLSign": True, "DigitalSignature": True},
        "SubjectInformationAccess": [{"AccessMethod": {"AccessMethodType": "CA_REPOSITORY"},
                                      "AccessLocation": {"UniformResourceIdentifier": "http://repo.example/ca"}}],
    }}  # fmt: skip
    arn = new_ca(store, configuration=config)
    row = store.authority(arn)
    assert row is not None and row.status == "PENDING_CERTIFICATE" and not row.has_certificate
    csr = csr_of(store, arn)
    assert csr.is_signature_valid and isinstance(csr.signature_hash_algorithm, hashes.SHA384)
    assert csr.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert csr.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    sia = csr.extensions.get_extension_for_class(x509.SubjectInformationAccess).value
    assert [d.access_method for d in sia] == [SubjectInformationAccessOID.CA_REPOSITORY]
    backend = LocalBackend(store.folder)
    try:
        message = refused("InvalidStateException", backend.issue_certificate, request(arn))
        assert "PENDING_CERTIFICATE" in message
    finally:
        backend.close()


def test_the_same_create_token_within_five_minutes_makes_one_ca(store: Store) -> None:
    first = new_ca(store, name="t1", token="tok")
    assert new_ca(store, name="t2", token="tok") == first
    assert len(list((store.folder / KEYS_DIR).iterdir())) == 1
    new = lifecycle.NewCa(
        arn=first.replace("/t1", "/t3"), ca_type="ROOT", configuration=CONFIG, revocation=None, crl_url=None,
        crl_days=None, usage_mode="GENERAL_PURPOSE", token="tok",
    )  # fmt: skip
    later = lifecycle.create(store, new, x509.Name([]), NOW + timedelta(minutes=6))
    assert later != first


def test_an_externally_signed_subordinate_is_imported_with_its_chain_and_issues(store: Store) -> None:
    root = ExternalCa("External Root")
    intermediate = ExternalCa("External Intermediate", root, path_length=1)
    arn = new_ca(store)
    cert = intermediate.sign_csr(csr_of(store, arn))
    lifecycle.import_certificate(store, arn, cert, intermediate.chain(), NOW)
    row = store.authority(arn)
    assert row is not None and row.status == "ACTIVE" and row.parent_arn is None and row.ca_type == "SUBORDINATE"
    backend = LocalBackend(store.folder, clock=lambda: NOW)
    try:
        issued = backend.issue_certificate(request(arn))
        chain = split_pems(backend.get_certificate(arn, issued).chain)
    finally:
        backend.close()
    assert [x509.load_pem_x509_certificate(p.encode()).subject.rfc4514_string() for p in chain] == [
        "CN=Sub", "CN=External Intermediate", "CN=External Root",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "code", "words"),
    [
        ("another key", "CertificateMismatchException", "not the key of this CA"),
        ("no chain", "InvalidRequestException", "with its chain"),
        ("chain upside down", "InvalidRequestException", "did not sign"),
        ("chain holds the certificate", "InvalidRequestException", "must not include"),
        ("self-signed", "InvalidRequestException", "self-signed certificate cannot be imported for a subordinate"),
        ("critical AIA", "InvalidRequestException", "critical, which AWS refuses"),
        ("not a CA", "InvalidRequestException", "CA:TRUE"),
        ("expired", "InvalidRequestException", "expired"),
        ("path length", "InvalidRequestException", "allows 0 CA certificates below it"),
        ("garbage", "MalformedCertificateException", "not PEM-encoded"),
    ],
)
def test_an_import_aws_would_refuse_is_refused(store: Store, case: str, code: str, words: str) -> None:
    root = ExternalCa("Root")
    intermediate = ExternalCa("Intermediate", root, path_length=1)
    arn = new_ca(store)
    csr = csr_of(store, arn)
    cert, chain = intermediate.sign_csr(csr), intermediate.chain()
    other = ec.generate_private_key(ec.SECP256R1())
    issuers = x509.UniformResourceIdentifier("http://x.example/ca.cer")
    aia = x509.AuthorityInformationAccess([x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS, issuers)])
    tight = ExternalCa("Tight", root, path_length=0)
    cert, chain = {
        "another key": (intermediate._sign(other.public_key(), csr.subject, intermediate, 0).public_bytes(PEM), chain),
        "no chain": (cert, b""),
        "chain upside down": (cert, root.pem + intermediate.pem),
        "chain holds the certificate": (cert, cert + chain),
        "self-signed": (self_signed_with_the_cas_key(store, arn), b""),
        "critical AIA": (intermediate.sign_csr(csr, extensions=[(aia, True)]), chain),
        "not a CA": (intermediate.sign_csr(csr, ca=False), chain),
        "expired": (intermediate.sign_csr(csr, not_after=NOW - timedelta(seconds=1)), chain),
        "path length": (tight.sign_csr(csr), tight.chain()),
        "garbage": (b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", chain),
    }[case]  # fmt: skip
    assert words in refused(code, lifecycle.import_certificate, store, arn, cert, chain, NOW)
    row = store.authority(arn)
    assert row is not None and row.status == "PENDING_CERTIFICATE"


def test_a_root_takes_only_its_own_self_signed_certificate(store: Store) -> None:
    arn = new_ca(store, "ROOT")
    signed_by_another = ExternalCa("Other").sign_csr(csr_of(store, arn))
    assert "only a self-signed" in refused(
        "InvalidRequestException", lifecycle.import_certificate, store, arn, signed_by_another, None, NOW
    )


def test_delete_restore_and_the_end_of_the_restoration_period(store: Store) -> None:
    arn = new_ca(store, "ROOT", name="root")
    backend = LocalBackend(store.folder, clock=lambda: NOW)
    try:
        csr = csr_of(store, arn).public_bytes(Encoding.PEM)
        template = "arn:aws:acm-pca:::template/RootCACertificate/V1"
        own = backend.issue_certificate(request(arn, csr, TemplateArn=template, Validity={"Value": 5, "Type": "YEARS"}))
        pem = backend.get_certificate(arn, own).certificate.encode()
    finally:
        backend.close()
    lifecycle.import_certificate(store, arn, pem, None, NOW)
    assert "disable it" in refused("InvalidStateException", lifecycle.delete, store, arn, 7, NOW)
    lifecycle.update(store, arn, lifecycle.Update(status="DISABLED"), NOW)
    lifecycle.delete(store, arn, 7, NOW)
    row = store.authority(arn)
    assert (
        row is not None
        and row.status == "DELETED"
        and row.restorable_until == int((NOW + timedelta(days=7)).timestamp())
    )
    refused("InvalidStateException", lifecycle.delete, store, arn, 7, NOW)
    lifecycle.restore(store, arn, NOW + timedelta(days=6))
    assert (row := store.authority(arn)) is not None and row.status == "DISABLED"
    refused("InvalidStateException", lifecycle.restore, store, arn, NOW)
    lifecycle.delete(store, arn, None, NOW)  # 30 days
    gone = NOW + timedelta(days=30, seconds=1)
    refused("ResourceNotFoundException", lifecycle.restore, store, arn, gone)
    key_file = store.folder / KEYS_DIR / row.key_file
    assert key_file.exists()
    assert lifecycle.purge(store, gone) == [arn]
    assert store.authority(arn) is None and not key_file.exists()
    assert len(store.certificates(arn)) == 1  # what it issued stays recorded


def test_a_pending_ca_deleted_comes_back_pending(store: Store) -> None:
    arn = new_ca(store)
    lifecycle.delete(store, arn, 7, NOW)
    lifecycle.restore(store, arn, NOW)
    row = store.authority(arn)
    assert row is not None and row.status == "PENDING_CERTIFICATE" and row.restorable_until is None


def test_the_ca_quota(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "CA_QUOTA", 2)
    new_ca(store, name="q1")
    new_ca(store, name="q2")
    assert "quota is 2" in refused("LimitExceededException", new_ca, store, "ROOT", "q3")
    assert len(list((store.folder / KEYS_DIR).iterdir())) == 2
