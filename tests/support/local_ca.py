"""Helpers for the local CA tests: CSRs, requests, a settable clock, openssl and pkilint."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtensionOID, NameOID

from pca_batch.backends.base import Backend
from pca_batch.errors import BackendError

EC_KEY = ec.generate_private_key(ec.SECP256R1())
PEM_END = "-----END CERTIFICATE-----\n"


@cache
def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def name(common_name: str | None) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else [])


def make_csr(
    common_name: str | None = "svc.example",
    dns: Sequence[str] = ("svc.example",),
    *,
    key: PrivateKeyTypes | None = None,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(name(common_name))
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False
        )
    for value, critical in extensions:
        builder = builder.add_extension(value, critical=critical)
    return builder.sign(key or EC_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)  # type: ignore[arg-type]


def request(ca_arn: str, csr: bytes | None = None, **members: Any) -> dict[str, Any]:
    """An IssueCertificate input with EC defaults; keyword members override or add."""
    out: dict[str, Any] = {
        "CertificateAuthorityArn": ca_arn,
        "Csr": csr if csr is not None else make_csr(),
        "SigningAlgorithm": "SHA256WITHECDSA",
        "Validity": {"Value": 30, "Type": "DAYS"},
    }
    out.update(members)
    return out


class SettableClock:
    """The injectable clock of LocalBackend: fixed until a test moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC).replace(microsecond=0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, **delta: float) -> None:
        with self._lock:
            self.now += timedelta(**delta)


def load(pem: str | bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)


def split_pems(bundle: str) -> list[str]:
    return [part + PEM_END for part in bundle.split(PEM_END) if part.strip()]


def openssl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, text=True, timeout=30)


def openssl_verify(tmp: Path, leaf_pem: str, chain_pem: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """``openssl verify`` with the chain's last certificate as the only trust anchor."""
    chain = split_pems(chain_pem)
    (tmp / "root.pem").write_text(chain[-1])
    (tmp / "untrusted.pem").write_text("".join(chain[:-1]) or chain[-1])
    (tmp / "leaf.pem").write_text(leaf_pem)
    return openssl(
        "verify",
        "-x509_strict",
        *extra,
        "-CAfile",
        str(tmp / "root.pem"),
        "-untrusted",
        str(tmp / "untrusted.pem"),
        str(tmp / "leaf.pem"),
    )


def openssl_text(pem: str) -> str:
    result = openssl("x509", "-noout", "-text", stdin=pem)
    assert result.returncode == 0, result.stderr
    return result.stdout


@cache
def _pkilint_validator() -> Any:
    from pkilint.pkix import certificate, extension
    from pkilint.pkix import name as pkix_name

    return certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(
            pkix_name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS
        ),
        [
            certificate.create_issuer_validator_container([]),
            certificate.create_validity_validator_container(),
            certificate.create_subject_validator_container([]),
            certificate.create_extensions_validator_container([]),
            certificate.create_spki_validator_container([]),
        ],
    )


def pkilint_findings(pem: str) -> set[str]:
    """The codes of pkilint's RFC 5280 (lint_pkix_cert) findings of severity ERROR or FATAL."""
    from pkilint import loader
    from pkilint.validation import ValidationFindingSeverity

    document = loader.RFC5280CertificateDocumentLoader().load_pem_document(pem, "certificate")
    results = _pkilint_validator().validate(document.root)
    return {
        description.finding.code
        for result in results
        for description in result.finding_descriptions
        if description.finding.severity <= ValidationFindingSeverity.ERROR
    }


EC_KEY_ENCIPHERMENT = "pkix.key_usage_value_prohibited_for_ec"  # AWS's own EndEntity templates cause it


KEY_USAGE_NAMES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


def template(name: str) -> str:
    return f"arn:aws:acm-pca:::template/{name}/V1"


def issue_pem(backend: Backend, ca: str, csr: bytes | None = None, **members: object) -> tuple[str, str]:
    bundle = backend.get_certificate(ca, backend.issue_certificate(request(ca, csr, **members)))
    return bundle.certificate, bundle.chain


def ext(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> x509.Extension[x509.ExtensionType] | None:
    try:
        return cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None


def key_usages(cert: x509.Certificate) -> set[str]:
    found = ext(cert, ExtensionOID.KEY_USAGE)
    if found is None:
        return set()
    ku = found.value
    assert isinstance(ku, x509.KeyUsage)
    out = {n for n in KEY_USAGE_NAMES if getattr(ku, n)}
    if ku.key_agreement:
        out |= {n for n in ("encipher_only", "decipher_only") if getattr(ku, n)}
    return out


def error_code(call: Callable[..., object], *args: object) -> str:
    """The AWS error code that ``call(*args)`` raises."""
    with pytest.raises(BackendError) as info:
        call(*args)
    return info.value.code
