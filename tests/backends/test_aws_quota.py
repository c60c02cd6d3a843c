"""Two `pca-batch apply` processes sharing one small quota, over real HTTP: moto behind the fault
proxy, which enforces the quota with token buckets (ThrottlingException beyond it), as AWS does
per account and region. Nothing is shared between the processes but the quota.

What must hold whatever the timing: every entry issued, none failed, each certificate issued
once (no idempotency token reaches moto twice), although ``--max-attempts 1`` leaves no attempt
to spend on a throttle; and each process's report says how often it was throttled, adding up
to what the proxy throttled.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fault_proxy import FaultProxy, Faults
from tests.support.moto_server import AwsEntry, apply_env, aws_test_env, serial_certificate_arns, write_aws_manifest

ISSUE, GET = "IssueCertificate", "GetCertificate"
QUOTA = Faults(quota=((ISSUE, 4.0), (GET, 12.0)))  # far under the rate either process starts at


@pytest.fixture(scope="module", autouse=True)
def aws_shaped_arns(moto: str) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        serial_certificate_arns(mp)
        yield


def test_two_processes_sharing_a_small_quota_issue_everything_once(moto: str, ca_east: str, tmp_path: Path) -> None:
    names = [f"shared{i:02d}" for i in range(24)]
    env = apply_env(aws_test_env(tmp_path / "aws"))
    with FaultProxy(moto, QUOTA) as proxy:
        manifest, _ = write_aws_manifest(tmp_path, proxy.endpoint, [AwsEntry(n, ca_east) for n in names])
        running = [
            subprocess.Popen(
                [sys.executable, "-m", "pca_batch", "apply", str(manifest), "--shard", f"{k}/2", "--max-attempts", "1",
                 "--journal", str(tmp_path / f"journal-{k}.jsonl"), "--report", str(tmp_path / f"report-{k}.json")],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            for k in (1, 2)
        ]  # fmt: skip
        outputs = [p.communicate(timeout=300)[0] for p in running]
        stats = proxy.snapshot()

    for p, out in zip(running, outputs, strict=True):
        assert p.returncode == 0, out
        assert "Traceback" not in out
    reports: list[dict[str, Any]] = [json.loads((tmp_path / f"report-{k}.json").read_text()) for k in (1, 2)]
    results = [r for report in reports for r in report["results"]]
    assert sorted(r["name"] for r in results) == names
    assert {r["status"] for r in results} == {"issued"}
    for report in reports:
        assert report["summary"]["issued"] >= 1 and report["summary"]["failed"] == 0
    tokens = {r["idempotency_token"] for r in results}
    assert stats["issue_forwarded"] == dict.fromkeys(tokens, 1)  # each certificate issued once
    for name in names:
        assert (tmp_path / "out" / f"{name}.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")

    # The quota did bite, and each throttle came back to the process it answered.
    assert stats["over_quota"].get(ISSUE, 0) > 0
    learned = [rate for report in reports for rate in report["summary"]["rates"]]
    for operation in (ISSUE, GET):
        throttles = sum(r["throttles"] for r in learned if r["operation"] == operation)
        assert throttles == stats["over_quota"].get(operation, 0), operation
    for k, out in enumerate(outputs, 1):
        assert "IssueCertificate: " in out, f"process {k} did not say what rate it learned:\n{out}"


def test_the_manifest_sets_the_throttle_timeout_and_the_command_line_wins(
    moto: str, ca_east: str, tmp_path: Path
) -> None:
    """``settings: {throttle_timeout: 0}``: an entry fails at its first throttle, after one
    IssueCertificate call that never reached moto, and says which setting ran out;
    ``--throttle-timeout`` on the command line wins over it (the run then waits the throttles out)."""
    names = ["tt1", "tt2"]
    env = apply_env(aws_test_env(tmp_path / "aws"))
    every_issue = Faults(throttle=1.0, max_faults_per_key=None, operations=frozenset({ISSUE}))
    with FaultProxy(moto, every_issue) as proxy:
        manifest, _ = write_aws_manifest(tmp_path, proxy.endpoint, [AwsEntry(n, ca_east) for n in names])
        text = manifest.read_text().replace("certificates:\n", "settings: {throttle_timeout: 0}\ncertificates:\n")
        manifest.write_text(text)
        done = subprocess.run([sys.executable, "-m", "pca_batch", "apply", str(manifest), "--report",
                               str(tmp_path / "r.json")], env=env, capture_output=True, text=True, timeout=120)
        stats = proxy.snapshot()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert {r["name"]: (r["status"], r["error"]["code"]) for r in report["results"]} == dict.fromkeys(
        names, ("failed", "ThrottlingException"))
    assert all("settings.throttle_timeout" in r["error"]["message"] for r in report["results"])
    assert sorted(stats["issue_calls"].values()) == [1, 1] and not stats["issue_forwarded"]

    few = Faults(throttle=1.0, max_faults_per_key=2, operations=frozenset({ISSUE}))  # two throttles a token
    with FaultProxy(moto, few) as proxy:
        manifest.write_text(manifest.read_text().replace(f"endpoint_url: '{_endpoint(manifest)}'",
                                                         f"endpoint_url: '{proxy.endpoint}'"))
        done = subprocess.run([sys.executable, "-m", "pca_batch", "apply", str(manifest), "--throttle-timeout", "60s",
                               "--report", str(tmp_path / "r2.json")], env=env, capture_output=True, text=True,
                              timeout=120)
        stats = proxy.snapshot()
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "r2.json").read_text())
    assert {r["status"] for r in report["results"]} == {"issued"}
    assert sorted(stats["issue_calls"].values()) == [3, 3]  # two throttles each, waited out, then issued


def _endpoint(manifest: Path) -> str:
    return manifest.read_text().split("endpoint_url: '", 1)[1].split("'", 1)[0]
