"""Issue 13's goal: reading the state costs what the manifest holds, not its history.

2,000 entries, issued once from a local CA (cached in bench/.work). Two states for each kind
(file, and s3 on a moto server of its own): *fresh*, one record per entry, as the first run
left it; and *history*, the same with 100 earlier renewals of every entry before it (202,000
records). An ``apply`` of the unchanged manifest on the history state compacts it (its history
moves to the archive); then ``apply --plan`` is timed on both states, as whole processes,
median of 3, with each process's peak resident memory. Goals, for each kind: plan on the
compacted history state within 1.2x the time and 1.5x the memory of the fresh one.

    python -m bench.bench_state [--entries 2000] [--renewals 100]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench._gen import WORK, Goals, installed_env, local_backend, machine_speed, write_manifest

COUNT = 2_000
RENEWALS = 100
BACKEND = local_backend("Bench State CA")
HEADER = b'{"format": "pca-batch-state", "version": 1, "covers": []}\n'


@dataclass(frozen=True)
class Figure:
    seconds: float
    rss_mb: float


def timed(env: dict[str, str], *args: str | Path) -> Figure:
    """As :func:`run`, with the child's own peak memory (wait4 on it, not on every child)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "pca_batch", *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"pca-batch {' '.join(map(str, args))} exited {proc.returncode}:\n{err.decode()[-3000:]}")
    return Figure(elapsed, usage.ru_maxrss / 1024)


def median(figures: Sequence[Figure]) -> Figure:
    return Figure(statistics.median(f.seconds for f in figures), statistics.median(f.rss_mb for f in figures))


def history_lines(journal: bytes, renewals: int) -> bytes:
    """``renewals`` earlier certificates of each entry (as renewals would have recorded them), then its own."""
    out: list[bytes] = []
    for line in journal.splitlines():
        record = json.loads(line)
        ca = record["ca_arn"]
        for _ in range(renewals):
            old = dict(record, token=f"pb1-{secrets.token_hex(14)}",
                       certificate_arn=f"{ca}/certificate/{secrets.token_hex(16)}", time="2025-01-01T00:00:00Z")
            out.append(json.dumps(old, separators=(",", ":")).encode())
        out.append(line)
    return b"\n".join(out) + b"\n"


def prepare(count: int) -> tuple[Path, bytes, dict[str, str]]:
    env = installed_env()
    folder = WORK / f"state-{count}"
    manifest = write_manifest(folder, count, backend=BACKEND)
    journal = folder / ".pca-batch" / "journal.jsonl"
    if not (folder / "out" / f"svc-{count - 1:06d}.pem").exists() or not journal.exists():
        print(f"issuing {count} certificates once (local CA) ...", flush=True)
        t = timed(env, "apply", manifest, "--concurrency", "8")
        print(f"  done in {t.seconds:.1f} s", flush=True)
    return manifest, journal.read_bytes(), env


@dataclass(frozen=True)
class States:
    kind: str  # file or s3
    option: str  # the option that names a state: --journal or --state
    fresh: str
    history: str


def compare(goals: Goals, states: States, env: dict[str, str], manifest: Path) -> None:
    kind, state_option, fresh, history = states.kind, states.option, states.fresh, states.history
    before = timed(env, "apply", manifest, "--plan", "--offline", state_option, history)
    print(f"{kind}: plan before compaction {before.seconds:.2f} s, {before.rss_mb:.0f} MB", flush=True)
    compacting = timed(env, "apply", manifest, state_option, history)
    print(f"{kind}: apply that compacts the history state {compacting.seconds:.2f} s, {compacting.rss_mb:.0f} MB",
          flush=True)
    fresh_runs, history_runs = [], []
    for _ in range(3):
        fresh_runs.append(timed(env, "apply", manifest, "--plan", "--offline", state_option, fresh))
        history_runs.append(timed(env, "apply", manifest, "--plan", "--offline", state_option, history))
    f, h = median(fresh_runs), median(history_runs)
    print(f"{kind}: plan, fresh state     {f.seconds:.2f} s, {f.rss_mb:.0f} MB (median of 3, whole process)")
    print(f"{kind}: plan, compacted state {h.seconds:.2f} s, {h.rss_mb:.0f} MB (median of 3, whole process)")
    goals.check(f"{kind}: time ratio compacted / fresh = {h.seconds / f.seconds:.2f}  (goal <= 1.20)",
                h.seconds <= 1.2 * f.seconds)
    goals.check(f"{kind}: memory ratio compacted / fresh = {h.rss_mb / f.rss_mb:.2f}  (goal <= 1.50)",
                h.rss_mb <= 1.5 * f.rss_mb)


def file_states(goals: Goals, manifest: Path, journal: bytes, renewals: int, env: dict[str, str]) -> None:
    folder = manifest.parent / "states"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    (folder / "fresh.jsonl").write_bytes(journal)
    (folder / "history.jsonl").write_bytes(history_lines(journal, renewals))
    compare(goals, States("file", "--journal", str(folder / "fresh.jsonl"), str(folder / "history.jsonl")), env,
            manifest)


@contextmanager
def s3_server(env: dict[str, str]) -> Iterator[dict[str, str]]:
    from tests.support.moto_server import apply_env, aws_test_env, moto_process

    changes = aws_test_env(WORK / "aws")
    with moto_process(apply_env(changes, env)) as moto:
        yield apply_env({**changes, "AWS_ENDPOINT_URL_S3": moto.endpoint, "AWS_DEFAULT_REGION": "us-east-1"}, env)


def s3_states(goals: Goals, manifest: Path, journal: bytes, renewals: int, env: dict[str, str]) -> None:
    import boto3

    with s3_server(env) as s3_env:
        client = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1",
                              aws_access_key_id=s3_env["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=s3_env["AWS_SECRET_ACCESS_KEY"])
        client.create_bucket(Bucket="bench")
        # as states written by a pca-batch that never compacted: one snapshot with every record
        client.put_object(Bucket="bench", Key="fresh.state", Body=HEADER + journal)
        client.put_object(Bucket="bench", Key="history.state", Body=HEADER + history_lines(journal, renewals))
        client.close()
        compare(goals, States("s3", "--state", "s3://bench/fresh.state", "s3://bench/history.state"), s3_env,
                manifest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=COUNT)
    parser.add_argument("--renewals", type=int, default=RENEWALS)
    args = parser.parse_args(argv)
    print(machine_speed(), flush=True)
    manifest, journal, env = prepare(args.entries)
    records = args.entries * (args.renewals + 1)
    print(f"{args.entries} entries; history states hold {records:,} records ({args.renewals} renewals each)")
    goals = Goals()
    file_states(goals, manifest, journal, args.renewals, env)
    s3_states(goals, manifest, journal, args.renewals, env)
    return goals.exit_status()


if __name__ == "__main__":
    raise SystemExit(main())
