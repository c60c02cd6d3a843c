"""ApiPassthrough and CSR passthrough reach certificates in the order AWS documents:
the template's own extensions first, then the API's, then the CSR's."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from pca_batch.backends.local.admin import create_authority
from pca_batch.backends.local.backend import LocalBackend
from pca_batch.model import NewAuthority
from tests.support.local_ca import (
    EC_KEY_ENCIPHERMENT,
    error_code,
    ext,
    issue_pem,
    key_usages,
    load,
    make_csr,
    openssl_text,
    openssl_verify,
    pkilint_findings,
    request,
    template,
)

END_ENTITY_KU = {"digital_signature", "key_encipherment"}
SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH


@dataclass(frozen=True)
class Pki:
    store: Path
    root: str
    sub: str


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    store = tmp_path_factory.mktemp("local-passthrough") / "store"
    root = create_authority(store, NewAuthority(common_name="Passthrough Root"))
    sub = create_authority(store, NewAuthority(common_name="Passthrough Sub", parent_arn=root))
    return Pki(store=store, root=root, sub=sub)


@pytest.fixture(scope="module")
def backend(pki: Pki) -> Iterator[LocalBackend]:
    b = LocalBackend(pki.store)
    yield b
    b.close()


API_EXTENSIONS = {
    "SubjectAlternativeNames": [
        {"DnsName": "api.example"},
        {"IpAddress": "192.0.2.7"},
        {"IpAddress": "2001:db8::7"},
        {"Rfc822Name": "ops@example.com"},
        {"UniformResourceIdentifier": "https://api.example/service"},
        {"DirectoryName": {"Organization": "Example", "CommonName": "dir"}},
        {"RegisteredId": "1.3.6.1.4.1.99999.1"},
    ],
    "KeyUsage": {"DigitalSignature": True, "KeyAgreement": True},
    "ExtendedKeyUsage": [
        {"ExtendedKeyUsageType": "EMAIL_PROTECTION"},
        {"ExtendedKeyUsageObjectIdentifier": "1.3.6.1.4.1.99999.2"},
    ],
    "CertificatePolicies": [
        {
            "CertPolicyId": "2.23.140.1.2.1",
            "PolicyQualifiers": [
                {"PolicyQualifierId": "CPS", "Qualifier": {"CpsUri": "https://example.com/cps"}}
            ],
        }
    ],
    "CustomExtensions": [
        {
            "ObjectIdentifier": "1.3.6.1.4.1.99999.3",
            "Value": base64.b64encode(b"\x05\x00").decode(),
            "Critical": False,
        }
    ],
}
API_SUBJECT = {"Country": "US", "Organization": "Example Corp", "CommonName": "api.example"}


def test_api_passthrough_on_an_end_entity_template(backend: LocalBackend, pki: Pki, tmp_path: Path) -> None:
    pem, chain = issue_pem(
        backend,
        pki.sub,
        make_csr("csr.example", ("csr.example",)),
        TemplateArn=template("EndEntityCertificate_APIPassthrough"),
        ApiPassthrough={"Subject": API_SUBJECT, "Extensions": API_EXTENSIONS},
    )
    cert = load(pem)
    assert cert.subject.rfc4514_string() == "CN=api.example,O=Example Corp,C=US"  # C, O, CN in that order
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["api.example"]  # the CSR's SANs are replaced
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["192.0.2.7", "2001:db8::7"]
    assert san.get_values_for_type(x509.RFC822Name) == ["ops@example.com"]
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["https://api.example/service"]
    assert san.get_values_for_type(x509.DirectoryName)[0].rfc4514_string() == "CN=dir,O=Example"
    assert san.get_values_for_type(x509.RegisteredID) == [x509.ObjectIdentifier("1.3.6.1.4.1.99999.1")]
    # The template defines key usage and EKU: those win over the API's.
    assert key_usages(cert) == END_ENTITY_KU
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [SERVER, CLIENT]
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == ["2.23.140.1.2.1"]
    assert policies[0].policy_qualifiers == ["https://example.com/cps"]
    custom = ext(cert, x509.ObjectIdentifier("1.3.6.1.4.1.99999.3"))
    assert custom is not None and custom.value.value == b"\x05\x00" and not custom.critical  # type: ignore[attr-defined]
    assert pkilint_findings(pem) <= {EC_KEY_ENCIPHERMENT}
    assert openssl_verify(tmp_path, pem, chain).returncode == 0


def test_api_passthrough_is_ignored_without_a_passthrough_template(backend: LocalBackend, pki: Pki) -> None:
    pem, _ = issue_pem(
        backend,
        pki.sub,
        make_csr("csr.example", ("csr.example",)),
        ApiPassthrough={"Subject": API_SUBJECT, "Extensions": API_EXTENSIONS},
    )
    cert = load(pem)
    assert cert.subject.rfc4514_string() == "CN=csr.example"
    assert ext(cert, ExtensionOID.CERTIFICATE_POLICIES) is None
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    ) == ["csr.example"]


@pytest.mark.parametrize(
    ("name", "critical"),
    [("BlankEndEntityCertificate", False), ("BlankEndEntityCertificate_CriticalBasicConstraints", True)],
)
def test_blank_templates_take_key_usage_from_passthrough(
    backend: LocalBackend, pki: Pki, tmp_path: Path, name: str, critical: bool
) -> None:
    pem, chain = issue_pem(
        backend,
        pki.sub,
        TemplateArn=template(f"{name}_APIPassthrough"),
        ApiPassthrough={
            "Extensions": {
                "KeyUsage": API_EXTENSIONS["KeyUsage"],
                "ExtendedKeyUsage": API_EXTENSIONS["ExtendedKeyUsage"],
            }
        },
    )
    cert = load(pem)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical is critical and not bc.value.ca
    assert key_usages(cert) == {"digital_signature", "key_agreement"}
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.EMAIL_PROTECTION,
        x509.ObjectIdentifier("1.3.6.1.4.1.99999.2"),
    ]
    assert pkilint_findings(pem) == set()
    assert openssl_verify(tmp_path, pem, chain).returncode == 0


def test_blank_subordinate_template(backend: LocalBackend, pki: Pki, tmp_path: Path) -> None:
    pem, chain = issue_pem(
        backend,
        pki.root,
        TemplateArn=template("BlankSubordinateCACertificate_PathLen0_APIPassthrough"),
        ApiPassthrough={"Extensions": {"KeyUsage": {"KeyCertSign": True, "CRLSign": True}}},
    )
    cert = load(pem)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    assert key_usages(cert) == {"key_cert_sign", "crl_sign"}
    assert pkilint_findings(pem) == set()


CSR_EXTRAS = [
    (
        x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier("2.23.140.1.2.2"), None)]),
        False,
    ),
    (x509.KeyUsage(True, False, False, False, False, False, False, False, False), True),
    (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.9"), b"\x05\x00"), False),
    (x509.BasicConstraints(ca=True, path_length=None), True),
]


def test_csr_passthrough_copies_what_the_template_does_not_define(backend: LocalBackend, pki: Pki) -> None:
    csr = make_csr("csrpass.example", ("csrpass.example",), extensions=CSR_EXTRAS)
    passed = load(
        issue_pem(backend, pki.sub, csr, TemplateArn=template("EndEntityCertificate_CSRPassthrough"))[0]
    )
    assert [
        p.policy_identifier.dotted_string
        for p in passed.extensions.get_extension_for_class(x509.CertificatePolicies).value
    ] == ["2.23.140.1.2.2"]
    assert ext(passed, x509.ObjectIdentifier("1.3.6.1.4.1.99999.9")) is not None
    assert key_usages(passed) == END_ENTITY_KU  # the template's, not the CSR's
    assert not passed.extensions.get_extension_for_class(x509.BasicConstraints).value.ca  # never from a CSR
    plain = load(issue_pem(backend, pki.sub, csr)[0])
    assert ext(plain, ExtensionOID.CERTIFICATE_POLICIES) is None
    assert ext(plain, x509.ObjectIdentifier("1.3.6.1.4.1.99999.9")) is None
    blank = load(
        issue_pem(backend, pki.sub, csr, TemplateArn=template("BlankEndEntityCertificate_CSRPassthrough"))[0]
    )
    assert key_usages(blank) == {"digital_signature"}  # the CSR's
    assert not blank.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_api_wins_over_csr_under_apicsr_passthrough(backend: LocalBackend, pki: Pki) -> None:
    csr = make_csr("both.example", ("both.example",), extensions=CSR_EXTRAS[:3])
    pem, _ = issue_pem(
        backend,
        pki.sub,
        csr,
        TemplateArn=template("BlankEndEntityCertificate_APICSRPassthrough"),
        ApiPassthrough={"Extensions": {"CertificatePolicies": API_EXTENSIONS["CertificatePolicies"]}},
    )
    cert = load(pem)
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == ["2.23.140.1.2.1"]  # the API's
    assert key_usages(cert) == {"digital_signature"}  # the CSR's, nothing else gave one
    assert ext(cert, x509.ObjectIdentifier("1.3.6.1.4.1.99999.9")) is not None
    assert cert.subject.rfc4514_string() == "CN=both.example"


def test_other_and_edi_party_names_reach_the_certificate(backend: LocalBackend, pki: Pki) -> None:
    pem, _ = issue_pem(
        backend,
        pki.sub,
        TemplateArn=template("EndEntityCertificate_APIPassthrough"),
        ApiPassthrough={
            "Extensions": {
                "SubjectAlternativeNames": [
                    {"DnsName": "edi.example"},
                    {"OtherName": {"TypeId": "1.3.6.1.4.1.311.20.2.3", "Value": "user@example.com"}},
                    {"EdiPartyName": {"PartyName": "Party", "NameAssigner": "Assigner"}},
                ]
            }
        },
    )
    text = openssl_text(pem)
    assert "DNS:edi.example" in text
    assert "othername: UPN::user@example.com" in text
    assert "EdiPartyName" in text
    der = base64.b64decode("".join(pem.strip().splitlines()[1:-1]))
    edi = b"\xa5\x15" + b"\xa0\x0a\x0c\x08Assigner" + b"\xa1\x07\x0c\x05Party"  # [5] {[0] UTF8, [1] UTF8}
    assert edi in der
    assert pkilint_findings(pem) <= {EC_KEY_ENCIPHERMENT}


@pytest.mark.parametrize(
    "passthrough",
    [
        {"Subject": {"CommonName": "x", "CustomAttributes": [{"ObjectIdentifier": "2.5.4.3", "Value": "y"}]}},
        {"Subject": {"Country": "USA"}},
        {"Extensions": {"SubjectAlternativeNames": [{"IpAddress": "300.1.1.1"}]}},
        {"Extensions": {"SubjectAlternativeNames": [{"DnsName": "a.example", "IpAddress": "192.0.2.1"}]}},
        {"Extensions": {"CustomExtensions": [{"ObjectIdentifier": "1.2.3", "Value": "not base64!"}]}},
        {"Extensions": {"ExtendedKeyUsage": [{"ExtendedKeyUsageType": "TELEPORTATION"}]}},
        {
            "Extensions": {
                "KeyUsage": {"DigitalSignature": True},
                "CustomExtensions": [{"ObjectIdentifier": "2.5.29.15", "Value": "AwIHgA=="}],
            }
        },
        {"Subject": "CN=not-a-structure"},
        {"Extensions": {"SubjectAlternativeNames": ["a.example"]}},
        ["not", "a", "structure"],
    ],
    ids=[
        "custom-and-standard",
        "country",
        "ip",
        "two-members",
        "base64",
        "eku-type",
        "duplicate",
        "subject-shape",
        "san-shape",
        "passthrough-shape",
    ],
)
def test_bad_passthrough_is_invalid_args(backend: LocalBackend, pki: Pki, passthrough: object) -> None:
    bad = request(
        pki.sub, TemplateArn=template("EndEntityCertificate_APIPassthrough"), ApiPassthrough=passthrough
    )
    assert error_code(backend.issue_certificate, bad) == "InvalidArgsException"


def test_custom_attributes_subject(backend: LocalBackend, pki: Pki) -> None:
    pem, _ = issue_pem(
        backend,
        pki.sub,
        TemplateArn=template("EndEntityCertificate_APIPassthrough"),
        ApiPassthrough={
            "Subject": {"CustomAttributes": [{"ObjectIdentifier": "2.5.4.3", "Value": "custom.example"}]}
        },
    )
    assert load(pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "custom.example"
