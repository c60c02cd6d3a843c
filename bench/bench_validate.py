"""Issue 2's and issue 11's speed goals for `pca-batch validate`.

1. 10,000 entries with distinct CSRs, in two shapes: every CSR a `file://`
   reference, and the mix users write most (issue 11): half the entries carry
   their CSR inline as a PEM block, half as `file://`. For each, `pca-batch
   validate` (a real process, as a user runs it) against PyYAML's pure-Python
   `yaml.safe_load` of the same file, median of 3, interleaved.
   Goal: validate <= 0.5x safe_load.
2. 100,000 entries: peak RSS of the validate process. Goal: < 1 GB.

Prints the figures and a verdict per goal; exits 1 if a goal is missed.

    python -m bench.bench_validate [--entries 10000] [--rss-entries 100000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bench._gen import CA_ARN, WORK, Goals, installed_env, machine_speed, make_csrs, write_manifest


def run_validate(manifest: Path, env: dict[str, str]) -> tuple[float, int]:
    """Wall time and peak RSS (bytes) of one `pca-batch validate` process."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pca_batch", "validate", str(manifest)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"validate failed:\n{out}{err[-2000:]}")
    return elapsed, usage.ru_maxrss * 1024


def time_safe_load(manifest: Path) -> float:
    text = manifest.read_text()
    start = time.perf_counter()
    yaml.load(text, Loader=yaml.SafeLoader)  # the pure-Python loader
    return time.perf_counter() - start


def folder_name(entries: int) -> str:
    """validate-10k for 10,000 entries (the cache of earlier runs), validate-50 for 50."""
    return f"validate-{entries // 1000}k" if entries % 1000 == 0 else f"validate-{entries}"


def write_mixed_manifest(folder: Path, count: int) -> Path:
    """``count`` entries with distinct keys and names: the even ones carry their CSR inline as a
    PEM block, the odd ones name their file -- the shape users write most."""
    paths = make_csrs(folder / "csr", count)
    lines = [
        "version: 1",
        "defaults:",
        f"  CertificateAuthorityArn: {CA_ARN}",
        "  SigningAlgorithm: SHA256WITHECDSA",
        "  Validity: {Value: 90, Type: DAYS}",
        "certificates:",
    ]
    for i, path in enumerate(paths):
        lines.append(f"  - name: svc-{i:06d}")
        if i % 2 == 0:
            lines.append("    Csr: |")
            lines += ["      " + line for line in path.read_text().splitlines()]
        else:
            lines.append(f"    Csr: file://csr/{path.name}")
        lines.append(f"    output: {{certificate: out/svc-{i:06d}.pem, chain: out/svc-{i:06d}.chain.pem}}")
    manifest = folder / "manifest-mixed.yaml"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def compare(name: str, manifest: Path, entries: int, env: dict[str, str], goals: Goals) -> None:
    """validate against safe_load on one manifest: whole processes, median of 3, interleaved."""
    validate_times, load_times = [], []
    for _ in range(3):
        validate_times.append(run_validate(manifest, env)[0])
        load_times.append(time_safe_load(manifest))
    v, s = statistics.median(validate_times), statistics.median(load_times)
    print(f"{entries:,} entries, {name}: pca-batch validate {v:.2f} s (median of 3, whole process)")
    print(f"{entries:,} entries, {name}: yaml.safe_load (pure Python) {s:.2f} s (median of 3, parse only)")
    ratio = v / s
    goals.check(f"{name}: ratio validate / safe_load = {ratio:.2f}  (goal <= 0.50)", ratio <= 0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=10_000, help="the manifest timed against safe_load")
    parser.add_argument("--rss-entries", type=int, default=100_000, help="the manifest whose peak RSS is measured")
    args = parser.parse_args(argv)
    print(machine_speed(), flush=True)
    print("generating manifests (cached in bench/.work) ...", flush=True)
    small = write_manifest(WORK / folder_name(args.entries), args.entries)
    mixed = write_mixed_manifest(WORK / folder_name(args.entries), args.entries)
    big = write_manifest(WORK / folder_name(args.rss_entries), args.rss_entries)

    env = installed_env()
    goals = Goals()
    compare("all file://", small, args.entries, env, goals)
    compare("half inline PEM, half file://", mixed, args.entries, env, goals)

    elapsed, rss = run_validate(big, env)
    goals.check(
        f"{args.rss_entries:,} entries: pca-batch validate {elapsed:.2f} s, peak RSS {rss / 2**20:.0f} MiB"
        "  (goal < 1024 MiB)",
        rss < 2**30,
    )
    return goals.exit_status()


if __name__ == "__main__":
    raise SystemExit(main())
