"""Each modelled error that `pca-batch serve` answers reaches boto3 as its botocore exception class
(``client.exceptions.X``), with AWS's HTTP status; requests AWS's front end would refuse are
ValidationException (every broken constraint named) or SerializationException.

Modelled errors serve never answers: RequestInProgressException (nothing is asynchronous here: a
CA's CSR and an audit report exist when the create call returns), RequestFailedException (no
network or S3 behind it to fail), LockoutPreventedException (policies are stored, not enforced),
ConcurrentModificationException (answered only when two clients change one CA at once).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from pca_batch.backends.local import lifecycle
from tests.support.moto_server import make_csr
from tests.support.serve_server import EC_CONFIG, activate_root, client


@pytest.fixture(scope="module")
def acm(serve_endpoint: str) -> Iterator[Any]:
    c = client(serve_endpoint)
    yield c
    c.close()


@pytest.fixture(scope="module")
def root(acm: Any) -> str:
    return activate_root(acm, "errors root")


@pytest.fixture(scope="module")
def disabled(acm: Any) -> str:
    arn = activate_root(acm, "errors disabled root")
    acm.update_certificate_authority(CertificateAuthorityArn=arn, Status="DISABLED")
    return arn


@pytest.fixture(scope="module")
def tagged(acm: Any) -> str:
    return activate_root(acm, "errors tagged root")


@pytest.fixture(scope="module")
def pending(acm: Any) -> str:
    arn: str = acm.create_certificate_authority(
        CertificateAuthorityConfiguration={**EC_CONFIG, "Subject": {"CommonName": "errors pending"}},
        CertificateAuthorityType="SUBORDINATE",
    )["CertificateAuthorityArn"]
    return arn


@pytest.fixture(scope="module")
def cas(root: str, disabled: str, pending: str, tagged: str) -> dict[str, str]:
    return {"root": root, "disabled": disabled, "pending": pending, "tagged": tagged}


def self_signed(common_name: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(7).not_valid_before(datetime(2026, 1, 1))
        .not_valid_after(datetime(2036, 1, 1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(Encoding.PEM)


def issue(acm: Any, ca: str, **members: Any) -> Any:
    request = {"CertificateAuthorityArn": ca, "Csr": make_csr("e.example")[0], "SigningAlgorithm": "SHA256WITHECDSA",
               "Validity": {"Value": 3, "Type": "DAYS"}, **members}  # fmt: skip
    return acm.issue_certificate(**request)


def revoked_twice(acm: Any, root: str) -> None:
    serial = issue(acm, root)["CertificateArn"].rsplit("/", 1)[1]
    acm.revoke_certificate(CertificateAuthorityArn=root, CertificateSerial=serial, RevocationReason="UNSPECIFIED")
    acm.revoke_certificate(CertificateAuthorityArn=root, CertificateSerial=serial, RevocationReason="UNSPECIFIED")


def tags_beyond_fifty(acm: Any, root: str) -> None:
    acm.tag_certificate_authority(CertificateAuthorityArn=root, Tags=[{"Key": f"k{i}"} for i in range(50)])
    acm.tag_certificate_authority(CertificateAuthorityArn=root, Tags=[{"Key": "one-more"}])


def permission_twice(acm: Any, root: str) -> None:
    for _ in range(2):
        acm.create_permission(CertificateAuthorityArn=root, Principal="acm.amazonaws.com", Actions=["GetCertificate"])


def root_own_certificate_revoked(acm: Any, root: str) -> None:
    pem = acm.get_certificate_authority_certificate(CertificateAuthorityArn=root)["Certificate"]
    serial = format(x509.load_pem_x509_certificate(pem.encode()).serial_number, "x")
    acm.revoke_certificate(CertificateAuthorityArn=root, CertificateSerial=serial, RevocationReason="UNSPECIFIED")


UNKNOWN = "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/00000000-0000-4000-8000-000000000000"
Case = Callable[[Any, dict[str, str]], Any]
CASES: dict[str, Case] = {
    "ResourceNotFoundException": lambda acm, ca: acm.describe_certificate_authority(CertificateAuthorityArn=UNKNOWN),
    "InvalidArnException": lambda acm, ca: acm.get_certificate(
        CertificateAuthorityArn=ca["root"], CertificateArn=f"{ca['root']}/not-a-certificate"
    ),
    "InvalidStateException": lambda acm, ca: issue(acm, ca["disabled"]),
    "InvalidArgsException": lambda acm, ca: issue(acm, ca["root"], SigningAlgorithm="SHA256WITHRSA"),
    "MalformedCSRException": lambda acm, ca: issue(acm, ca["root"], Csr=b"not a CSR"),
    "InvalidTagException": lambda acm, ca: acm.tag_certificate_authority(
        CertificateAuthorityArn=ca["root"], Tags=[{"Key": "aws:reserved"}]
    ),
    "TooManyTagsException": lambda acm, ca: tags_beyond_fifty(acm, ca["tagged"]),
    "InvalidPolicyException": lambda acm, ca: acm.put_policy(ResourceArn=ca["root"], Policy="{not json"),
    "PermissionAlreadyExistsException": lambda acm, ca: permission_twice(acm, ca["root"]),
    "InvalidNextTokenException": lambda acm, ca: acm.list_certificate_authorities(NextToken="garbage"),
    "CertificateMismatchException": lambda acm, ca: acm.import_certificate_authority_certificate(
        CertificateAuthorityArn=ca["pending"], Certificate=self_signed("someone else"), CertificateChain=b""
    ),
    "MalformedCertificateException": lambda acm, ca: acm.import_certificate_authority_certificate(
        CertificateAuthorityArn=ca["pending"], Certificate=b"-----BEGIN CERTIFICATE-----\nAAAA\n"
    ),
    "InvalidRequestException": lambda acm, ca: root_own_certificate_revoked(acm, ca["root"]),
    "RequestAlreadyProcessedException": lambda acm, ca: revoked_twice(acm, ca["root"]),
    "LimitExceededException": lambda acm, ca: acm.create_certificate_authority(
        CertificateAuthorityConfiguration={**EC_CONFIG, "Subject": {"CommonName": "one too many"}},
        CertificateAuthorityType="ROOT",
    ),
}


@pytest.mark.parametrize("code", sorted(CASES))
def test_a_modelled_error_is_raised_as_its_botocore_class(
    acm: Any, cas: dict[str, str], code: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lifecycle, "CA_QUOTA", 0)  # only the create of LimitExceededException meets it
    error_class = getattr(acm.exceptions, code)
    with pytest.raises(error_class) as raised:
        CASES[code](acm, cas)
    assert raised.value.response["Error"]["Code"] == code
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert raised.value.response["Error"]["Message"]


def test_every_modelled_error_but_the_documented_four_is_covered(acm: Any) -> None:
    modelled = {s for op in acm.meta.service_model.operation_names
                for s in (e.name for e in acm.meta.service_model.operation_model(op).error_shapes)}  # fmt: skip
    never = {"RequestInProgressException", "RequestFailedException", "LockoutPreventedException",
             "ConcurrentModificationException"}  # fmt: skip
    assert modelled - never == set(CASES)


def test_validation_names_every_broken_constraint(acm: Any, root: str) -> None:
    with pytest.raises(ClientError) as raised:
        acm.issue_certificate(
            CertificateAuthorityArn=root, Csr=make_csr("v.example")[0], SigningAlgorithm="MD5WITHRSA",
            Validity={"Value": 3, "Type": "FORTNIGHTS"}, IdempotencyToken="x" * 37,
        )  # fmt: skip
    error = raised.value.response["Error"]
    assert error["Code"] == "ValidationException"
    message = error["Message"]
    assert message.startswith("3 validation errors detected: ")
    assert (
        "Value 'MD5WITHRSA' at 'signingAlgorithm' failed to satisfy constraint: "
        "Member must satisfy enum value set: [SHA256WITHECDSA, " in message
    )
    assert "Value 'FORTNIGHTS' at 'validity.type' failed to satisfy constraint" in message
    assert f"Value '{'x' * 37}' at 'idempotencyToken' failed to satisfy constraint: " in message
    assert "Member must have length less than or equal to 36" in message


def test_tag_keys_are_checked_against_the_models_unicode_pattern(acm: Any, root: str) -> None:
    acm.tag_certificate_authority(CertificateAuthorityArn=root, Tags=[{"Key": "Équipe 1", "Value": "π/2"}])
    with pytest.raises(ClientError) as raised:
        acm.tag_certificate_authority(CertificateAuthorityArn=root, Tags=[{"Key": "bad*key"}])
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "'tags.1.member.key'" in raised.value.response["Error"]["Message"]
    tags = acm.list_tags(CertificateAuthorityArn=root)["Tags"]
    assert {"Key": "Équipe 1", "Value": "π/2"} in tags


def test_a_ca_of_another_region_is_not_found_there(serve_endpoint: str, root: str) -> None:
    west = client(serve_endpoint, region="us-west-2")
    try:
        with pytest.raises(west.exceptions.ResourceNotFoundException):
            west.describe_certificate_authority(CertificateAuthorityArn=root)
        assert root not in json.dumps(west.list_certificate_authorities()["CertificateAuthorities"])
    finally:
        west.close()
