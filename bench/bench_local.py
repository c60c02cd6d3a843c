"""Speed of the embedded local CA (issue 3): `pca-batch apply` against a bare signing loop.

Issues N certificates (2,000 by default) end to end through ``pca-batch apply`` on a
manifest whose EC P-256 local CA is declared under ``backend.authorities`` (a fresh
store each run, so apply also creates the CA), and in the same run times a bare loop
that only parses each CSR and signs a certificate with ``cryptography``. Target: apply's
certificates per second at least half the bare loop's. Prints both rates and the ratio;
exits 1 when the target is missed.

The bare loop signs the same shape of certificate apply does (the EndEntityCertificate
template's extensions); the rate of a loop that adds no extension is printed beside it.
So is the rate of the LocalBackend alone (IssueCertificate + GetCertificate from a
thread pool, no manifest, journal or output files), to tell the backend's share of
apply's time from the runner's.

    python -m bench.bench_local [--entries 2000] [--concurrency N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bench._gen import CA_ARN, WORK, Goals, local_backend, make_csrs, write_manifest
from pca_batch.backends.local.backend import LocalBackend, ensure_authorities
from pca_batch.cli import main
from pca_batch.model import AuthoritySpec

REPO = Path(__file__).resolve().parent.parent

TARGET = 0.5
BACKEND = local_backend("Bench Local CA")


def bare_loop(csrs: list[bytes], *, extensions: bool) -> float:
    """Certificates per second of: parse the CSR, sign a certificate (no store, no files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bare Loop CA")])
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())
    usage = x509.KeyUsage(True, False, True, False, False, False, False, False, False)
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    started = time.perf_counter()
    for data in csrs:
        csr = x509.load_pem_x509_csr(data)
        now = datetime.now(UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(issuer)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=60))
            .not_valid_after(now + timedelta(days=90))
        )
        if extensions:
            builder = (
                builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False)
                .add_extension(aki, critical=False)
                .add_extension(usage, critical=True)
                .add_extension(eku, critical=False)
                .add_extension(
                    csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, False
                )
            )
        builder.sign(key, hashes.SHA256())
    return len(csrs) / (time.perf_counter() - started)


def backend_only(folder: Path, csrs: list[bytes], workers: int) -> float:
    """Certificates per second of LocalBackend alone: issue and get, ``workers`` threads."""
    store = folder / ".backend-only"
    shutil.rmtree(store, ignore_errors=True)
    ensure_authorities(store, [AuthoritySpec(arn=CA_ARN, common_name="Bench Local CA")])
    backend = LocalBackend(store)

    def one(i: int) -> None:
        request = {
            "CertificateAuthorityArn": CA_ARN,
            "Csr": csrs[i],
            "SigningAlgorithm": "SHA256WITHECDSA",
            "Validity": {"Value": 90, "Type": "DAYS"},
            "IdempotencyToken": f"bench-{i}",
        }
        backend.get_certificate(CA_ARN, backend.issue_certificate(request))

    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, range(len(csrs))))
        return len(csrs) / (time.perf_counter() - started)
    finally:
        backend.close()
        shutil.rmtree(store, ignore_errors=True)


def apply_run(folder: Path, manifest: Path, concurrency: int | None) -> tuple[float, int, int]:
    """(certificates per second, exit status, certificates written) of one fresh apply."""
    for stale in (folder / ".pca-batch", folder / "out"):
        shutil.rmtree(stale, ignore_errors=True)
    argv = ["apply", str(manifest)] + (["--concurrency", str(concurrency)] if concurrency else [])
    sink = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        status = main(argv)
    seconds = time.perf_counter() - started
    written = len(list((folder / "out").glob("*.chain.pem"))) if (folder / "out").exists() else 0
    if status != 0:
        sys.stderr.write(sink.getvalue()[-2000:])
    return written / seconds, status, written


def main_bench(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument(
        "--concurrency", type=int, default=None, help="apply's --concurrency (default: its own)"
    )
    args = parser.parse_args(argv)

    folder = WORK / f"local-{args.entries}"
    manifest = write_manifest(folder, args.entries, backend=BACKEND)
    csrs = [path.read_bytes() for path in make_csrs(folder / "csr", args.entries)]

    # The best of two runs: a noisy machine must not flatter the ratio.
    bare_plain = max(bare_loop(csrs, extensions=False) for _ in range(2))
    bare = max(bare_loop(csrs, extensions=True) for _ in range(2))
    alone = backend_only(folder, csrs, args.concurrency or 16)
    rate, status, written = apply_run(folder, manifest, args.concurrency)
    ratio = rate / bare
    print(f"entries                 {args.entries}")
    print(f"bare loop               {bare:8.0f} certificates/s  (parse CSR + sign, EndEntity extensions)")
    print(f"bare loop, no extension {bare_plain:8.0f} certificates/s  (for reference)")
    threads = args.concurrency or 16
    print(f"LocalBackend alone      {alone:8.0f} certificates/s  (issue + get, {threads} threads)")
    print(f"pca-batch apply         {rate:8.0f} certificates/s  (exit {status}, {written} written)")
    print(f"ratio apply/bare plain  {rate / bare_plain:8.2f}")
    print(f"ratio backend/bare      {alone / bare:8.2f}   (the backend's own share)")
    goals = Goals()
    goals.check(f"apply issued every entry: exit {status}, {written}/{args.entries} written",
                status == 0 and written == args.entries)
    goals.check(f"ratio apply/bare        {ratio:8.2f}   (target >= {TARGET})", ratio >= TARGET)
    return goals.exit_status()


if __name__ == "__main__":
    raise SystemExit(main_bench())
