"""Issue 6's speed goal: planning a re-run of 10,000 unchanged entries.

Issues 10,000 certificates once from a local CA (cached in bench/.work), then
times, in the same run, `pca-batch apply --plan` (every entry `unchanged`: each
certificate on disk is read and checked) against `pca-batch validate` of the
same manifest. Goal: plan <= 2x validate. Prints the figures and the verdict; exits 1
if the goal is missed.

    python -m bench.bench_plan [--entries 10000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from bench._gen import WORK, Goals, installed_env, local_backend, machine_speed, write_manifest

COUNT = 10_000
BACKEND = local_backend("Bench Root CA")


ENV: dict[str, str] = {}


def run(*args: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pca_batch", *args], capture_output=True, text=True, env=ENV or None)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"pca-batch {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=COUNT)
    count = parser.parse_args(argv).entries
    print(machine_speed(), flush=True)
    ENV.update(installed_env())
    folder = WORK / (f"plan-{count // 1000}k" if count % 1000 == 0 else f"plan-{count}")
    manifest = write_manifest(folder, count, backend=BACKEND)
    report = folder / "plan.json"
    if not (folder / "out" / f"svc-{count - 1:06d}.pem").exists():
        print(f"issuing {count} certificates once (local CA) ...", flush=True)
        t = run("apply", str(manifest), "--concurrency", "8")
        print(f"  done in {t:.1f} s")
    plans, validates = [], []
    for _ in range(3):
        validates.append(run("validate", str(manifest)))
        plans.append(run("apply", str(manifest), "--plan", "--report", str(report)))
    summary = json.loads(report.read_text())["summary"]
    if summary["unchanged"] != count:
        raise SystemExit(f"expected {count} unchanged entries, the plan says {summary}")
    p, v = statistics.median(plans), statistics.median(validates)
    print(f"{count} entries, all unchanged: pca-batch apply --plan {p:.2f} s (median of 3, whole process)")
    print(f"{count} entries: pca-batch validate {v:.2f} s (median of 3, whole process)")
    ratio = p / v
    goals = Goals()
    goals.check(f"ratio plan / validate = {ratio:.2f}  (goal <= 2.00)", ratio <= 2)
    return goals.exit_status()


if __name__ == "__main__":
    raise SystemExit(main())
