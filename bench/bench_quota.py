"""Issue 18's goal: reach the account's quota from one process or many, with no call storm and no failed entry.

A stand-in acm-pca server (bench/_quota_acmpca.py, its own process) enforces AWS
Private CA's default quotas with token buckets (25 IssueCertificate and 75
GetCertificate calls a second, each bucket holding one second's worth), answers
every call after 50 ms and throttles beyond the quota. N entries (default 1,000,
new ones for each scenario) are issued by real ``pca-batch apply`` processes:

  (a) one process, defaults;
  (b) four ``--shard K/4`` processes at once, defaults (the README's CI recipe,
      on one machine; each with its own journal and report);
  (c) one process, ``--max-rate 0 --concurrency 64``;
  (d) one process, defaults, with the quota raised to 100/s (and GetCertificate to 300/s).

For each: the time (start of the processes to the last exit); the IssueCertificate
rate the server let through, from its first such call to its last, as a share of
the quota (a full bucket at the start can make it a little over 100%); the share
of all IssueCertificate calls that were throttled; the entries that failed; the
certificates issued twice (tokens the server signed for more than once); and the
rates each process says it settled at.

Goals in every scenario: >= 90% of the quota, <= 5% of the IssueCertificate calls
throttled, no failed entry, nothing issued twice. Exits 1 when one is missed.

The machine may be too slow for (d): 100 IssueCertificate and 100 GetCertificate
calls a second is about what one boto3 client reaches on a quiet host of two cores
(bench_serve measured ~200 calls a second against a null server), and here the
server shares those cores. So (d) also prints the CPU seconds each side used, and
``--ceiling`` times pca-batch with ``--max-rate 0`` against the same server with no
quota at all: the rate the client reaches here when nothing throttles it. When that
ceiling is under 100/s, (d) is measured against it and says so.

Nothing here talks to any address other than 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._gen import WORK, Goals, installed_env, machine_speed
from tests.support.moto_server import AwsEntry, apply_env, aws_test_env, write_aws_manifest

CA_ARN = "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/1b1b1b1b-2222-4333-8444-555555555555"
HERE = WORK / "quota"


@contextmanager
def server(issue_rate: float, get_rate: float, latency: float) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    command = [sys.executable, "-m", "bench._quota_acmpca", "--issue-rate", str(issue_rate),
               "--get-rate", str(get_rate), "--latency", str(latency)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip().rpartition(" ")[2]
        if not url.startswith("http://127.0.0.1:"):
            raise SystemExit(f"the stand-in server did not start: {url!r}")
        yield url, process
    finally:
        process.terminate()
        process.wait(10)


def stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/__stats__", timeout=10) as answer:  # noqa: S310 - loopback
        data: dict[str, Any] = json.loads(answer.read())
    return data


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    quota: float
    processes: int = 1
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    scenario: Scenario
    quota: float  # what the rate is measured against (the quota, or the client's ceiling when lower)
    elapsed: float
    issue_calls: int
    throttled: int
    let_through: int
    span: float
    failed: int
    issued: int
    twice: int
    learned: list[str]
    cpu_client: float
    cpu_server: float

    @property
    def rate(self) -> float:
        return self.let_through / self.span if self.span > 0 else 0.0

    @property
    def throttled_share(self) -> float:
        return self.throttled / self.issue_calls if self.issue_calls else 0.0


def entries_for(scenario: Scenario, n: int) -> Path:
    folder = HERE / f"{scenario.key}-{time.time_ns()}"
    folder.mkdir(parents=True)
    return folder


def run_scenario(scenario: Scenario, n: int, latency: float, env: dict[str, str], measure_against: float) -> Outcome:
    folder = entries_for(scenario, n)
    with server(scenario.quota, scenario.quota * 3, latency) as (url, srv):
        entries = [AwsEntry(f"{scenario.key}-{i:05d}", CA_ARN, "SHA256WITHECDSA") for i in range(n)]
        manifest, _ = write_aws_manifest(folder, url, entries)
        commands = []
        for k in range(1, scenario.processes + 1):
            shard = ["--shard", f"{k}/{scenario.processes}"] if scenario.processes > 1 else []
            commands.append([
                sys.executable, "-m", "pca_batch", "apply", str(manifest), *shard, *scenario.options,
                "--journal", str(folder / f"journal-{k}.jsonl"), "--report", str(folder / f"report-{k}.json"),
            ])  # fmt: skip
        server_cpu = cpu_seconds(srv.pid)
        client_cpu = _children_cpu()
        start = time.perf_counter()
        running = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                   for c in commands]
        outputs = [p.communicate()[0] for p in running]
        elapsed = time.perf_counter() - start
        client_cpu = _children_cpu() - client_cpu
        server_cpu = cpu_seconds(srv.pid) - server_cpu
        seen = stats(url)
    for k, (p, out) in enumerate(zip(running, outputs, strict=True), 1):
        (folder / f"output-{k}.txt").write_text(out)  # what each process printed, to read afterwards
        if p.returncode not in (0, 1):
            raise SystemExit(f"pca-batch apply exited {p.returncode}:\n{out[-3000:]}")
    reports = [json.loads((folder / f"report-{k}.json").read_text()) for k in range(1, scenario.processes + 1)]
    results = [r for report in reports for r in report["results"]]
    learned = [
        f"process {k}: " + "; ".join(_learned_line(rate) for rate in report["summary"].get("rates", [])
                                     if rate["operation"] == "IssueCertificate")
        for k, report in enumerate(reports, 1)
    ]
    issue = "IssueCertificate"
    return Outcome(
        scenario=scenario, quota=measure_against, elapsed=elapsed,
        issue_calls=seen["calls"].get(issue, 0), throttled=seen["throttled"].get(issue, 0),
        let_through=seen["calls"].get(issue, 0) - seen["throttled"].get(issue, 0),
        span=seen["last_ok"].get(issue, 0.0) - seen["first_ok"].get(issue, 0.0),
        failed=n - sum(1 for r in results if r["status"] == "issued"),
        issued=sum(1 for r in results if r["status"] == "issued"),
        twice=sum(1 for c in seen["signed_per_token"].values() if c > 1),
        learned=learned, cpu_client=client_cpu, cpu_server=server_cpu,
    )


def _learned_line(rate: dict[str, Any]) -> str:
    return f"IssueCertificate settled at {rate['settled_per_s']:.1f}/s after {rate['throttles']} throttle(s)"


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def client_ceiling(n: int, latency: float, env: dict[str, str]) -> float:
    """The IssueCertificate rate one pca-batch process reaches here with nothing throttling it."""
    free = Scenario("ceiling", "no quota, --max-rate 0", quota=1_000_000.0, options=("--max-rate", "0"))
    outcome = run_scenario(free, n, latency, env, measure_against=1.0)
    print(f"client ceiling (no quota, --max-rate 0, {n} entries): {outcome.rate:.1f} IssueCertificate/s, "
          f"{outcome.elapsed:.1f} s; CPU seconds: pca-batch {outcome.cpu_client:.1f}, "
          f"server {outcome.cpu_server:.1f}", flush=True)
    return outcome.rate


SCENARIOS = {
    "a": Scenario("a", "(a) one process, defaults", 25.0),
    "b": Scenario("b", "(b) four --shard K/4 processes at once, defaults", 25.0, processes=4),
    "c": Scenario("c", "(c) one process, --max-rate 0 --concurrency 64", 25.0,
                  options=("--max-rate", "0", "--concurrency", "64")),
    "d": Scenario("d", "(d) one process, defaults, quota raised to 100/s", 100.0),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bench_quota: throttle-aware issuance against a quota")
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--only", default="abcd", help="the scenarios to run (letters), default abcd")
    parser.add_argument("--ceiling", action="store_true",
                        help="first measure the client's own ceiling here (no quota, --max-rate 0)")
    args = parser.parse_args(argv)
    print(machine_speed(), flush=True)
    env = apply_env(aws_test_env(HERE / "aws"), installed_env())
    ceiling = client_ceiling(args.entries, args.latency, env) if args.ceiling or "d" in args.only else None
    goals = Goals()
    print(f"{args.entries} entries per scenario; {args.latency * 1000:.0f} ms per call; token buckets of one "
          "second's worth; ThrottlingException beyond", flush=True)
    for key in args.only:
        scenario = SCENARIOS[key]
        against = scenario.quota
        if ceiling is not None and ceiling < 0.9 * scenario.quota:
            against = ceiling
        outcome = run_scenario(scenario, args.entries, args.latency, env, against)
        report(outcome, goals)
    return goals.exit_status()


def report(o: Outcome, goals: Goals) -> None:
    s = o.scenario
    print(f"{s.title}: {o.elapsed:.1f} s, {o.issued} issued", flush=True)
    versus = "the quota" if o.quota == s.quota else f"this machine's client ceiling ({o.quota:.1f}/s, under the quota)"
    print(f"  IssueCertificate let through: {o.let_through} in {o.span:.1f} s = {o.rate:.1f}/s "
          f"(quota {s.quota:g}/s); CPU seconds: pca-batch {o.cpu_client:.1f}, server {o.cpu_server:.1f}", flush=True)
    for line in o.learned:
        print(f"  {line}", flush=True)
    goals.check(f"  rate {o.rate / o.quota:.1%} of {versus} (goal >= 90%)", o.rate >= 0.9 * o.quota)
    goals.check(f"  throttled {o.throttled}/{o.issue_calls} IssueCertificate calls = {o.throttled_share:.1%} "
                "(goal <= 5%)", o.throttled_share <= 0.05)
    goals.check(f"  failed entries {o.failed}, issued twice {o.twice} (goal 0, 0)", o.failed == 0 and o.twice == 0)


if __name__ == "__main__":
    raise SystemExit(main())
