"""Issue 2's speed goals for `pca-batch validate`.

1. 10,000 entries with distinct CSRs: `pca-batch validate` (a real process, as
   a user runs it) against PyYAML's pure-Python `yaml.safe_load` of the same
   file, in the same run. Goal: validate <= 0.5x safe_load.
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

from bench._gen import WORK, Goals, installed_env, machine_speed, write_manifest


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=10_000, help="the manifest timed against safe_load")
    parser.add_argument("--rss-entries", type=int, default=100_000, help="the manifest whose peak RSS is measured")
    args = parser.parse_args(argv)
    print(machine_speed(), flush=True)
    print("generating manifests (cached in bench/.work) ...", flush=True)
    small = write_manifest(WORK / folder_name(args.entries), args.entries)
    big = write_manifest(WORK / folder_name(args.rss_entries), args.rss_entries)

    env = installed_env()
    goals = Goals()
    validate_times, load_times = [], []
    for _ in range(3):
        validate_times.append(run_validate(small, env)[0])
        load_times.append(time_safe_load(small))
    v, s = statistics.median(validate_times), statistics.median(load_times)
    print(f"{args.entries:,} entries: pca-batch validate {v:.2f} s (median of 3, whole process)")
    print(f"{args.entries:,} entries: yaml.safe_load (pure Python) {s:.2f} s (median of 3, parse only)")
    ratio = v / s
    goals.check(f"ratio validate / safe_load = {ratio:.2f}  (goal <= 0.50)", ratio <= 0.5)

    elapsed, rss = run_validate(big, env)
    goals.check(
        f"{args.rss_entries:,} entries: pca-batch validate {elapsed:.2f} s, peak RSS {rss / 2**20:.0f} MiB"
        "  (goal < 1024 MiB)",
        rss < 2**30,
    )
    return goals.exit_status()


if __name__ == "__main__":
    raise SystemExit(main())
