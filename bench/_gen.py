"""Shared by the benches: generate big manifests with distinct CSRs (cached under bench/.work), report goals."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

WORK = Path(__file__).resolve().parent / ".work"
REPO = Path(__file__).resolve().parent.parent


class Goals:
    """Print each goal's line with its verdict and remember the misses, so that a bench's exit
    status says what it printed: ``raise SystemExit(goals.exit_status())`` exits 1 after any miss."""

    def __init__(self) -> None:
        self.missed: list[str] = []

    def check(self, line: str, met: bool) -> bool:
        print(f"{line}  {'PASS' if met else 'MISS'}", flush=True)
        if not met:
            self.missed.append(line)
        return met

    def exit_status(self) -> int:
        if self.missed:
            print(f"{len(self.missed)} goal{'s' if len(self.missed) != 1 else ''} missed", flush=True)
        return 1 if self.missed else 0


def machine_speed() -> str:
    """How fast this (shared, noisy) machine runs right now: microseconds per P-256 CSR
    signature check, best of three rounds. 55-60 on this project's 2-CPU host when it is
    quiet; the same figure 50% higher means every CPU-bound timing of this run is slower too."""
    import time

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "calibration")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(300):
            x509.load_pem_x509_csr(csr).is_signature_valid  # noqa: B018
        best = min(best, (time.perf_counter() - start) / 300)
    return (f"machine speed now: {best * 1e6:.0f} us per P-256 CSR signature check "
            "(55-60 on this host when it is quiet; higher: busier)")


def installed_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment to time pca-batch in as an installed tool runs: with its bytecode
    compiled, as ``pip install`` does. Where PYTHONDONTWRITEBYTECODE is set (as on this
    machine), a checkout would otherwise compile its fifty modules at every start (some
    80 ms); the bytecode goes to bench/.work/pycache, not into the checkout."""
    env = dict(os.environ if base is None else base)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(WORK / "pycache")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "pca_batch")], env=env, check=True)
    return env
CA_ARN = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/0b0b0b0b-1111-4222-8333-444444444444"


def local_backend(common_name: str) -> str:
    """The `backend:` block of a manifest whose EC P-256 local CA apply creates on first use."""
    return f"""backend:
  type: local
  store: .pca-batch
  authorities:
    - arn: {CA_ARN}
      common_name: {common_name}
      key_algorithm: EC_prime256v1
"""


def make_csrs(folder: Path, count: int) -> list[Path]:
    """``count`` distinct EC P-256 CSRs (one key each), written once and reused."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"svc-{i:06d}.csr" for i in range(count)]
    for i, path in enumerate(paths):
        if path.exists():
            continue
        path.write_bytes(service_csr_pem(i, ec.generate_private_key(ec.SECP256R1())))
    return paths


def service_csr_pem(i: int, key: Any) -> bytes:
    """The CSR of the benches' ``i``-th service: CN and one DNS SAN ``svc-NNNNNN.internal.example``."""
    name = f"svc-{i:06d}.internal.example"
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def write_manifest(folder: Path, count: int, *, backend: str = "", outputs: bool = True) -> Path:
    """A manifest of ``count`` entries, each with its own CSR and outputs."""
    make_csrs(folder / "csr", count)
    lines = ["version: 1"]
    if backend:
        lines.append(backend.rstrip("\n"))
    lines += [
        "defaults:",
        f"  CertificateAuthorityArn: {CA_ARN}",
        "  SigningAlgorithm: SHA256WITHECDSA",
        "  Validity: {Value: 90, Type: DAYS}",
        "certificates:",
    ]
    for i in range(count):
        lines.append(f"  - name: svc-{i:06d}")
        lines.append(f"    Csr: file://csr/svc-{i:06d}.csr")
        if outputs:
            lines.append(f"    output: {{certificate: out/svc-{i:06d}.pem, chain: out/svc-{i:06d}.chain.pem}}")
    path = folder / "manifest.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path
