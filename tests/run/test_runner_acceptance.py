"""`pca-batch apply` end to end with the local CA: in-process through main(), and real processes
killed with SIGKILL or stopped with SIGTERM mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from cryptography import x509

from pca_batch import schema
from tests.support.common import REPO, make_csr_pem

CA = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/0a0b0c0d-1111-2222-3333-444455556666"
MISSING_CA = CA.replace("0a0b0c0d", "deadbeef")


def write_manifest(folder: Path, names: list[str], *, ca_for: dict[str, str] | None = None) -> Path:
    (folder / "csr").mkdir(parents=True, exist_ok=True)
    lines = [
        "version: 1",
        "backend:",
        "  type: local",
        "  store: store",
        "  authorities:",
        f"    - {{arn: {CA}, common_name: Acceptance Root}}",
        "defaults:",
        f"  CertificateAuthorityArn: {CA}",
        "  SigningAlgorithm: SHA256WITHECDSA",
        "  Validity: {Value: 30, Type: DAYS}",
        "certificates:",
    ]
    for name in names:
        (folder / "csr" / f"{name}.csr").write_bytes(make_csr_pem(f"{name}.example", (f"{name}.example",)))
        lines += [
            f"  - name: {name}",
            f"    Csr: file://csr/{name}.csr",
            f"    output: {{certificate: out/{name}.pem, chain: out/{name}.chain.pem, "
            f"full_chain: out/{name}.full.pem}}",
        ]
        if ca_for and name in ca_for:
            lines.append(f"    CertificateAuthorityArn: {ca_for[name]}")
    path = folder / "m.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def read_report(path: Path) -> dict:  # type: ignore[type-arg]
    data = json.loads(path.read_text())
    schema.validator(schema.REPORT).validate(data)
    return data  # type: ignore[no-any-return]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}


def audit(folder: Path) -> list[dict]:  # type: ignore[type-arg]
    """The end-entity certificates in the local CA's audit report (it also lists the CA's own)."""
    done = subprocess.run(
        [sys.executable, "-m", "pca_batch", "ca", "audit-report", "--store", str(folder / "store"),
         "--certificate-authority-arn", CA],
        cwd=folder, env=env(), capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    items = json.loads(done.stdout)
    assert [i["subject"] for i in items if "CACertificate" in i["templateArn"]] == ["CN=Acceptance Root"]
    return [i for i in items if "CACertificate" not in i["templateArn"]]


def journal_lines(folder: Path) -> int:
    try:
        return (folder / ".pca-batch" / "journal.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def start_and_wait_for_progress(
    folder: Path, manifest: Path, extra: list[str], lines: int
) -> subprocess.Popen:  # type: ignore[type-arg]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pca_batch", "apply", str(manifest), *extra],
        cwd=folder, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60  # a bound on waiting, not a timing assertion
    while journal_lines(folder) < lines:
        assert proc.poll() is None, f"the run ended before it could be stopped: {proc.communicate()}"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.02)
    return proc


def test_apply_issues_writes_reports_and_a_second_run_changes_nothing(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    manifest = write_manifest(tmp_path, ["web", "api", "db"])
    result = cli("apply", manifest, "--report", tmp_path / "r.json", "--junit", tmp_path / "j.xml")
    assert result.code == 0, result.err
    report = read_report(tmp_path / "r.json")
    assert report["summary"]["issued"] == 3
    root = x509.load_pem_x509_certificate((tmp_path / "out" / "web.chain.pem").read_bytes())
    for entry in report["results"]:
        cert = x509.load_pem_x509_certificate((tmp_path / entry["outputs"]["certificate"]).read_bytes())
        cert.verify_directly_issued_by(root)
        assert entry["serial"] == format(cert.serial_number, "032x")
        assert entry["certificate_arn"].endswith(f"/certificate/{cert.serial_number:032x}")
        full = (tmp_path / entry["outputs"]["full_chain"]).read_text()
        chain = (tmp_path / entry["outputs"]["chain"]).read_text()
        assert full == (tmp_path / entry["outputs"]["certificate"]).read_text() + chain
    assert f"issued    web  {report['results'][0]['certificate_arn']}" in result.out
    assert len(ET.parse(tmp_path / "j.xml").getroot().findall("testsuite/testcase")) == 3
    assert "PRIVATE KEY" not in result.out + result.err

    again = cli("apply", manifest, "--report", tmp_path / "r2.json")
    assert again.code == 0
    assert read_report(tmp_path / "r2.json")["summary"]["unchanged"] == 3
    assert len(audit(tmp_path)) == 3


def test_an_entry_the_ca_refuses_fails_with_exit_1(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    manifest = write_manifest(tmp_path, ["good", "lost"], ca_for={"lost": MISSING_CA})
    result = cli("apply", manifest, "--report", tmp_path / "r.json")
    assert result.code == 1
    report = read_report(tmp_path / "r.json")
    assert [r["status"] for r in report["results"]] == ["issued", "failed"]
    assert report["results"][1]["error"]["code"] == "ResourceNotFoundException"
    assert report["results"][1]["attempts"] == 0
    assert "failed    lost  ResourceNotFoundException" in result.out


def test_sigkill_mid_run_then_run_again_gives_one_certificate_per_entry(tmp_path: Path) -> None:
    names = [f"svc{i:03d}" for i in range(40)]
    manifest = write_manifest(tmp_path, names)
    proc = start_and_wait_for_progress(tmp_path, manifest, ["--max-rate", "20", "--concurrency", "4"], 5)
    proc.kill()  # SIGKILL: no handler, no report, no cleanup
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert journal_lines(tmp_path) < len(names)  # it really was stopped mid-run

    done = subprocess.run(
        [sys.executable, "-m", "pca_batch", "apply", str(manifest), "--report", str(tmp_path / "r.json")],
        cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = read_report(tmp_path / "r.json")
    assert {r["status"] for r in report["results"]} <= {"issued", "unchanged"}
    issued = audit(tmp_path)
    subjects = Counter(item["subject"] for item in issued)
    assert len(issued) == len(names)
    assert subjects == Counter(f"CN={name}.example" for name in names)
    assert {item["certificateArn"] for item in issued} == {r["certificate_arn"] for r in report["results"]}


def test_sigterm_stops_a_real_run_with_exit_130_and_a_report(tmp_path: Path) -> None:
    names = [f"svc{i:03d}" for i in range(40)]
    manifest = write_manifest(tmp_path, names)
    report_path = tmp_path / "r.json"
    proc = start_and_wait_for_progress(
        tmp_path, manifest, ["--max-rate", "20", "--concurrency", "4", "--report", str(report_path)], 3
    )
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    report = read_report(report_path)
    counts = report["summary"]
    assert counts["skipped"] > 0 and counts["issued"] + counts["skipped"] == len(names)
    assert out.rstrip().endswith("(interrupted)")
    assert "\x1b[" not in out  # not a terminal: no control codes

    done = subprocess.run(
        [sys.executable, "-m", "pca_batch", "apply", str(manifest), "--report", str(report_path)],
        cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(audit(tmp_path)) == len(names)


def test_the_command_ends_the_process_with_everything_written(tmp_path: Path) -> None:
    """The installed command skips the interpreter's teardown: whatever it printed or wrote
    before is all there, the exit status too, and the run leaves nothing behind."""
    names = [f"svc{i:03d}" for i in range(25)]
    manifest = write_manifest(tmp_path, names)
    summary = tmp_path / "summary.md"
    done = subprocess.run(
        [sys.executable, "-m", "pca_batch", "apply", str(manifest), "--report", str(tmp_path / "r.json"),
         "--junit", str(tmp_path / "junit.xml")],
        cwd=tmp_path, env={**env(), "GITHUB_STEP_SUMMARY": str(summary)}, capture_output=True, text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert sum(line.startswith("issued") for line in lines) == len(names)
    assert lines[-1].startswith(f"{len(names)} entries, {len(names)} issued in ")
    assert read_report(tmp_path / "r.json")["summary"]["issued"] == len(names)
    assert (tmp_path / "junit.xml").read_text().rstrip().endswith("</testsuites>")
    assert all(name in summary.read_text() for name in names)
    assert len(audit(tmp_path)) == len(names)
    assert not list(tmp_path.rglob("*.tmp"))

    failing = subprocess.run(
        [sys.executable, "-m", "pca_batch", "apply", str(tmp_path / "missing.yaml")],
        cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=60,
    )
    assert failing.returncode == 2 and "missing.yaml" in failing.stderr
