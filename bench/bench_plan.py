"""Issue 6's speed goal: planning a re-run of 10,000 unchanged entries.

Issues 10,000 certificates once from a local CA (cached in bench/.work), then
times, in the same run, `pca-batch apply --plan` (every entry `unchanged`: each
certificate on disk is read and checked) against `pca-batch validate` of the
same manifest. Goal: plan <= 2x validate.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

from bench._gen import WORK, installed_env, local_backend, machine_speed, write_manifest

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


def main() -> None:
    print(machine_speed(), flush=True)
    ENV.update(installed_env())
    folder = WORK / "plan-10k"
    manifest = write_manifest(folder, COUNT, backend=BACKEND)
    report = folder / "plan.json"
    if not (folder / "out" / f"svc-{COUNT - 1:06d}.pem").exists():
        print(f"issuing {COUNT} certificates once (local CA) ...", flush=True)
        t = run("apply", str(manifest), "--concurrency", "8")
        print(f"  done in {t:.1f} s")
    plans, validates = [], []
    for _ in range(3):
        validates.append(run("validate", str(manifest)))
        plans.append(run("apply", str(manifest), "--plan", "--report", str(report)))
    summary = json.loads(report.read_text())["summary"]
    if summary["unchanged"] != COUNT:
        raise SystemExit(f"expected {COUNT} unchanged entries, the plan says {summary}")
    p, v = statistics.median(plans), statistics.median(validates)
    print(f"{COUNT} entries, all unchanged: pca-batch apply --plan {p:.2f} s (median of 3, whole process)")
    print(f"{COUNT} entries: pca-batch validate {v:.2f} s (median of 3, whole process)")
    ratio = p / v
    print(f"ratio plan / validate = {ratio:.2f}  (goal <= 2.00)  {'PASS' if ratio <= 2 else 'FAIL'}")


if __name__ == "__main__":
    main()
