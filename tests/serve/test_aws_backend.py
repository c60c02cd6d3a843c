"""pca-batch's aws backend pointed at `pca-batch serve`: what moto does not do, checked on the wire.

moto ignores IdempotencyToken, Validity, SigningAlgorithm and ApiPassthrough; serve does what AWS
does with each (the local backend's behaviour, over JSON 1.1), and `pca-batch apply` and
`pca-batch revoke` with ``backend: {type: aws}`` see it.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from pca_batch.backends.aws import AwsBackend
from pca_batch.errors import BackendError
from tests.support.common import Cli
from tests.support.local_ca import openssl_verify
from tests.support.moto_server import make_csr
from tests.support.serve_server import activate_root, client

RSA_CONFIG = {"KeyAlgorithm": "RSA_2048", "SigningAlgorithm": "SHA256WITHRSA"}
CRL = {"CrlConfiguration": {"Enabled": True, "ExpirationInDays": 3, "S3BucketName": "aws-backend-crl"}}


@pytest.fixture(scope="module")
def acm(serve_endpoint: str) -> Iterator[Any]:
    c = client(serve_endpoint)
    yield c
    c.close()


@pytest.fixture(scope="module")
def ec_ca(acm: Any) -> str:
    return activate_root(acm, "serve ec root", RevocationConfiguration=CRL)


@pytest.fixture(scope="module")
def rsa_ca(acm: Any) -> str:
    return activate_root(acm, "serve rsa root", RSA_CONFIG)


@pytest.fixture
def backend(serve_endpoint: str) -> Iterator[AwsBackend]:
    b = AwsBackend(endpoint_url=serve_endpoint, region="us-east-1")
    yield b
    b.close()


def request(ca: str, **members: Any) -> dict[str, Any]:
    csr, _ = make_csr("svc.example")
    return {"CertificateAuthorityArn": ca, "Csr": csr, "SigningAlgorithm": "SHA256WITHECDSA",
            "Validity": {"Value": 30, "Type": "DAYS"}, **members}  # fmt: skip


def issued(backend: AwsBackend, ca: str, arn: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(backend.get_certificate(ca, arn).certificate.encode())


def test_the_same_token_gives_the_same_certificate_and_another_token_another(backend: AwsBackend, ec_ca: str) -> None:
    first = backend.issue_certificate(request(ec_ca, IdempotencyToken="token-a"))
    assert backend.issue_certificate(request(ec_ca, IdempotencyToken="token-a")) == first
    assert backend.issue_certificate(request(ec_ca, IdempotencyToken="token-b")) != first
    assert backend.issue_certificate(request(ec_ca)) != backend.issue_certificate(request(ec_ca))


@pytest.mark.parametrize(
    ("validity", "span"),
    [
        ({"Value": 45, "Type": "DAYS"}, timedelta(days=45)),
        ({"Value": 2, "Type": "YEARS"}, None),
        ({"Value": 3, "Type": "MONTHS"}, None),
    ],
)
def test_validity_sets_not_after(
    backend: AwsBackend, ec_ca: str, validity: dict[str, Any], span: timedelta | None
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    cert = issued(backend, ec_ca, backend.issue_certificate(request(ec_ca, Validity=validity)))
    assert before - timedelta(hours=1, seconds=5) <= cert.not_valid_before_utc <= before - timedelta(minutes=59)
    if span is not None:
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == span + timedelta(hours=1)
    else:
        months = validity["Value"] * (12 if validity["Type"] == "YEARS" else 1)
        assert 28 * months <= (cert.not_valid_after_utc - before).days <= 31 * months


def test_absolute_validity_and_validity_not_before(backend: AwsBackend, ec_ca: str) -> None:
    start = int((datetime.now(UTC) + timedelta(days=2)).timestamp())
    end = int((datetime.now(UTC) + timedelta(days=20)).timestamp())
    arn = backend.issue_certificate(request(ec_ca, Validity={"Value": end, "Type": "ABSOLUTE"},
                                            ValidityNotBefore={"Value": start, "Type": "ABSOLUTE"}))  # fmt: skip
    cert = issued(backend, ec_ca, arn)
    assert (int(cert.not_valid_before_utc.timestamp()), int(cert.not_valid_after_utc.timestamp())) == (start, end)


def test_the_signing_algorithm_is_the_one_asked(backend: AwsBackend, ec_ca: str, rsa_ca: str) -> None:
    ec_cert = issued(backend, ec_ca, backend.issue_certificate(request(ec_ca, SigningAlgorithm="SHA384WITHECDSA")))
    assert isinstance(ec_cert.signature_hash_algorithm, hashes.SHA384)
    pss = request(rsa_ca, SigningAlgorithm="SHA512WITHRSA_PSS")
    rsa_cert = issued(backend, rsa_ca, backend.issue_certificate(pss))
    assert isinstance(rsa_cert.signature_hash_algorithm, hashes.SHA512)
    assert isinstance(rsa_cert.signature_algorithm_parameters, padding.PSS)
    with pytest.raises(BackendError) as refused:
        backend.issue_certificate(request(rsa_ca, SigningAlgorithm="SHA256WITHECDSA"))
    assert refused.value.code == "InvalidArgsException" and "RSA" in refused.value.message


def test_api_passthrough_is_used_by_a_passthrough_template_only(backend: AwsBackend, ec_ca: str) -> None:
    passthrough = {
        "Subject": {"CommonName": "from-the-api.example", "Organization": "API"},
        "Extensions": {"SubjectAlternativeNames": [{"DnsName": "api.example"}, {"IpAddress": "10.0.0.7"}]},
    }
    template = "arn:aws:acm-pca:::template/EndEntityCertificate_APIPassthrough/V1"
    cert = issued(backend, ec_ca, backend.issue_certificate(request(ec_ca, TemplateArn=template,
                                                                    ApiPassthrough=passthrough)))  # fmt: skip
    assert cert.subject.rfc4514_string() == "CN=from-the-api.example,O=API"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in sans] == ["api.example", "10.0.0.7"]
    plain = issued(backend, ec_ca, backend.issue_certificate(request(ec_ca, ApiPassthrough=passthrough)))
    assert plain.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "svc.example"


def test_errors_are_the_ones_aws_answers(backend: AwsBackend, ec_ca: str) -> None:
    unknown = f"{ec_ca}/certificate/{'0' * 32}"
    with pytest.raises(BackendError) as missing:
        backend.get_certificate(ec_ca, unknown)
    assert (missing.value.code, missing.value.status) == ("ResourceNotFoundException", 400)
    with pytest.raises(BackendError) as malformed:
        backend.issue_certificate(request(ec_ca, Csr=b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"))
    assert malformed.value.code == "MalformedCSRException"
    description = backend.describe_certificate_authority(ec_ca)
    assert (description.status, description.key_algorithm, description.usage_mode) == (
        "ACTIVE", "EC_prime256v1", "GENERAL_PURPOSE",
    )  # fmt: skip


def test_apply_and_revoke_with_the_aws_backend_against_serve(
    cli: Cli, serve_endpoint: str, ec_ca: str, tmp_path: Path
) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web.example")]))
        .sign(key, hashes.SHA384())
    )
    (tmp_path / "web.csr").write_bytes(csr.public_bytes(Encoding.PEM))
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        f"version: 1\nbackend: {{type: aws, endpoint_url: '{serve_endpoint}', region: us-east-1}}\n"
        "certificates:\n"
        "  - name: web\n"
        f"    CertificateAuthorityArn: {ec_ca}\n"
        "    SigningAlgorithm: SHA512WITHECDSA\n"
        "    Validity: {Value: 10, Type: DAYS}\n"
        "    TemplateArn: arn:aws:acm-pca:::template/EndEntityServerAuthCertificate_APIPassthrough/V1\n"
        "    ApiPassthrough: {Extensions: {SubjectAlternativeNames: [{DnsName: web.example},"
        " {DnsName: www.example}]}}\n"
        "    Csr: file://web.csr\n"
        "    output: {certificate: out/web.pem, chain: out/web.chain.pem}\n"
    )
    first = cli("apply", manifest, "--report", tmp_path / "r.json", "--max-rate", "0")
    assert first.code == 0, first.err
    row = json.loads((tmp_path / "r.json").read_text())["results"][0]
    pem = (tmp_path / "out" / "web.pem").read_text()
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA512)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=10, hours=1)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in sans] == ["web.example", "www.example"]
    assert openssl_verify(tmp_path, pem, (tmp_path / "out" / "web.chain.pem").read_text()).returncode == 0
    again = cli("apply", manifest, "--report", tmp_path / "r2.json", "--max-rate", "0")
    assert again.code == 0 and json.loads((tmp_path / "r2.json").read_text())["results"][0]["status"] == "unchanged"

    revoked = cli("revoke", manifest, "web", "--reason", "SUPERSEDED")
    assert revoked.code == 0, revoked.err
    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    with urllib.request.urlopen(str(points[0].full_name[0].value), timeout=30) as answer:  # type: ignore[index]
        crl = x509.load_der_x509_crl(answer.read())
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    assert entry is not None and row["serial"] == format(cert.serial_number, "032x")
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.superseded
