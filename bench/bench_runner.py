"""Speed of `pca-batch apply` (issue 4): the runner against a backend that answers after 100 ms.

1. Limiter lifted (--max-rate 0): 1,000 entries at --concurrency 32 must finish at no less
   than 90% of the ideal rate, 32 workers / (2 calls x 100 ms) = 160 entries a second.
2. --max-rate R: the achieved IssueCertificate rate must be at least 95% of R, and no
   one-second window may hold more than R IssueCertificate calls (nor 3R GetCertificate).

The backend is the in-memory fault backend in its slow mode; everything else is real:
the journal with fsync, atomic output files (fsync, rename) and per-entry log lines.
The speed target is judged on the run itself (Runner.run: first call to last entry
finished); the whole `apply` (execute(): plus one DescribeCertificateAuthority for
preflight, 100 ms here, and the schema-checked JSON report) is timed and shown too.
Prints the figures and ratios; exits 1 when a target is missed.

    python -m bench.bench_runner [--entries 1000] [--concurrency 32] [--rate 20] [--rate-entries 300]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

from rich.console import Console

from bench._gen import Goals
from pca_batch.model import ApplyOptions, BackendConfig, Entry, Manifest, RunSettings
from pca_batch.report.live import LiveReport
from pca_batch.run.journal import Journal
from pca_batch.run.runner import RunConfig, Runner
from pca_batch.run.session import execute
from tests.support.fault_backend import FaultBackend, make_csr, make_entry

REPO = Path(__file__).resolve().parent.parent

DELAY = 0.100


def max_in_window(times: list[float], width: float = 1.0) -> int:
    """The most events in any half-open window [t, t + width)."""
    times = sorted(times)
    best = lo = 0
    for hi, t in enumerate(times):
        while times[lo] <= t - width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def make_entries(root: Path, count: int) -> tuple[Entry, ...]:
    csr = make_csr("bench.example.com")
    return tuple(make_entry(root, f"bench{i:05d}", index=i, csr=csr) for i in range(count))


def run_only(entries: int, concurrency: int) -> tuple[float, FaultBackend, int]:
    """Runner.run alone, as execute() runs it; returns (seconds, backend, entries issued)."""
    with tempfile.TemporaryDirectory(prefix="pca-batch-bench-") as folder:
        root = Path(folder)
        items = make_entries(root, entries)
        backend = FaultBackend(delay=DELAY)
        console = Console(file=io.StringIO(), width=100, color_system=None)
        with Journal(root / ".pca-batch" / "journal.jsonl") as journal, LiveReport(console, entries) as live:
            runner = Runner(backend, journal, base_dir=root, config=RunConfig(concurrency=concurrency))
            started = time.perf_counter()
            results = runner.run(items, on_result=live.advance)
            seconds = time.perf_counter() - started
        return seconds, backend, sum(1 for r in results if r.status == "issued")


def apply(entries: int, concurrency: int, max_rate: float) -> tuple[float, FaultBackend, int]:
    """Run execute() on ``entries`` fresh entries; returns (seconds, backend, exit status)."""
    with tempfile.TemporaryDirectory(prefix="pca-batch-bench-") as folder:
        root = Path(folder)
        items = make_entries(root, entries)
        manifest = Manifest(path=root / "bench.yaml", display="bench.yaml", root=root, version=1,
                            backend=BackendConfig(type="aws"), settings=RunSettings(), entries=items)
        backend = FaultBackend(delay=DELAY)
        options = ApplyOptions(concurrency=concurrency, max_rate=max_rate, report=root / "report.json")
        console = Console(file=io.StringIO(), width=100, color_system=None)
        started = time.perf_counter()
        code = execute(manifest, options, console, backend=backend, env={})
        return time.perf_counter() - started, backend, code


def bench_unlimited(goals: Goals, entries: int, concurrency: int) -> None:
    ideal_rate = concurrency / (2 * DELAY)
    print(f"unlimited (--max-rate 0): {entries} entries, concurrency {concurrency}, every call answered "
          f"after {DELAY * 1000:.0f} ms; ideal {ideal_rate:.0f} entries/s = {entries / ideal_rate:.3f} s")
    seconds, backend, issued = run_only(entries, concurrency)
    rate = entries / seconds
    ratio = rate / ideal_rate
    ok = ratio >= 0.90 and issued == entries == len(backend.issued)
    calls = sum(1 for op, _ in backend.calls if op == "IssueCertificate"), sum(
        1 for op, _ in backend.calls if op == "GetCertificate")
    goals.check(f"  run (Runner.run)     {seconds:8.3f} s  {rate:7.1f} entries/s  ratio {ratio:.3f} "
                "(target >= 0.900, every entry issued)", ok)
    print(f"                       {calls[0]} IssueCertificate, {calls[1]} GetCertificate, {issued} issued")
    seconds, backend, code = apply(entries, concurrency, 0)
    rate = entries / seconds
    print(f"  whole apply          {seconds:8.3f} s  {rate:7.1f} entries/s  ratio {rate / ideal_rate:.3f} "
          "(incl. preflight and report)")
    goals.check(f"  whole apply: exit {code}, {len(backend.issued)} issued (goal: exit 0)", code == 0)


def bench_limited(goals: Goals, entries: int, concurrency: int, rate: float) -> None:
    seconds, backend, code = apply(entries, concurrency, rate)
    issue = sorted(t for op, t in backend.calls if op == "IssueCertificate")
    get = sorted(t for op, t in backend.calls if op == "GetCertificate")
    span = issue[-1] - issue[0]
    achieved = (len(issue) - 1) / span if span > 0 else float("inf")
    ratio = achieved / rate
    busiest = max_in_window(issue)
    busiest_get = max_in_window(get)
    ok = code == 0 and ratio >= 0.95 and busiest <= rate and busiest_get <= 3 * rate
    print(f"limited: {entries} entries, concurrency {concurrency}, --max-rate {rate:g}")
    print(f"  wall time                      {seconds:8.3f} s")
    print(f"  IssueCertificate rate          {achieved:8.2f} /s  (ratio to R {ratio:.3f}, target >= 0.950)")
    print(f"  busiest 1 s window, Issue      {busiest:8d}     (limit {rate:g})")
    print(f"  busiest 1 s window, Get        {busiest_get:8d}     (limit {3 * rate:g})")
    goals.check(f"  limits kept, rate reached: exit {code}, certificates issued {len(backend.issued)}", ok)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--rate-entries", type=int, default=300)
    args = parser.parse_args()
    goals = Goals()
    bench_unlimited(goals, args.entries, args.concurrency)
    bench_limited(goals, args.rate_entries, args.concurrency, args.rate)
    return goals.exit_status()


if __name__ == "__main__":
    raise SystemExit(main())
