"""The local backend answers IssueCertificate, GetCertificate and DescribeCertificateAuthority
as AWS Private CA documents them: ARNs, validity, algorithms, idempotency, errors."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from pca_batch.backends.base import Backend
from pca_batch.backends.local.admin import audit_report, create_authority, set_authority_status
from pca_batch.backends.local.backend import LocalBackend
from pca_batch.model import NewAuthority
from tests.support.local_ca import SettableClock, error_code, load, make_csr, request, rsa_key


@dataclass(frozen=True)
class Pki:
    store: Path
    root: str  # EC P-256
    sub: str  # EC P-256, signed by root
    rsa: str  # RSA 2048 root
    short: str  # SHORT_LIVED_CERTIFICATE subordinate of root


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    store = tmp_path_factory.mktemp("local-backend") / "store"
    root = create_authority(store, NewAuthority(common_name="Backend Root"))
    return Pki(
        store=store,
        root=root,
        sub=create_authority(store, NewAuthority(common_name="Backend Sub", parent_arn=root)),
        rsa=create_authority(store, NewAuthority(common_name="Backend RSA Root", key_algorithm="RSA_2048")),
        short=create_authority(
            store, NewAuthority(common_name="Short", parent_arn=root, usage_mode="SHORT_LIVED_CERTIFICATE")
        ),
    )


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
def backend(pki: Pki, clock: SettableClock) -> Iterator[LocalBackend]:
    b = LocalBackend(pki.store, clock=clock)
    yield b
    b.close()


def issue(
    backend: LocalBackend, ca_arn: str, csr: bytes | None = None, **members: object
) -> x509.Certificate:
    arn = backend.issue_certificate(request(ca_arn, csr, **members))
    return load(backend.get_certificate(ca_arn, arn).certificate)


def test_implements_the_backend_protocol(backend: LocalBackend) -> None:
    b: Backend = backend
    assert b.name == "local"


def test_certificate_arn_is_the_ca_arn_and_the_serial_in_32_hex_digits(
    backend: LocalBackend, pki: Pki
) -> None:
    arn = backend.issue_certificate(request(pki.sub))
    m = re.fullmatch(re.escape(pki.sub) + r"/certificate/([0-9a-f]{32})", arn)
    assert m, arn
    cert = load(backend.get_certificate(pki.sub, arn).certificate)
    assert format(cert.serial_number, "032x") == m.group(1)
    assert 0 < cert.serial_number < 2**127


def test_serials_are_random_and_distinct(backend: LocalBackend, pki: Pki) -> None:
    serials = {issue(backend, pki.root).serial_number for _ in range(20)}
    assert len(serials) == 20
    assert max(serials).bit_length() > 100  # random 127-bit values, not a counter


def test_signing_algorithm_must_match_the_ca_key_family(backend: LocalBackend, pki: Pki) -> None:
    for ca, algorithm in ((pki.root, "SHA256WITHRSA"), (pki.rsa, "SHA256WITHECDSA"), (pki.root, "ML_DSA_65")):
        assert (
            error_code(backend.issue_certificate, request(ca, SigningAlgorithm=algorithm))
            == "InvalidArgsException"
        )
    assert (
        error_code(backend.issue_certificate, request(pki.root, SigningAlgorithm="MD5"))
        == "InvalidArgsException"
    )


@pytest.mark.parametrize(
    ("algorithm", "hash_name"),
    [("SHA256WITHECDSA", "sha256"), ("SHA384WITHECDSA", "sha384"), ("SHA512WITHECDSA", "sha512")],
)
def test_ecdsa_hash_comes_from_the_algorithm_name(
    backend: LocalBackend, pki: Pki, algorithm: str, hash_name: str
) -> None:
    cert = issue(backend, pki.root, SigningAlgorithm=algorithm)
    assert cert.signature_hash_algorithm is not None and cert.signature_hash_algorithm.name == hash_name


@pytest.mark.parametrize("bits", [256, 384, 512])
def test_rsa_pss_signs_with_pss(backend: LocalBackend, pki: Pki, bits: int) -> None:
    cert = issue(backend, pki.rsa, make_csr(key=rsa_key()), SigningAlgorithm=f"SHA{bits}WITHRSA_PSS")
    assert cert.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSASSA_PSS
    assert isinstance(cert.signature_algorithm_parameters, padding.PSS)
    assert cert.signature_hash_algorithm is not None and cert.signature_hash_algorithm.name == f"sha{bits}"
    ca = load(
        backend.get_certificate(
            pki.rsa, backend.issue_certificate(request(pki.rsa, SigningAlgorithm="SHA256WITHRSA"))
        ).chain
    )
    cert.verify_directly_issued_by(ca)


def test_rsa_pkcs1_signature(backend: LocalBackend, pki: Pki) -> None:
    cert = issue(backend, pki.rsa, SigningAlgorithm="SHA384WITHRSA")
    assert cert.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSA_WITH_SHA384


@pytest.mark.parametrize(
    "csr",
    [
        b"not a csr",
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        make_csr()[:60] + make_csr()[72:],
    ],
    ids=["garbage", "bad-der", "mangled"],
)
def test_unparsable_csr_is_malformed(backend: LocalBackend, pki: Pki, csr: bytes) -> None:
    assert error_code(backend.issue_certificate, request(pki.root, csr)) == "MalformedCSRException"


def test_csr_with_a_broken_signature_is_malformed(backend: LocalBackend, pki: Pki) -> None:
    der = x509.load_pem_x509_csr(make_csr("svc.example", ())).public_bytes(serialization.Encoding.DER)
    tampered = der.replace(b"svc.example", b"evil.exampl")  # same length: still parses, signature fails
    assert tampered != der
    x509.load_der_x509_csr(tampered)
    pem_text = b"".join(
        [
            b"-----BEGIN CERTIFICATE REQUEST-----\n",
            base64.encodebytes(tampered),
            b"-----END CERTIFICATE REQUEST-----\n",
        ]
    )
    assert error_code(backend.issue_certificate, request(pki.root, pem_text)) == "MalformedCSRException"


def test_csr_of_the_wrong_type_is_malformed(backend: LocalBackend, pki: Pki) -> None:
    assert error_code(backend.issue_certificate, request(pki.root, 12345)) == "MalformedCSRException"  # type: ignore[arg-type]


def test_csr_without_subject_or_san_is_refused(backend: LocalBackend, pki: Pki) -> None:
    assert (
        error_code(backend.issue_certificate, request(pki.root, make_csr(None, ())))
        == "MalformedCSRException"
    )


def test_csr_with_a_weak_key_is_malformed(backend: LocalBackend, pki: Pki) -> None:
    weak = make_csr(key=ec.generate_private_key(ec.SECP256K1()))
    assert error_code(backend.issue_certificate, request(pki.root, weak)) == "MalformedCSRException"


def test_unknown_ca_and_bad_arns(backend: LocalBackend, pki: Pki) -> None:
    unknown = pki.root[:-4] + "0000"
    assert error_code(backend.issue_certificate, request(unknown)) == "ResourceNotFoundException"
    assert error_code(backend.describe_certificate_authority, unknown) == "ResourceNotFoundException"
    assert error_code(backend.issue_certificate, request("arn:aws:s3:::bucket")) == "InvalidArnException"
    assert error_code(backend.get_certificate, pki.root, "not-an-arn") == "InvalidArnException"
    missing = f"{pki.root}/certificate/{'0' * 32}"
    assert error_code(backend.get_certificate, pki.root, missing) == "ResourceNotFoundException"
    issued = backend.issue_certificate(request(pki.root))
    assert error_code(backend.get_certificate, pki.sub, issued) == "ResourceNotFoundException"


def test_unknown_template_is_invalid_args(backend: LocalBackend, pki: Pki) -> None:
    for arn in (
        "arn:aws:acm-pca:::template/NoSuchTemplate/V1",
        "arn:aws:acm-pca:::template/EndEntityCertificate/V9",
    ):
        assert (
            error_code(backend.issue_certificate, request(pki.root, TemplateArn=arn))
            == "InvalidArgsException"
        )


def test_missing_members_and_bad_tokens_are_invalid_args(backend: LocalBackend, pki: Pki) -> None:
    req = request(pki.root)
    del req["Validity"]
    assert error_code(backend.issue_certificate, req) == "InvalidArgsException"
    for token in ("", "x" * 37, "bad\u0100"):
        assert error_code(backend.issue_certificate, request(pki.root, IdempotencyToken=token)) == (
            "InvalidArgsException"
        )


def test_disabled_ca_is_invalid_state_until_enabled(pki: Pki, clock: SettableClock) -> None:
    ca = create_authority(pki.store, NewAuthority(common_name="Disable me", parent_arn=pki.root))
    backend = LocalBackend(pki.store, clock=clock)
    try:
        issue(backend, ca)  # loaded and cached before the change
        set_authority_status(pki.store, ca, "DISABLED")  # as `ca disable` does, from outside
        assert error_code(backend.issue_certificate, request(ca)) == "InvalidStateException"
        assert backend.describe_certificate_authority(ca).status == "DISABLED"
        set_authority_status(pki.store, ca, "ACTIVE")
        issue(backend, ca)
    finally:
        backend.close()


def test_describe_reports_status_key_mode_and_not_after(
    backend: LocalBackend, pki: Pki, clock: SettableClock
) -> None:
    described = backend.describe_certificate_authority(pki.rsa)
    ca_cert = load(
        backend.get_certificate(
            pki.rsa, backend.issue_certificate(request(pki.rsa, SigningAlgorithm="SHA256WITHRSA"))
        ).chain
    )
    assert (described.arn, described.status, described.key_algorithm, described.usage_mode) == (
        pki.rsa,
        "ACTIVE",
        "RSA_2048",
        "GENERAL_PURPOSE",
    )
    assert described.not_after == ca_cert.not_valid_after_utc
    clock.advance(days=3660)
    assert backend.describe_certificate_authority(pki.rsa).status == "EXPIRED"
    assert error_code(backend.issue_certificate, request(pki.rsa, SigningAlgorithm="SHA256WITHRSA")) == (
        "InvalidStateException"
    )


def test_same_token_within_five_minutes_returns_the_same_certificate(
    backend: LocalBackend, pki: Pki, clock: SettableClock
) -> None:
    ca = create_authority(pki.store, NewAuthority(common_name="Idempotency", parent_arn=pki.root))
    first = backend.issue_certificate(request(ca, IdempotencyToken="tok-1"))
    clock.advance(minutes=4, seconds=59)
    again = backend.issue_certificate(request(ca, make_csr("other.example"), IdempotencyToken="tok-1"))
    assert again == first
    assert len(audit_report(pki.store, ca)) == 1
    other_ca = backend.issue_certificate(request(pki.root, IdempotencyToken="tok-1"))
    assert other_ca != first
    clock.advance(seconds=2)  # more than five minutes after the first
    later = backend.issue_certificate(request(ca, IdempotencyToken="tok-1"))
    assert later != first
    assert backend.issue_certificate(request(ca, IdempotencyToken="tok-1")) == later
    assert len(audit_report(pki.store, ca)) == 2
    untokened = {backend.issue_certificate(request(ca)) for _ in range(2)}
    assert len(untokened) == 2


def test_token_is_honoured_by_another_backend_instance(pki: Pki, clock: SettableClock) -> None:
    one, two = LocalBackend(pki.store, clock=clock), LocalBackend(pki.store, clock=clock)
    try:
        arn = one.issue_certificate(request(pki.sub, IdempotencyToken="shared-token"))
        assert two.issue_certificate(request(pki.sub, IdempotencyToken="shared-token")) == arn
        assert two.get_certificate(pki.sub, arn).certificate == one.get_certificate(pki.sub, arn).certificate
    finally:
        one.close()
        two.close()


def test_ca_templates_respect_path_length_and_usage_mode(backend: LocalBackend, pki: Pki) -> None:
    sub0 = "arn:aws:acm-pca:::template/SubordinateCACertificate_PathLen0/V1"
    sub3 = "arn:aws:acm-pca:::template/SubordinateCACertificate_PathLen3/V1"
    assert (
        issue(backend, pki.root, TemplateArn=sub3)
        .extensions.get_extension_for_class(x509.BasicConstraints)
        .value.path_length
        == 3
    )
    # The subordinate was made with path length 3: it may sign PathLen0..2, not 3.
    issue(backend, pki.sub, TemplateArn=sub0)
    assert error_code(backend.issue_certificate, request(pki.sub, TemplateArn=sub3)) == "InvalidArgsException"
    assert (
        error_code(backend.issue_certificate, request(pki.short, TemplateArn=sub0)) == "InvalidArgsException"
    )


def test_root_template_signs_only_the_cas_own_key(backend: LocalBackend, pki: Pki) -> None:
    root_template = "arn:aws:acm-pca:::template/RootCACertificate/V1"
    assert error_code(backend.issue_certificate, request(pki.root, TemplateArn=root_template)) == (
        "InvalidArgsException"
    )


def test_get_certificate_reads_the_store_in_a_new_instance(backend: LocalBackend, pki: Pki) -> None:
    arn = backend.issue_certificate(request(pki.sub))
    first = backend.get_certificate(pki.sub, arn)
    fresh = LocalBackend(pki.store)
    try:
        again = fresh.get_certificate(pki.sub, arn)
    finally:
        fresh.close()
    assert again == first
    load(again.certificate).verify_directly_issued_by(load(again.chain))


def test_signature_verifies_with_the_issuer_key(backend: LocalBackend, pki: Pki) -> None:
    bundle = backend.get_certificate(pki.root, backend.issue_certificate(request(pki.root)))
    issuer = load(bundle.chain)
    leaf = load(bundle.certificate)
    issuer.public_key().verify(  # type: ignore[union-attr, call-arg]
        leaf.signature,
        leaf.tbs_certificate_bytes,
        ec.ECDSA(hashes.SHA256()),  # type: ignore[arg-type]
    )
