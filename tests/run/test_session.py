"""execute(): settings, preflight, the journal, reports and exit codes, with the fault backend."""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from pca_batch import schema
from pca_batch.errors import BackendError
from pca_batch.model import ApplyOptions, BackendConfig, BackendType, Entry, Manifest, Result, RunSettings
from pca_batch.run.journal import read_journal
from pca_batch.run.runner import Runner
from pca_batch.run.session import execute, resolve_config
from tests.support.fault_backend import CA_ARN, FaultBackend, Script, make_entries, make_entry

OTHER_CA = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/99999999-2222-3333-4444-555555555555"


def _of(m: Manifest) -> tuple[BackendConfig, RunSettings]:
    return m.backend, m.settings


def manifest(root: Path, entries: list[Entry], *, backend: BackendType = "local",
             settings: RunSettings | None = None) -> Manifest:
    return Manifest(path=root / "m.yaml", display="m.yaml", root=root, version=1,
                    backend=BackendConfig(type=backend), settings=settings or RunSettings(),
                    entries=tuple(entries))


def run(root: Path, backend: FaultBackend, entries: list[Entry], options: ApplyOptions | None = None,
        env: dict[str, str] | None = None) -> tuple[int, str, dict]:  # type: ignore[type-arg]
    out = io.StringIO()
    console = Console(file=out, width=100, color_system=None)
    report = root / "report.json"
    options = options or ApplyOptions()
    if options.report is None:
        options = ApplyOptions(**{**options.__dict__, "report": report})
    code = execute(manifest(root, entries), options, console, backend=backend, env=env or {})
    data = json.loads(options.report.read_text()) if options.report and options.report.exists() else {}
    if data:
        schema.validator(schema.REPORT).validate(data)
    return code, out.getvalue(), data


def test_all_issued_exit_0_with_report_junit_and_journal(tmp_path: Path) -> None:
    backend = FaultBackend()
    junit = tmp_path / "ci" / "junit.xml"
    code, out, report = run(tmp_path, backend, make_entries(tmp_path, 4), ApplyOptions(junit=junit))
    assert code == 0
    assert report["summary"]["issued"] == 4 and report["summary"]["total"] == 4
    assert {r["certificate_arn"] for r in report["results"]} == set(backend.issued)
    records, _ = read_journal(tmp_path / ".pca-batch" / "journal.jsonl")
    assert {r.certificate_arn for r in records} == set(backend.issued)
    assert len(ET.parse(junit).getroot().findall("testsuite/testcase")) == 4
    assert out.splitlines()[-1].startswith("4 entries, 4 issued in ")
    assert "PRIVATE KEY" not in out


def test_a_failure_gives_exit_1_and_github_annotations(tmp_path: Path) -> None:
    backend = FaultBackend(script={"tok-bad": Script(issue=["error:MalformedCSRException"])})
    summary = tmp_path / "step-summary.md"
    entries = [make_entry(tmp_path, "good"), make_entry(tmp_path, "bad", index=1)]
    code, out, report = run(tmp_path, backend, entries, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert code == 1
    bad = report["results"][1]
    assert bad["status"] == "failed" and bad["error"]["code"] == "MalformedCSRException"
    assert f"::error file=m.yaml,line={entries[1].line}::bad: MalformedCSRException: injected error" in out
    assert "| bad | failed |" in summary.read_text()


def test_preflight_refusals_fail_without_an_issue_call(tmp_path: Path) -> None:
    backend = FaultBackend()
    entries = [make_entry(tmp_path, "good"), make_entry(tmp_path, "lost", index=1, ca_arn=OTHER_CA)]
    code, _, report = run(tmp_path, backend, entries)
    assert code == 1
    lost = report["results"][1]
    assert lost["status"] == "failed" and lost["error"]["code"] == "ResourceNotFoundException"
    assert lost["attempts"] == 0 and backend.issue_calls["tok-lost"] == 0


def test_sigterm_stops_the_run_writes_the_report_and_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The handler runs in the main thread whenever it next gets the GIL; the third call
    # waits until it has, so that what follows is deterministic.
    handled = threading.Event()
    original = Runner.request_stop

    def noted(self: Runner) -> None:
        original(self)
        handled.set()

    monkeypatch.setattr(Runner, "request_stop", noted)

    def terminate_on_third(request: object) -> None:
        if sum(backend.issue_calls.values()) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
            assert handled.wait(30)

    backend = FaultBackend(before_issue=terminate_on_third)
    entries = make_entries(tmp_path, 8)
    before = signal.getsignal(signal.SIGTERM)
    code, out, report = run(tmp_path, backend, entries, ApplyOptions(concurrency=1))
    assert code == 130
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is put back
    statuses = [r["status"] for r in report["results"]]
    assert statuses[:3] == ["issued", "issued", "failed"] and set(statuses[3:]) == {"skipped"}
    assert sum(backend.issue_calls.values()) == 3  # the call in flight ended; nothing new started
    # The third was issued while the run stopped: never "skipped", its ARN given, its files not written.
    third = report["results"][2]
    records, _ = read_journal(tmp_path / ".pca-batch" / "journal.jsonl")
    assert third["certificate_arn"] in {r.certificate_arn for r in records}
    assert third["error"]["code"] == "Interrupted" and "not written" in third["error"]["message"]
    assert not (tmp_path / third["outputs"]["certificate"]).exists()
    assert f"failed    {third['name']}  Interrupted: " in out and third["certificate_arn"] in out
    assert out.rstrip().endswith("(interrupted)")
    # Run again: the third's files are recovered without a second IssueCertificate call.
    backend.before_issue = None
    code, _, report = run(tmp_path, backend, entries)
    assert code == 0 and report["summary"]["skipped"] == 0
    again = report["results"][2]
    assert again["status"] == "recovered" and again["attempts"] == 0
    assert again["certificate_arn"] == third["certificate_arn"]
    assert backend.issue_calls[entries[2].token or ""] == 1
    assert all(len(backend.certificates_for(e.token or "")) == 1 for e in entries)


def test_fail_fast_and_a_custom_journal(tmp_path: Path) -> None:
    backend = FaultBackend(script={"tok-b": Script(issue=["error:InvalidArgsException"])})
    journal = tmp_path / "elsewhere" / "j.jsonl"
    entries = [make_entry(tmp_path, n, index=i) for i, n in enumerate("abc")]
    code, _, report = run(tmp_path, backend, entries,
                          ApplyOptions(fail_fast=True, concurrency=1, journal=journal))
    assert code == 1
    assert [r["status"] for r in report["results"]] == ["issued", "failed", "skipped"]
    assert len(read_journal(journal)[0]) == 1
    assert not (tmp_path / ".pca-batch").exists()


def test_the_report_is_written_even_when_the_run_breaks(tmp_path: Path) -> None:
    class Broken(FaultBackend):
        def get_certificate(self, ca_arn: str, certificate_arn: str):  # type: ignore[no-untyped-def]
            raise RuntimeError("a bug")

    report = tmp_path / "report.json"
    with pytest.raises(RuntimeError):
        run(tmp_path, Broken(), make_entries(tmp_path, 3), ApplyOptions(report=report, concurrency=1))
    data = json.loads(report.read_text())
    schema.validator(schema.REPORT).validate(data)
    assert data["summary"]["total"] == 3
    records, _ = read_journal(tmp_path / ".pca-batch" / "journal.jsonl")
    # Every ARN that reached the journal is in the report, though the entries did not finish:
    # those entries failed (their files were not written); the others were skipped.
    assert {r.certificate_arn for r in records} == {
        r["certificate_arn"] for r in data["results"] if r["certificate_arn"]
    }
    assert records
    for r in data["results"]:
        expected = ("failed", "Interrupted") if r["certificate_arn"] else ("skipped", "Interrupted")
        assert (r["status"], r["error"]["code"]) == expected


def test_settings_resolve_command_line_over_manifest_over_defaults(tmp_path: Path) -> None:
    plain = manifest(tmp_path, [])
    assert resolve_config(*_of(plain), ApplyOptions()).concurrency == 256  # local: batches of 128
    assert resolve_config(*_of(manifest(tmp_path, [], backend="aws")), ApplyOptions()).concurrency == 32
    assert resolve_config(*_of(plain), ApplyOptions()).max_attempts == 8
    assert resolve_config(*_of(plain), ApplyOptions()).max_rate is None  # local: unlimited
    assert not resolve_config(*_of(plain), ApplyOptions()).adaptive  # and no quota to learn
    aws = _of(manifest(tmp_path, [], backend="aws"))
    assert resolve_config(*aws, ApplyOptions()).max_rate == 200  # a ceiling; the rate is learned below it
    assert resolve_config(*aws, ApplyOptions()).adaptive
    assert resolve_config(*aws, ApplyOptions()).concurrency == 32  # waiting for answers: more in flight
    assert resolve_config(*aws, ApplyOptions(max_rate=0)).max_rate is None
    assert resolve_config(*aws, ApplyOptions(max_rate=0)).adaptive  # 0 lifts the ceiling, not the adaptation
    assert resolve_config(*aws, ApplyOptions()).throttle_timeout == 900
    assert resolve_config(*aws, ApplyOptions(throttle_timeout=0)).throttle_timeout == 0
    timed = _of(manifest(tmp_path, [], backend="aws", settings=RunSettings(throttle_timeout=90)))
    assert resolve_config(*timed, ApplyOptions()).throttle_timeout == 90  # the manifest's settings
    assert resolve_config(*timed, ApplyOptions(throttle_timeout=5)).throttle_timeout == 5  # the command line wins
    assert resolve_config(*timed, ApplyOptions(throttle_timeout=0)).throttle_timeout == 0  # 0 is a value, not unset
    assert resolve_config(*_of(plain), ApplyOptions(max_rate=5)).max_rate == 5
    configured = manifest(tmp_path, [], backend="aws",
                          settings=RunSettings(concurrency=4, max_rate=10, max_attempts=3))
    got = resolve_config(*_of(configured), ApplyOptions())
    assert (got.concurrency, got.max_rate, got.max_attempts) == (4, 10, 3)
    got = resolve_config(*_of(configured), ApplyOptions(concurrency=2, max_rate=7, max_attempts=5, fail_fast=True))
    assert (got.concurrency, got.max_rate, got.max_attempts, got.fail_fast) == (2, 7, 5, True)


def test_only_valid_entries_run(tmp_path: Path) -> None:
    from pca_batch.errors import Problem

    broken = Entry(name="broken", index=1, line=20, request=None, token=None, csr=None,
                   outputs=make_entry(tmp_path, "x").outputs,
                   problems=(Problem("m.yaml", 20, "broken", "$", "bad"),))
    code, _, report = run(tmp_path, FaultBackend(), [make_entry(tmp_path, "ok"), broken])
    assert code == 0 and [r["name"] for r in report["results"]] == ["ok"]
    assert CA_ARN in report["results"][0]["certificate_arn"]


def _fail_durability(monkeypatch: pytest.MonkeyPatch, where: str, folder: Path) -> None:
    """Make pca-batch's flushes of ``folder``'s files fail with EIO, at one point of the run."""
    real_fsync = os.fsync
    of_folder = where == "fsync of the folder, at the end of the run"

    def fsync(fd: int) -> None:
        at = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if (at == folder) if of_folder else (at.parent == folder):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("where", ["fsync of the contents", "fsync of the folder, at the end of the run"])
def test_outputs_that_cannot_be_made_durable_fail_their_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:

    backend = FaultBackend()
    entries = [make_entry(tmp_path, "kept"), make_entry(tmp_path, "lost", index=1)]
    code, _, report = run(tmp_path, backend, entries)
    assert code == 0
    for path in (tmp_path / "out").glob("lost*"):
        path.unlink()
    _fail_durability(monkeypatch, where, tmp_path / "out")

    code, out, report = run(tmp_path, backend, entries)

    assert code == 1
    kept, lost = report["results"]
    assert kept["status"] == "unchanged" and kept["error"] is None  # it wrote nothing: nothing to fail
    assert lost["status"] == "failed" and lost["error"]["code"] == "OutputWriteError"
    assert "Input/output error" in lost["error"]["message"]
    assert lost["certificate_arn"] in backend.issued  # the ARN, for the next run to fetch
    assert report["summary"]["failed"] == 1 and report["summary"]["unchanged"] == 1
    assert "failed    lost  OutputWriteError: " in out
    assert out.splitlines()[-1].startswith("2 entries, 1 unchanged, 1 failed in ")
    assert sum(backend.issue_calls.values()) == 2  # nothing issued again


def key_manifest(root: Path, names: list[str]) -> Manifest:
    """Entries whose keys and CSRs pca-batch makes (``key:`` blocks), loaded as apply loads them."""
    from pca_batch.manifest.load import load_manifest

    lines = ["version: 1", "backend: {type: local, store: store}", "defaults:",
             f"  CertificateAuthorityArn: {CA_ARN}", "  SigningAlgorithm: SHA256WITHECDSA",
             "  Validity: {Value: 30, Type: DAYS}", "certificates:"]
    for name in names:
        lines += [f"  - name: {name}",
                  f"    key: {{subject: {{CommonName: {name}.example}}, dns_names: [{name}.example]}}",
                  f"    output: {{certificate: out/{name}.pem, private_key: out/{name}.key}}"]
    (root / "m.yaml").write_text("\n".join(lines) + "\n")
    return load_manifest(str(root / "m.yaml"))


def refuse(name: str, *, after: Callable[[], object] = lambda: None) -> Callable[[Mapping[str, Any]], None]:
    """A before_issue hook: the CA refuses ``name``'s request (after ``after()``)."""
    from cryptography import x509

    def hook(request: Mapping[str, Any]) -> None:
        csr = x509.load_pem_x509_csr(bytes(request["Csr"]))
        if csr.subject.rfc4514_string() == f"CN={name}.example":
            after()
            raise BackendError("InvalidArgsException", "injected refusal", status=400)

    return hook


def test_after_fail_fast_no_entry_makes_a_key_a_file_or_a_call(tmp_path: Path) -> None:
    names = ["bad", *(f"k{i:02d}" for i in range(12))]
    # The refusal comes after a moment, so that the entries behind it are queued by then.
    backend = FaultBackend(before_issue=refuse("bad", after=lambda: time.sleep(0.2)))
    out = io.StringIO()
    options = ApplyOptions(fail_fast=True, concurrency=1, report=tmp_path / "r.json")
    code = execute(key_manifest(tmp_path, names), options, Console(file=out, width=100, color_system=None),
                   backend=backend, env={})
    assert code == 1
    report = json.loads((tmp_path / "r.json").read_text())
    results = {r["name"]: r for r in report["results"]}
    assert results["bad"]["status"] == "failed"
    # With one call slot, an entry could only have run had it taken the slot before "bad" did.
    ran = [name for name in names[1:] if results[name]["status"] == "issued"]
    assert len(ran) <= 1
    for name in set(names[1:]) - set(ran):
        assert results[name]["status"] == "skipped" and results[name]["error"]["code"] == "FailFast"
        assert not (tmp_path / "out" / f"{name}.key.pending").exists(), f"{name} made a key after the stop"
        assert not (tmp_path / "out" / f"{name}.key").exists() and not (tmp_path / "out" / f"{name}.pem").exists()
    assert [op for op, _ in backend.calls].count("IssueCertificate") == 1 + len(ran)


def test_after_an_interrupt_no_entry_makes_a_key_a_file_or_a_call(tmp_path: Path) -> None:
    names = [f"k{i:02d}" for i in range(12)]
    holder: list[Runner] = []
    original = Runner.run

    def keep(self: Runner, *args: Any, **kwargs: Any) -> list[Result]:
        holder.append(self)
        return original(self, *args, **kwargs)

    def interrupt(request: Mapping[str, Any]) -> None:
        holder[0].request_stop()
        time.sleep(0.2)  # the entries behind it are queued by now

    backend = FaultBackend(before_issue=interrupt)
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Runner, "run", keep)
        code = execute(key_manifest(tmp_path, names), ApplyOptions(concurrency=1, report=tmp_path / "r.json"),
                       Console(file=out, width=100, color_system=None), backend=backend, env={})
    assert code == 130
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    # The entry whose call the stop came during: issued, its files not written.
    cut = [r for r in results if r["status"] == "failed"]
    assert len(cut) == 1 and cut[0]["error"]["code"] == "Interrupted" and cut[0]["certificate_arn"] in backend.issued
    for r in results:
        if r is not cut[0]:
            assert r["status"] == "skipped" and r["error"]["code"] == "Interrupted"
            assert not (tmp_path / "out" / f"{r['name']}.key.pending").exists(), f"{r['name']} made a key"
    assert sum(backend.issue_calls.values()) == 1
