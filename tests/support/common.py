"""What many tests share: a CA ARN, CSRs, the paths of the checkout, the CLI result record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CA_ARN = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/11111111-2222-3333-4444-555555555555"
OTHER_ARN = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/99999999-2222-3333-4444-555555555555"
REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "corpus"

_KEY = ec.generate_private_key(ec.SECP256R1())


def make_csr_pem(common_name: str = "svc.example", dns: tuple[str, ...] = ("svc.example",), key: Any = None) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else [])
    )
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    return builder.sign(key or _KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


Cli = Callable[..., CliResult]  # the ``cli`` fixture: cli("validate", path) -> CliResult
CsrFile = Callable[..., Path]  # the ``csr_file`` fixture: csr_file("web", common_name=...) -> its path


def write_manifest(folder: Path, body: str, name: str = "manifest.yaml") -> Path:
    path = folder / name
    path.write_text(body)
    return path


def two_ca_head(label: str) -> str:
    """A local manifest's head with two CAs (CA_ARN, the default, and OTHER_ARN), up to ``certificates:``."""
    return f"""\
version: 1
backend:
  type: local
  store: store
  authorities:
    - {{arn: {CA_ARN}, common_name: {label} Test CA}}
    - {{arn: {OTHER_ARN}, common_name: {label} Other CA}}
defaults:
  CertificateAuthorityArn: {CA_ARN}
  SigningAlgorithm: SHA256WITHECDSA
  Validity: {{Value: 30, Type: DAYS}}
certificates:
"""
