"""Shared fixtures: CSR factories and an in-process CLI runner."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from rich.console import Console

CA_ARN = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/11111111-2222-3333-4444-555555555555"
CORPUS = Path(__file__).parent / "corpus"
REPO = Path(__file__).resolve().parent.parent

_KEY = ec.generate_private_key(ec.SECP256R1())


def make_csr_pem(common_name: str = "svc.example", dns: tuple[str, ...] = ("svc.example",), key=None) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else [])
    )
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    return builder.sign(key or _KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def csr_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a fresh CSR under tmp_path/csr and return its path."""

    def make(name: str, **kwargs: object) -> Path:
        path = tmp_path / "csr" / f"{name}.csr"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make_csr_pem(**kwargs))  # type: ignore[arg-type]
        return path

    return make


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """Run ``main(argv)`` in-process with plain (non-terminal) consoles and capture both streams."""
    from pca_batch import cli as climod

    def run(*argv: str | Path) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        consoles = (
            Console(file=out, width=200, color_system=None, force_terminal=False),
            Console(file=err, width=200, color_system=None, force_terminal=False),
        )
        monkeypatch.setattr(climod, "_consoles", lambda: consoles)
        code = climod.main([str(a) for a in argv])
        return CliResult(code, out.getvalue(), err.getvalue())

    return run


def write_manifest(folder: Path, body: str, name: str = "manifest.yaml") -> Path:
    path = folder / name
    path.write_text(body)
    return path


@pytest.fixture
def foreseen(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The CAs apply asks the background opening to describe while the manifest is read."""
    from pca_batch.run import session as execute

    told: list[str] = []
    real = execute.start_opening

    def recording(*args: Any) -> Any:
        opening = real(*args)
        if opening is not None:
            foresee = opening.foresee

            def record(arn: str) -> None:
                told.append(arn)
                foresee(arn)

            monkeypatch.setattr(opening, "foresee", record)
        return opening

    monkeypatch.setattr(execute, "start_opening", recording)
    return told
