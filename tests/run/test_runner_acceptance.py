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

import pytest
from cryptography import x509

from pca_batch import schema
from pca_batch.run.journal import read_journal
from tests.support.common import REPO, Cli, make_csr_pem

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
    assert {r["status"] for r in report["results"]} <= {"issued", "recovered", "unchanged"}
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
    assert counts["skipped"] > 0 and counts["issued"] + counts["failed"] + counts["skipped"] == len(names)
    assert out.rstrip().endswith("(interrupted)")
    assert "\x1b[" not in out  # not a terminal: no control codes
    # Every certificate issued is in the report with its ARN; none of those entries is "skipped".
    journaled = {r.certificate_arn for r in read_journal(tmp_path / ".pca-batch" / "journal.jsonl")[0]}
    by_arn = {r["certificate_arn"]: r for r in report["results"] if r["certificate_arn"]}
    assert journaled == set(by_arn)
    for entry in by_arn.values():
        assert entry["status"] == "issued" or (entry["status"], entry["error"]["code"]) == ("failed", "Interrupted")
    unwritten = {r["name"] for r in by_arn.values() if r["status"] == "failed"}

    done = subprocess.run(
        [sys.executable, "-m", "pca_batch", "apply", str(manifest), "--report", str(report_path)],
        cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(audit(tmp_path)) == len(names)
    again = {r["name"]: r for r in read_report(report_path)["results"]}
    assert all(again[name]["status"] == "recovered" for name in unwritten)


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


def write_key_manifest(folder: Path, names: list[str], *, ca_for: dict[str, str]) -> Path:
    """Entries whose keys and CSRs pca-batch makes (``key:`` blocks)."""
    lines = [
        "version: 1",
        "backend: {type: local, store: store, authorities: [{arn: " + CA + ", common_name: Acceptance Root}]}",
        "defaults:",
        f"  CertificateAuthorityArn: {CA}",
        "  SigningAlgorithm: SHA256WITHECDSA",
        "  Validity: {Value: 30, Type: DAYS}",
        "certificates:",
    ]
    for name in names:
        lines += [
            f"  - name: {name}",
            f"    key: {{subject: {{CommonName: {name}.example}}, dns_names: [{name}.example]}}",
            f"    output: {{certificate: out/{name}.pem, private_key: out/{name}.key}}",
        ]
        if name in ca_for:
            lines.append(f"    CertificateAuthorityArn: {ca_for[name]}")
    path = folder / "m.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_after_fail_fast_no_entry_makes_a_key_or_a_file(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    names = ["bad", *(f"k{i:02d}" for i in range(15))]
    manifest = write_key_manifest(tmp_path, names, ca_for={"bad": MISSING_CA})
    result = cli("apply", manifest, "--fail-fast", "--concurrency", "1", "--report", tmp_path / "r.json")
    assert result.code == 1, result.err
    report = read_report(tmp_path / "r.json")
    statuses = {r["name"]: r["status"] for r in report["results"]}
    assert statuses["bad"] == "failed"
    skipped = [name for name, status in statuses.items() if status == "skipped"]
    assert len(skipped) >= len(names) - 3  # the failure was first: at most the one started beside it ran
    for name in skipped:
        entry = next(r for r in report["results"] if r["name"] == name)
        assert entry["error"]["code"] == "FailFast" and entry["attempts"] == 0
        out = tmp_path / "out"
        assert not (out / f"{name}.key.pending").exists(), f"{name} made a key after the stop"
        assert not (out / f"{name}.key").exists() and not (out / f"{name}.pem").exists()
    started = [name for name, status in statuses.items() if status not in ("skipped", "failed")]
    assert len(audit(tmp_path)) == len(started)  # no call for a skipped entry


def test_files_fetched_from_the_journal_are_reported_recovered_not_issued(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    manifest = write_manifest(tmp_path, ["web", "api", "db"])
    first = cli("apply", manifest, "--report", tmp_path / "r1.json")
    assert first.code == 0, first.err
    arns = {r["name"]: r["certificate_arn"] for r in read_report(tmp_path / "r1.json")["results"]}
    shutil.rmtree(tmp_path / "out")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    again = cli("apply", manifest, "--report", tmp_path / "r2.json", "--junit", tmp_path / "j.xml")

    assert again.code == 0, again.err
    report = read_report(tmp_path / "r2.json")
    assert report["summary"]["recovered"] == 3 and report["summary"]["issued"] == 0
    for entry in report["results"]:
        assert entry["status"] == "recovered" and entry["attempts"] == 0
        assert entry["certificate_arn"] == arns[entry["name"]]  # the same certificate, fetched again
        assert (tmp_path / entry["outputs"]["certificate"]).exists()
    lines = again.out.splitlines()
    assert [line.split()[0] for line in lines[:3]] == ["recovered"] * 3
    assert "attempt" not in lines[0] and "no IssueCertificate call" in lines[0]
    assert lines[-1].startswith("3 entries, 3 recovered in ")
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite is not None and (suite.attrib["failures"], suite.attrib["skipped"]) == ("0", "0")
    assert all("recovered" in (case.findtext("system-out") or "") for case in suite.iter("testcase"))
    text = summary.read_text()
    assert "3 entries: 3 recovered" in text and "| web | recovered |" in text
    assert len(audit(tmp_path)) == 3  # nothing issued a second time


def _processes_running(needle: str) -> list[int]:
    """Processes whose command line names ``needle`` (a run's manifest): the run and its workers."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if needle.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkill_in_a_run_of_20000_entries_loses_nothing_and_issues_nothing_twice(tmp_path: Path) -> None:
    """The batched local CA (signing workers, one journal write and one batch of files per batch of
    entries) killed mid-run: every ARN journaled is in the store, every file written holds a
    journaled certificate, no worker outlives the run, and the next run finishes the job with
    exactly one certificate per entry."""
    from pca_batch.backends.local.store import Store
    from pca_batch.run.journal import read_journal

    count = 20000
    (tmp_path / "csr").mkdir()
    lines = ["version: 1", "backend:", "  type: local", "  store: store", "  authorities:",
             f"    - {{arn: {CA}, common_name: Acceptance Root}}", "defaults:",
             f"  CertificateAuthorityArn: {CA}", "  SigningAlgorithm: SHA256WITHECDSA",
             "  Validity: {Value: 30, Type: DAYS}", "certificates:"]
    for i in range(count):
        name = f"svc{i:05d}"
        (tmp_path / "csr" / f"{name}.csr").write_bytes(make_csr_pem(f"{name}.example", (f"{name}.example",)))
        lines += [f"  - name: {name}", f"    Csr: file://csr/{name}.csr",
                  f"    output: {{certificate: out/{name}.pem}}"]
    manifest = tmp_path / "m.yaml"
    manifest.write_text("\n".join(lines) + "\n")

    with open(tmp_path / "out.log", "wb") as log:  # a line an entry: more than a pipe holds
        proc = subprocess.Popen([sys.executable, "-m", "pca_batch", "apply", str(manifest)],
                                cwd=tmp_path, env=env(), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300  # a bound on waiting, not a timing assertion
    while journal_lines(tmp_path) < 2000:
        assert proc.poll() is None, (tmp_path / "out.log").read_text()[-2000:]
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.02)
    proc.kill()
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 30  # a bound on waiting for the kernel to end the workers
    while _processes_running(str(manifest)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_running(str(manifest)) == []  # no signing worker outlived the run

    journaled = {r.certificate_arn: r.name for r in read_journal(tmp_path / ".pca-batch" / "journal.jsonl")[0]}
    assert 2000 <= len(journaled) < count  # it really was killed mid-run
    store = Store(tmp_path / "store")
    try:
        recorded = {row.arn for row in store.certificates(CA)}
    finally:
        store.close()
    assert set(journaled) <= recorded  # the store records before the journal says so
    written = sorted((tmp_path / "out").glob("svc*.pem"))
    for path in written:  # every file in place is whole, and its certificate journaled first
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        arn = f"{CA}/certificate/{cert.serial_number:032x}"
        assert journaled.get(arn) == path.stem

    done = subprocess.run(
        [sys.executable, "-m", "pca_batch", "apply", str(manifest), "--report", str(tmp_path / "r.json")],
        cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = read_report(tmp_path / "r.json")
    assert report["summary"]["failed"] == 0 and len(report["results"]) == count
    store = Store(tmp_path / "store")
    try:
        rows = [row for row in store.certificates(CA) if "CACertificate" not in row.template_arn]
    finally:
        store.close()
    assert len(rows) == count  # one certificate per entry: nothing issued twice
    assert {r["certificate_arn"] for r in report["results"]} == {row.arn for row in rows}
    assert len(list((tmp_path / "out").glob("svc*.pem"))) == count
