"""Certificates from the local CA are ones people can trust: they verify with openssl
against their chain, pass pkilint's RFC 5280 lint, and carry exactly the extensions of
their template (the AWS Private CA user guide's template list)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from pca_batch.backends.local.admin import authority_certificate, create_authority
from pca_batch.backends.local.backend import LocalBackend
from pca_batch.backends.local.templates import TEMPLATES
from pca_batch.model import NewAuthority
from tests.support.local_ca import (
    EC_KEY_ENCIPHERMENT,
    ext,
    issue_pem,
    key_usages,
    load,
    make_csr,
    openssl_text,
    openssl_verify,
    pkilint_findings,
    rsa_key,
    split_pems,
    template,
)


@dataclass(frozen=True)
class Pki:
    store: Path
    root: str
    sub: str
    subsub: str
    rsa: str


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    store = tmp_path_factory.mktemp("local-certs") / "store"
    root = create_authority(store, NewAuthority(common_name="Trust Root"))
    sub = create_authority(store, NewAuthority(common_name="Trust Issuing", parent_arn=root))
    return Pki(
        store=store,
        root=root,
        sub=sub,
        subsub=create_authority(store, NewAuthority(common_name="Trust Leaf Issuing", parent_arn=sub)),
        rsa=create_authority(store, NewAuthority(common_name="Trust RSA Root", key_algorithm="RSA_2048")),
    )


@pytest.fixture(scope="module")
def backend(pki: Pki) -> Iterator[LocalBackend]:
    b = LocalBackend(pki.store)
    yield b
    b.close()


END_ENTITY_KU = {"digital_signature", "key_encipherment"}
CA_KU = {"digital_signature", "key_cert_sign", "crl_sign"}
SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
# template: (CA, path length, BC critical, key usage, EKU, EKU critical) as templates.md gives them
EXPECTED = {
    "EndEntityCertificate": (False, None, False, END_ENTITY_KU, [SERVER, CLIENT], False),
    "EndEntityServerAuthCertificate": (False, None, False, END_ENTITY_KU, [SERVER], False),
    "EndEntityClientAuthCertificate": (False, None, False, END_ENTITY_KU, [CLIENT], False),
    "CodeSigningCertificate": (
        False,
        None,
        False,
        {"digital_signature"},
        [ExtendedKeyUsageOID.CODE_SIGNING],
        True,
    ),
    "OCSPSigningCertificate": (
        False,
        None,
        False,
        {"digital_signature"},
        [ExtendedKeyUsageOID.OCSP_SIGNING],
        True,
    ),
    **{f"SubordinateCACertificate_PathLen{n}": (True, n, True, CA_KU, None, False) for n in range(4)},
}


def check_template_extensions(
    cert: x509.Certificate, name: str, csr: bytes, issuer: x509.Certificate
) -> None:
    ca, path_length, bc_critical, ku, eku, eku_critical = EXPECTED[name]
    bc = ext(cert, ExtensionOID.BASIC_CONSTRAINTS)
    assert bc is not None and bc.critical is bc_critical
    assert (bc.value.ca, bc.value.path_length) == (ca, path_length)  # type: ignore[attr-defined]
    assert key_usages(cert) == ku
    assert ext(cert, ExtensionOID.KEY_USAGE).critical  # type: ignore[union-attr]
    found_eku = ext(cert, ExtensionOID.EXTENDED_KEY_USAGE)
    if eku is None:
        assert found_eku is None
    else:
        assert found_eku is not None and list(found_eku.value) == eku and found_eku.critical is eku_critical  # type: ignore[call-overload]
    request_csr = x509.load_pem_x509_csr(csr)
    ski = ext(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    assert ski is not None and ski.value == x509.SubjectKeyIdentifier.from_public_key(
        request_csr.public_key()
    )
    aki = ext(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki is not None and aki.value.key_identifier == issuer_ski.digest  # type: ignore[attr-defined]
    assert cert.subject == request_csr.subject
    assert cert.public_key() == request_csr.public_key()
    csr_sans = request_csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ext(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value == csr_sans  # type: ignore[union-attr]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_template_extensions_openssl_and_pkilint_ec(
    backend: LocalBackend, pki: Pki, tmp_path: Path, name: str
) -> None:
    csr = make_csr("svc.example", ("svc.example", "www.svc.example"))
    pem, chain = issue_pem(backend, pki.root, csr, TemplateArn=template(name))
    cert = load(pem)
    check_template_extensions(cert, name, csr, load(chain))
    verified = openssl_verify(tmp_path, pem, chain)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    findings = pkilint_findings(pem)
    # AWS's EndEntity templates set keyEncipherment whatever the key: the one accepted finding.
    allowed = {EC_KEY_ENCIPHERMENT} if "key_encipherment" in EXPECTED[name][3] else set()
    assert findings == allowed


@pytest.mark.parametrize(
    "name", ["EndEntityCertificate", "EndEntityServerAuthCertificate", "CodeSigningCertificate"]
)
def test_rsa_certificates_are_pkilint_clean(
    backend: LocalBackend, pki: Pki, tmp_path: Path, name: str
) -> None:
    csr = make_csr(key=rsa_key())
    pem, chain = issue_pem(
        backend, pki.rsa, csr, TemplateArn=template(name), SigningAlgorithm="SHA256WITHRSA_PSS"
    )
    check_template_extensions(load(pem), name, csr, load(chain))
    assert pkilint_findings(pem) == set()
    verified = openssl_verify(tmp_path, pem, chain)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_openssl_text_shows_the_end_entity_template(backend: LocalBackend, pki: Pki) -> None:
    pem, _ = issue_pem(backend, pki.sub, make_csr("app.example", ("app.example",)))
    text = openssl_text(pem)
    assert "CA:FALSE" in text
    assert "X509v3 Key Usage: critical" in text and "Digital Signature, Key Encipherment" in text
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text
    assert "DNS:app.example" in text
    assert "Subject: CN = app.example" in text and "Issuer: CN = Trust Issuing" in text
    assert "X509v3 Subject Key Identifier" in text and "X509v3 Authority Key Identifier" in text


def test_chain_goes_up_to_the_root_and_verifies_at_depth(
    backend: LocalBackend, pki: Pki, tmp_path: Path
) -> None:
    pem, chain = issue_pem(backend, pki.subsub)
    parts = [load(p) for p in split_pems(chain)]
    assert [c.subject.rfc4514_string() for c in parts] == [
        "CN=Trust Leaf Issuing",
        "CN=Trust Issuing",
        "CN=Trust Root",
    ]
    assert parts[-1].issuer == parts[-1].subject  # the root, included
    assert load(pem).issuer == parts[0].subject  # the leaf, excluded
    verified = openssl_verify(tmp_path, pem, chain, "-show_chain")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "depth=3" in verified.stdout
    (tmp_path / "root-only.pem").write_text(split_pems(chain)[-1])
    broken = openssl_verify(tmp_path, pem, split_pems(chain)[-1])  # intermediates missing
    assert broken.returncode != 0


def test_ca_certificates_are_well_formed(backend: LocalBackend, pki: Pki, tmp_path: Path) -> None:
    root = load(authority_certificate(pki.store, pki.root))
    assert root.issuer == root.subject
    bc = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length is None
    assert key_usages(root) == CA_KU
    assert ext(root, ExtensionOID.AUTHORITY_KEY_IDENTIFIER) is None  # roots: none
    sub = load(authority_certificate(pki.store, pki.sub))
    sub_bc = sub.extensions.get_extension_for_class(x509.BasicConstraints)
    assert sub_bc.critical and sub_bc.value.ca and sub_bc.value.path_length == 3
    aki = sub.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert (
        aki.key_identifier == root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    )
    assert sub.not_valid_after_utc <= root.not_valid_after_utc
    for ca in (pki.root, pki.sub, pki.subsub, pki.rsa):
        assert pkilint_findings(authority_certificate(pki.store, ca)) == set(), ca
    sub_pem = authority_certificate(pki.store, pki.sub)
    verified = openssl_verify(tmp_path, sub_pem, authority_certificate(pki.store, pki.root))
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_empty_subject_makes_the_san_critical(backend: LocalBackend, pki: Pki, tmp_path: Path) -> None:
    pem, chain = issue_pem(backend, pki.sub, make_csr(None, ("nosubject.example",)))
    cert = load(pem)
    assert len(cert.subject) == 0
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical and san.value.get_values_for_type(x509.DNSName) == ["nosubject.example"]
    assert pkilint_findings(pem) <= {EC_KEY_ENCIPHERMENT}
    assert openssl_verify(tmp_path, pem, chain).returncode == 0


def test_every_documented_template_name_is_known() -> None:
    bases = ["EndEntityCertificate", "EndEntityServerAuthCertificate", "EndEntityClientAuthCertificate"]
    bases += ["CodeSigningCertificate", "OCSPSigningCertificate"] + [
        f"SubordinateCACertificate_PathLen{n}" for n in range(4)
    ]
    for base in bases:
        for suffix in ("", "_CSRPassthrough", "_APIPassthrough", "_APICSRPassthrough"):
            assert base + suffix in TEMPLATES
    for suffix in ("_CSRPassthrough", "_APIPassthrough", "_APICSRPassthrough"):
        assert f"BlankEndEntityCertificate{suffix}" in TEMPLATES
        assert "BlankEndEntityCertificate" not in TEMPLATES  # passthrough only
    assert {
        "RootCACertificate",
        "RootCACertificate_APIPassthrough",
        "BlankRootCACertificate_APIPassthrough",
    } <= set(TEMPLATES)


def test_root_template_reissues_the_ca_certificate(backend: LocalBackend, pki: Pki, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    from pca_batch.backends.local.keys import load_key
    from pca_batch.backends.local.store import Store

    store = Store(pki.store)
    try:
        row = store.authority(pki.rsa)
        assert row is not None
        key = load_key(pki.store, row.key_file, pki.rsa)
    finally:
        store.close()
    csr = make_csr("Trust RSA Root", (), key=key)
    pem, chain = issue_pem(
        backend, pki.rsa, csr, TemplateArn=template("RootCACertificate"), SigningAlgorithm="SHA256WITHRSA"
    )
    cert = load(pem)
    assert cert.issuer == cert.subject and ext(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER) is None
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == (
        load(chain)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert pkilint_findings(pem) == set()
