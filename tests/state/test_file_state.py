"""The file state: today's journal, with flock locks beside it, `state list`, `state unlock`,
`state compact`, and a `state:` block that moves it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pca_batch.model import Shard
from pca_batch.state import StateError, state_from_url
from pca_batch.state.base import conflicts, scope_of
from tests.support.common import REPO, Cli, make_csr_pem

CA = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/0b0b0b0b-1111-4222-8333-555555555555"
HOLD = ("import sys; from pathlib import Path; from pca_batch.state.filestate import FileState; "
        "s = FileState(Path(sys.argv[1])); lock = s.acquire('apply', sys.argv[2], None); "
        "print(lock.id, flush=True); sys.stdin.read()")


def manifest(folder: Path, names: list[str], extra: str = "") -> Path:
    (folder / "csr").mkdir(parents=True, exist_ok=True)
    lines = ["version: 1", "backend:", "  type: local", "  authorities:",
             f"    - {{arn: {CA}, common_name: State CA, key_algorithm: EC_prime256v1}}", extra,
             "defaults:", f"  CertificateAuthorityArn: {CA}", "  SigningAlgorithm: SHA256WITHECDSA",
             "  Validity: {Value: 30, Type: DAYS}", "certificates:"]
    for name in names:
        (folder / "csr" / f"{name}.csr").write_bytes(make_csr_pem(f"{name}.example", (f"{name}.example",)))
        lines += [f"  - name: {name}", f"    Csr: file://csr/{name}.csr",
                  f"    output: {{certificate: out/{name}.pem}}"]
    path = folder / "certs.yaml"
    path.write_text("\n".join(line for line in lines if line) + "\n")
    return path


Holder = Callable[..., tuple[subprocess.Popen[bytes], str]]


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Holder]:
    """Start another process that holds the lock of a scope until its stdin closes; yields a starter."""
    started: list[subprocess.Popen[bytes]] = []

    def start(journal: Path, scope: str = "all") -> tuple[subprocess.Popen[bytes], str]:
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(journal), scope], cwd=REPO,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        started.append(proc)
        assert proc.stdout is not None
        return proc, proc.stdout.readline().decode().strip()

    yield start
    for proc in started:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()


def test_a_held_file_lock_fails_apply_and_revoke_at_once_but_not_the_plan(
    tmp_path: Path, cli: Cli, holder: Holder
) -> None:
    path = manifest(tmp_path, ["web", "api"])
    assert cli("apply", path).code == 0
    proc, lock_id = holder(tmp_path / ".pca-batch" / "journal.jsonl")
    for command in (("apply",), ("apply", "--prune"), ("revoke", "web", "--reason", "SUPERSEDED")):
        done = cli(command[0], path, *command[1:])
        assert done.code == 2, (command, done.out, done.err)
        assert lock_id in done.err and f"pid {proc.pid}" in done.err and "`apply`" in done.err
    plan = cli("apply", path, "--plan")
    assert plan.code == 0, plan.err
    unlock = cli("state", "unlock", path, lock_id)
    assert unlock.code == 2 and "stop that run instead" in unlock.err

    # a CI job that was refused still leaves its reports: every entry skipped, saying why
    refused = cli("apply", path, "--report", tmp_path / "r.json", "--junit", tmp_path / "junit.xml")
    assert refused.code == 2 and "Traceback" not in refused.err
    report = json.loads((tmp_path / "r.json").read_text())
    assert [(r["name"], r["status"], r["error"]["code"]) for r in report["results"]] == [
        ("web", "skipped", "StateLocked"), ("api", "skipped", "StateLocked")]
    assert all(lock_id in r["error"]["message"] for r in report["results"])
    assert report["summary"]["skipped"] == 2
    junit = (tmp_path / "junit.xml").read_text()
    assert junit.count("<skipped") == 2 and "StateLocked" in junit


def test_lock_timeout_waits_for_the_holder(tmp_path: Path, holder: Holder) -> None:
    path = manifest(tmp_path, ["web"])
    proc, _ = holder(tmp_path / ".pca-batch" / "journal.jsonl")
    waiter = subprocess.Popen([sys.executable, "-m", "pca_batch", "apply", str(path), "--lock-timeout", "60s"],
                              cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None
    proc.stdin.close()  # the holder ends whenever; the waiter gets the lock then
    out, err = waiter.communicate(timeout=120)
    assert waiter.returncode == 0, out + err
    assert "issued    web" in out


def test_shards_of_one_split_lock_apart_and_the_whole_manifest_waits_for_them(
    tmp_path: Path, cli: Cli, holder: Holder
) -> None:
    path = manifest(tmp_path, [f"svc{i}" for i in range(6)])
    _, lock_id = holder(tmp_path / ".pca-batch" / "journal.jsonl", "shard-1-of-2")
    assert cli("apply", path, "--shard", "2/2").code == 0
    same = cli("apply", path, "--shard", "1/2")
    assert same.code == 2 and lock_id in same.err and "shard-1-of-2" in same.err
    whole = cli("apply", path)
    assert whole.code == 2 and lock_id in whole.err


def test_scopes() -> None:
    assert scope_of(None) == "all" and scope_of(Shard(2, 4)) == "shard-2-of-4"
    assert conflicts("all", "shard-1-of-4") and conflicts("shard-1-of-4", "shard-1-of-4")
    assert not conflicts("shard-1-of-4", "shard-2-of-4")
    assert conflicts("shard-1-of-4", "shard-1-of-3")  # other splits overlap


def test_state_list_compact_and_a_state_block(tmp_path: Path, cli: Cli) -> None:
    path = manifest(tmp_path, ["web", "api"], extra="state: {type: file, path: state/certs.jsonl}")
    assert cli("apply", path).code == 0
    assert (tmp_path / "state" / "certs.jsonl").is_file() and not (tmp_path / ".pca-batch" / "journal.jsonl").exists()
    listed = json.loads(cli("state", "list", path, "--json").out)
    assert listed["state"] == str(tmp_path / "state" / "certs.jsonl")
    assert [(r["entry"], r["status"]) for r in listed["certificates"]] == [("api", "current"), ("web", "current")]
    for _ in range(3):
        assert cli("apply", path, "--force").code == 0
    done = cli("state", "compact", path)
    assert done.code == 0 and "4 record(s) kept, 4 moved to" in done.out, done.out
    assert len(list((tmp_path / "state" / "archive").glob("certs-*.jsonl"))) == 1
    again = cli("apply", path, "--plan", "--report", tmp_path / "plan.json")
    assert again.code == 0
    assert {r["action"] for r in json.loads((tmp_path / "plan.json").read_text())["results"]} == {"unchanged"}
    other = cli("state", "list", path, "--state", f"file://{tmp_path / 'nothing.jsonl'}")
    assert other.code == 0 and "0 certificate(s) on record" in other.out


@pytest.mark.parametrize("url, says", [
    ("s3://", "no bucket"), ("s3://b", "no object key"), ("s3://b/dir/", "no object key"),
    ("file://", "needs a path"), ("https://x/y", "expected file://PATH or s3://BUCKET/KEY"),
])
def test_state_urls_that_do_not_read(url: str, says: str) -> None:
    with pytest.raises(StateError, match=says):
        state_from_url(url)


def test_state_url_forms() -> None:
    assert state_from_url("s3://bucket/ci/certs.state").key == "ci/certs.state"
    assert state_from_url("file:///tmp/x.jsonl").path == Path("/tmp/x.jsonl")


def test_a_lock_says_which_ci_job_holds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from pca_batch.state.base import LockInfo

    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/certs")
    assert LockInfo.new("apply", "p", "all").who.endswith(", https://github.com/acme/certs/actions/runs/42")
    monkeypatch.delenv("GITHUB_RUN_ID")
    monkeypatch.setenv("CI_JOB_URL", "https://gitlab.example/acme/certs/-/jobs/7")
    info = LockInfo.new("apply", "p", "all")
    assert info.who.endswith(", https://gitlab.example/acme/certs/-/jobs/7")
    assert LockInfo.from_json(info.to_json().encode(), "p") == info


def test_a_state_that_cannot_be_read_is_exit_1_for_a_plan_with_detailed_exitcode(tmp_path: Path, cli: Cli) -> None:
    path = manifest(tmp_path, ["web"])
    plain = cli("apply", path, "--plan", "--state", "s3:///x")
    assert plain.code == 2 and "no bucket" in plain.err
    detailed = cli("apply", path, "--plan", "--detailed-exitcode", "--state", "s3:///x")
    assert detailed.code == 1 and "no bucket" in detailed.err  # 2 would say "changes pending"
