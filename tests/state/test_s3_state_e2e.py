"""The s3 state end to end, over real HTTP: pca-batch against moto's server for S3 and, through
the fault proxy (which counts the calls), for acm-pca. Runners are folders: a fresh one has no
``.pca-batch/``, only what CI would check out (the manifest and its CSRs) and maybe the outputs."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography import x509

from pca_batch.model import Shard, StateConfig
from pca_batch.plan.shards import in_shard
from pca_batch.run.journal import JournalRecord
from pca_batch.state.s3state import S3State
from tests.support.common import Cli
from tests.support.fault_proxy import FaultProxy
from tests.support.moto_server import (
    REPO,
    AwsEntry,
    apply_env,
    create_active_ca,
    serial_certificate_arns,
    write_aws_manifest,
)

pytestmark = pytest.mark.usefixtures("aws_env")
BUCKET = "pca-batch-state"
STATE = f"s3://{BUCKET}/ci/certs.state"


@pytest.fixture(scope="module")
def s3(moto: str) -> Iterator[Any]:
    client = boto3.client("s3", endpoint_url=moto, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield client
    client.close()


@pytest.fixture
def fresh_state(s3: Any) -> Iterator[str]:
    """An empty state (each test starts from none)."""
    yield STATE
    names = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
             for o in page.get("Contents", ())]
    for name in names:
        s3.delete_object(Bucket=BUCKET, Key=name)


@pytest.fixture
def s3_env(moto: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """S3 goes to moto by the standard variable; acm-pca goes wherever the manifest says (the proxy).
    moto's certificate ARNs end in their serial, as AWS's do."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto)
    serial_certificate_arns(monkeypatch)
    return apply_env({"AWS_ENDPOINT_URL_S3": moto, "PYTHONPATH": str(REPO)})


@pytest.fixture
def proxy(moto: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto) as p:
        yield p


@dataclass(frozen=True)
class Rig:
    moto: str  # S3 and acm-pca, straight
    proxy: FaultProxy  # acm-pca, counted
    env: dict[str, str]  # for a pca-batch subprocess
    s3: Any
    state: str  # an empty s3 state


@pytest.fixture
def rig(moto: str, proxy: FaultProxy, s3_env: dict[str, str], s3: Any, fresh_state: str) -> Rig:
    return Rig(moto, proxy, s3_env, s3, fresh_state)


def entries(ca: str, n: int, prefix: str = "svc") -> list[AwsEntry]:
    return [AwsEntry(f"{prefix}{i:02d}", ca) for i in range(n)]


def report(path: Path) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in json.loads(path.read_text())["results"]}


def runner_copy(source: Path, target: Path, *, outputs: bool) -> Path:
    """What a fresh CI runner has: the manifest and CSRs (and the outputs, from an artifact or cache)."""
    target.mkdir(parents=True)
    shutil.copy(source / "manifest.yaml", target / "manifest.yaml")
    shutil.copytree(source / "csr", target / "csr")
    if outputs:
        shutil.copytree(source / "out", target / "out")
    return target / "manifest.yaml"


def pca_batch(env: dict[str, str], *args: str | Path, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pca_batch", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = proc.communicate(timeout=180)
    return proc.returncode, out + err


def wait_for(condition: Any, what: str, seconds: float = 60) -> None:
    """Until ``condition()`` (a state to reach, not a time to wait)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def objects(s3: Any, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", ())]


def issued_at_ca(ca_arn: str) -> Counter[str]:
    """Per subject CN, how many certificates moto's CA (in this process) issued."""
    from moto.acmpca.models import acmpca_backends

    _, _, _, region, account, _ = ca_arn.split(":", 5)
    ca = acmpca_backends[account][region].certificate_authorities[ca_arn]
    names: Counter[str] = Counter()
    for pem in ca.issued_certificates.values():
        cert = x509.load_pem_x509_certificate(pem if isinstance(pem, bytes) else pem.encode())
        names[cert.subject.rfc4514_string()] += 1
    return names


def test_a_fresh_runner_with_the_outputs_makes_no_call_and_without_them_only_fetches(
    tmp_path: Path, rig: Rig, cli: Cli
) -> None:
    ca = create_active_ca(rig.moto, "us-east-1", "state fresh runner")
    first, _ = write_aws_manifest(tmp_path / "one", rig.proxy.endpoint, entries(ca, 6))
    done = cli("apply", first, "--state", rig.state, "--report", tmp_path / "r1.json")
    assert done.code == 0, done.err
    assert {r["status"] for r in report(tmp_path / "r1.json").values()} == {"issued"}
    assert not (tmp_path / "one" / ".pca-batch").exists()  # the state is in S3 only

    rig.proxy.reset_stats()
    again = runner_copy(tmp_path / "one", tmp_path / "two", outputs=True)
    done = cli("apply", again, "--state", rig.state, "--report", tmp_path / "r2.json")
    assert done.code == 0, done.err
    assert {r["status"] for r in report(tmp_path / "r2.json").values()} == {"unchanged"}
    calls = rig.proxy.snapshot()["calls"]
    assert calls.get("IssueCertificate", 0) == 0 and calls.get("GetCertificate", 0) == 0

    rig.proxy.reset_stats()
    bare = runner_copy(tmp_path / "one", tmp_path / "three", outputs=False)
    done = cli("apply", bare, "--state", rig.state, "--report", tmp_path / "r3.json")
    assert done.code == 0, done.err
    rows = report(tmp_path / "r3.json")
    assert {r["status"] for r in rows.values()} == {"recovered"}
    calls = rig.proxy.snapshot()["calls"]
    assert calls.get("IssueCertificate", 0) == 0 and calls["GetCertificate"] == 6
    for name, row in rows.items():
        assert (tmp_path / "three" / "out" / f"{name}.pem").read_text() == \
            (tmp_path / "one" / "out" / f"{name}.pem").read_text()
        assert row["certificate_arn"] == report(tmp_path / "r1.json")[name]["certificate_arn"]


def test_the_manifests_state_block_and_state_list(
    tmp_path: Path, rig: Rig, cli: Cli
) -> None:
    ca = create_active_ca(rig.moto, "us-east-1", "state block")
    manifest, _ = write_aws_manifest(tmp_path, rig.proxy.endpoint, entries(ca, 3))
    text = manifest.read_text().replace(
        "certificates:", f"state: {{type: s3, bucket: {BUCKET}, key: ci/certs.state, region: us-east-1, "
        f"endpoint_url: '{rig.moto}'}}\ncertificates:")
    manifest.write_text(text)
    assert cli("apply", manifest).code == 0
    listed = cli("state", "list", manifest, "--json")
    assert listed.code == 0, listed.err
    data = json.loads(listed.out)
    assert data["state"] == STATE
    assert [(r["entry"], r["status"]) for r in data["certificates"]] == [(f"svc{i:02d}", "current") for i in range(3)]
    table = cli("state", "list", manifest)
    assert re.search(r"^svc00 +[0-9a-f]{32,} +\d{4}-\d\d-\d\dT[\d:]+Z +current +arn:aws:acm-pca:", table.out, re.M)


def test_a_held_lock_fails_at_once_naming_its_holder_and_lock_timeout_waits_for_it(
    tmp_path: Path, rig: Rig
) -> None:
    ca = create_active_ca(rig.moto, "us-east-1", "state locks")
    manifest, _ = write_aws_manifest(tmp_path, rig.proxy.endpoint, entries(ca, 4))
    lock = "ci/certs.state.d/lock/all.json"
    holder = pca_batch(rig.env, "apply", manifest, "--state", rig.state, cwd=tmp_path)
    try:
        wait_for(lambda: objects(rig.s3, lock) or holder.poll() is not None, "the first apply's lock")
        holder.send_signal(signal.SIGSTOP)  # it holds the lock, mid-run, until we let it go on
        assert objects(rig.s3, lock), "the first apply finished before it could be caught holding its lock"
        held = json.loads(rig.s3.get_object(Bucket=BUCKET, Key=lock)["Body"].read())
        assert set(held) >= {"ID", "Operation", "Who", "Version", "Created", "Path"}

        code, text = finish(pca_batch(rig.env, "apply", manifest, "--state", rig.state, cwd=tmp_path))
        assert code == 2, text
        assert held["ID"] in text and f"pid {holder.pid}" in text and "`apply`" in text and held["Created"] in text
        assert "Traceback" not in text

        waiter = pca_batch(rig.env, "apply", manifest, "--state", rig.state, "--lock-timeout", "60s",
                           "--report", tmp_path / "waited.json", cwd=tmp_path)
        holder.send_signal(signal.SIGCONT)
        assert finish(holder)[0] == 0
        code, text = finish(waiter)
        assert code == 0, text
        assert {r["status"] for r in report(tmp_path / "waited.json").values()} == {"unchanged"}
        assert objects(rig.s3, "ci/certs.state.d/lock/") == []
    finally:
        if holder.poll() is None:
            holder.send_signal(signal.SIGCONT)
            holder.kill()


def test_a_lock_left_by_a_killed_run_is_removed_with_state_unlock(
    tmp_path: Path, rig: Rig, cli: Cli
) -> None:
    ca = create_active_ca(rig.moto, "us-east-1", "state unlock")
    manifest, _ = write_aws_manifest(tmp_path, rig.proxy.endpoint, entries(ca, 2))
    state = S3State(StateConfig(type="s3", bucket=BUCKET, key="ci/certs.state"))
    left = state.acquire("apply", "all", None)  # as a run killed while it held the lock leaves it
    refused = cli("apply", manifest, "--state", rig.state)
    assert refused.code == 2 and left.id in refused.err and "state unlock" in refused.err
    assert rig.proxy.snapshot()["calls"].get("IssueCertificate", 0) == 0

    wrong = cli("state", "unlock", manifest, "not-a-lock-id", "--state", rig.state)
    assert wrong.code == 2 and left.id in wrong.err
    removed = cli("state", "unlock", manifest, left.id, "--state", rig.state)
    assert removed.code == 0 and left.id in removed.out
    assert cli("apply", manifest, "--state", rig.state).code == 0
    state.close()


def test_four_shards_at_once_on_one_state_then_a_whole_run_finds_everything_unchanged(
    tmp_path: Path, rig: Rig, cli: Cli
) -> None:
    ca = create_active_ca(rig.moto, "us-east-1", "state shards")
    wanted = entries(ca, 16)
    manifest, _ = write_aws_manifest(tmp_path, rig.proxy.endpoint, wanted)
    shards = [pca_batch(rig.env, "apply", manifest, "--state", rig.state, "--shard", f"{k}/4",
                        "--report", tmp_path / f"shard{k}.json", cwd=tmp_path) for k in range(1, 5)]
    for k, proc in enumerate(shards, start=1):
        code, text = finish(proc)
        assert code == 0, text
        assert set(report(tmp_path / f"shard{k}.json")) == {e.name for e in wanted if in_shard(e.name, Shard(k, 4))}

    done = cli("apply", manifest, "--state", rig.state, "--report", tmp_path / "all.json")
    assert done.code == 0, done.err
    assert {r["status"] for r in report(tmp_path / "all.json").values()} == {"unchanged"}
    listed = json.loads(cli("state", "list", manifest, "--state", rig.state, "--json").out)["certificates"]
    assert sorted(r["entry"] for r in listed) == sorted(e.name for e in wanted)
    assert set(rig.proxy.snapshot()["issue_forwarded"].values()) == {1}
    assert issued_at_ca(ca) - Counter({f"CN={e.name}.example": 1 for e in wanted}) == \
        Counter({"CN=state shards,O=pca-batch tests": 1})  # and the CA's own certificate


def test_sigkill_mid_run_then_a_fresh_runner_gives_one_certificate_per_entry(
    tmp_path: Path, rig: Rig
) -> None:
    ca = create_active_ca(rig.moto, "us-east-1", "state sigkill")
    wanted = entries(ca, 24)
    manifest, _ = write_aws_manifest(tmp_path / "one", rig.proxy.endpoint, wanted)
    first = pca_batch(rig.env, "apply", manifest, "--state", rig.state, "--max-rate", "10", "--concurrency", "2",
                      cwd=tmp_path)
    wait_for(lambda: len(objects(rig.s3, "ci/certs.state.d/log/")) >= 3 or first.poll() is not None, "some records")
    first.kill()
    first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    issued_before = sum(issued_at_ca(ca).values()) - 1
    assert 0 < issued_before < len(wanted)

    fresh = runner_copy(tmp_path / "one", tmp_path / "two", outputs=False)
    code, text = finish(pca_batch(rig.env, "apply", fresh, "--state", rig.state, cwd=tmp_path / "two"))
    assert code == 2 and f"pid {first.pid}" in text, text  # the killed run's lock is still there, as Terraform's
    lock_id = re.search(r"state unlock MANIFEST (\S+)", text)
    assert lock_id is not None
    code, text = finish(pca_batch(rig.env, "state", "unlock", fresh, lock_id.group(1), "--state", rig.state,
                                  cwd=tmp_path / "two"))
    assert code == 0, text
    code, text = finish(pca_batch(rig.env, "apply", fresh, "--state", rig.state, "--report",
                                  tmp_path / "r.json", cwd=tmp_path / "two"))
    assert code == 0, text
    rows = report(tmp_path / "r.json")
    assert {r["status"] for r in rows.values()} <= {"issued", "recovered"}
    at_ca = issued_at_ca(ca)
    assert all(at_ca[f"CN={e.name}.example"] == 1 for e in wanted), at_ca
    assert sum(at_ca.values()) == len(wanted) + 1


@pytest.mark.parametrize("url, says", [
    ("s3:///certs.state", "no bucket"),
    ("s3://pca-batch-state", "no object key"),
    ("s3://no-such-bucket-here/certs.state", "the bucket no-such-bucket-here does not exist"),
    ("gs://bucket/key", "expected file://PATH or s3://BUCKET/KEY"),
])
def test_a_bad_state_url_is_exit_2_before_any_call(
    tmp_path: Path, rig: Rig, cli: Cli, url: str, says: str
) -> None:
    ca = create_active_ca(rig.moto, "us-east-1", "state bad url")
    manifest, _ = write_aws_manifest(tmp_path, rig.proxy.endpoint, entries(ca, 2))
    for command in (("apply",), ("apply", "--plan"), ("state", "list")):
        done = cli(*command, manifest, "--state", url)
        assert done.code == 2, (command, done.out, done.err)
        assert says in done.err and "Traceback" not in done.err + done.out
    refused = cli("apply", manifest, "--state", url, "--report", tmp_path / "r.json")
    assert refused.code == 2
    report = json.loads((tmp_path / "r.json").read_text())  # as after any run: every entry skipped, saying why
    assert {(r["status"], r["error"]["code"]) for r in report["results"]} == {("skipped", "StateUnavailable")}
    assert len(report["results"]) == 2 and all(says in r["error"]["message"] for r in report["results"])
    assert rig.proxy.snapshot()["calls"].get("IssueCertificate", 0) == 0


def test_no_credentials_for_the_state_is_exit_2_before_any_call(
    tmp_path: Path, rig: Rig
) -> None:
    ca = create_active_ca(rig.moto, "us-east-1", "state no credentials")
    manifest, _ = write_aws_manifest(tmp_path, rig.proxy.endpoint, entries(ca, 2))
    env = {k: v for k, v in rig.env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    code, text = finish(pca_batch(env, "apply", manifest, "--state", rig.state, cwd=tmp_path))
    assert code == 2, text
    assert f"no AWS credentials to reach the state {rig.state}" in text and "Traceback" not in text
    assert rig.proxy.snapshot()["calls"].get("IssueCertificate", 0) == 0


@pytest.mark.parametrize("key, body, says", [
    ("ci/certs.state", b"terraform state, not ours\n", "is not a pca-batch state"),
    ("ci/certs.state", b'{"format": "pca-batch-state", "version": 1, "covers": []}\n{"event": "issued", "na',
     "is damaged: line 2"),
    ("ci/certs.state", b'{"format": "pca-batch-state", "version": 7, "covers": []}\n', "of version 7"),
    ("ci/certs.state.d/log/20260101T000000000000Z-x-000001.jsonl", b"garbage\n", "is not a pca-batch state log"),
])
def test_a_state_object_that_is_not_ours_or_is_damaged_is_exit_2_and_nothing_is_issued(
    tmp_path: Path, rig: Rig, cli: Cli, key: str, body: bytes, says: str
) -> None:
    ca = create_active_ca(rig.moto, "us-east-1", "state damaged")
    manifest, _ = write_aws_manifest(tmp_path, rig.proxy.endpoint, entries(ca, 2))
    rig.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    for command in (("apply",), ("apply", "--plan", "--offline"), ("state", "list")):
        done = cli(*command, manifest, "--state", rig.state)
        assert done.code == 2, (command, done.out, done.err)
        assert says in done.err and "Traceback" not in done.err
        assert "terraform state" not in done.err  # the object's content is never echoed
    assert rig.proxy.snapshot()["calls"].get("IssueCertificate", 0) == 0
    assert not (tmp_path / "out").exists()


def test_compaction_keeps_what_the_next_run_needs(
    tmp_path: Path, rig: Rig, cli: Cli
) -> None:
    ca = create_active_ca(rig.moto, "us-east-1", "state compaction")
    manifest, _ = write_aws_manifest(tmp_path, rig.proxy.endpoint, entries(ca, 3))
    assert cli("apply", manifest, "--state", rig.state).code == 0
    assert cli("apply", manifest, "--state", rig.state, "--force").code == 0
    done = cli("state", "compact", manifest, "--state", rig.state)
    assert done.code == 0, done.err
    assert objects(rig.s3, "ci/certs.state.d/log/") == []
    assert len(objects(rig.s3, "ci/certs.state.d/archive/")) == 0  # two certificates each: nothing is history yet
    assert cli("apply", manifest, "--state", rig.state, "--force").code == 0
    done = cli("state", "compact", manifest, "--state", rig.state)
    assert "3 moved to s3://" in done.out, done.out
    archive = objects(rig.s3, "ci/certs.state.d/archive/")
    assert len(archive) == 1
    rig.proxy.reset_stats()
    fresh = runner_copy(tmp_path, tmp_path / "two", outputs=False)
    assert cli("apply", fresh, "--state", rig.state, "--report", tmp_path / "r.json").code == 0
    assert {r["status"] for r in report(tmp_path / "r.json").values()} == {"recovered"}
    assert rig.proxy.snapshot()["calls"].get("IssueCertificate", 0) == 0


def test_a_record_that_cannot_be_written_fails_its_entry_naming_the_arn(rig: Rig) -> None:
    from pca_batch.errors import BackendError
    from pca_batch.state.base import StateView

    gone = S3State(StateConfig(type="s3", bucket="no-such-bucket-here", key="certs.state"))
    recorder = gone.open_recorder(StateView(()))
    arn = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/x/certificate/0a"
    with pytest.raises(BackendError) as raised:
        recorder.record_issued(name="web", token="t", ca_arn="arn:ca", certificate_arn=arn)
    assert raised.value.code == "StateNotWritten" and arn in raised.value.message
    assert "the bucket no-such-bucket-here does not exist" in raised.value.message
    gone.close()


COMPACT = ("import sys; from pca_batch.model import StateConfig; from pca_batch.state.s3state import S3State; "
           "s = S3State(StateConfig(type='s3', bucket=sys.argv[1], key=sys.argv[2])); "
           "print('go', flush=True); s.maybe_compact(s.read(), whole=True, force=True)")


def test_an_s3_compaction_killed_at_any_moment_loses_no_record(rig: Rig) -> None:
    """A history in one log object and 40 more log objects; ``state compact`` killed after 0 to 1.2 s
    (reading, archiving, writing the snapshot, deleting, or done): the state still reads every record
    a run needs, and with the archive every record; the next compaction finishes the work."""
    from pca_batch.state import compaction
    from pca_batch.state.base import StateView
    from tests.state.test_compaction import CAS, history

    plan = [("issue", f"svc{i}", CAS[0], "certs.yaml", 0, False) for _ in range(12) for i in range(400)]
    events = history(plan)  # type: ignore[arg-type]
    kept, _ = compaction.split(events)
    header = b'{"format": "pca-batch-state-log", "version": 1}\n'
    for n, delay in enumerate([0.0, 0.1, 0.2, 0.35, 0.5, 0.8, 1.2]):
        key = f"crash/{n}.state"
        rig.s3.put_object(Bucket=BUCKET, Key=f"{key}.d/log/20260101T000000000000Z-old-000001.jsonl",
                          Body=header + compaction.lines(events[:-40]))
        state = S3State(StateConfig(type="s3", bucket=BUCKET, key=key))
        recorder = state.open_recorder(StateView(()))
        for record in events[-40:]:
            assert isinstance(record, JournalRecord)
            recorder.record_issued(name=record.name, token=record.token, ca_arn=record.ca_arn,
                                   certificate_arn=record.certificate_arn, issued=record.issued)
        proc = subprocess.Popen([sys.executable, "-c", COMPACT, BUCKET, key], env=rig.env, cwd=REPO,
                                stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline() == b"go\n"
        time.sleep(delay)  # where the kill lands varies; what must hold does not
        proc.kill()
        proc.wait()
        proc.stdout.close()
        seen = {(e.certificate_arn, e.token) for e in state.read().events if isinstance(e, JournalRecord)}
        assert {(e.certificate_arn, e.token) for e in kept if isinstance(e, JournalRecord)} <= seen
        archived: set[tuple[str, str]] = set()
        for name in objects(rig.s3, f"{key}.d/archive/"):
            body = rig.s3.get_object(Bucket=BUCKET, Key=name)["Body"].read()
            archived |= {(e.certificate_arn, e.token) for e in read_lines(body) if isinstance(e, JournalRecord)}
        assert seen | archived == {(e.certificate_arn, e.token) for e in events if isinstance(e, JournalRecord)}
        lock = S3State(StateConfig(type="s3", bucket=BUCKET, key=key))
        for held in lock.locks():  # a killed compaction's lock: taken over once stale, or removed by hand
            lock.unlock(held.id)
        lock.maybe_compact(lock.read(), whole=True, force=True)
        assert len(lock.read().events) == len(kept) and objects(rig.s3, f"{key}.d/log/") == []
        lock.close()
        state.close()


def read_lines(body: bytes) -> list[Any]:
    from pca_batch.run.journal import parse_line

    return [e for e in map(parse_line, body.splitlines()) if e is not None]


def test_revoke_records_in_the_s3_state_and_a_fresh_runner_knows_it(tmp_path: Path, cli: Cli, rig: Rig) -> None:
    ca = create_active_ca(rig.moto, "us-east-1", "state revoke")
    manifest, _ = write_aws_manifest(tmp_path / "one", rig.proxy.endpoint, entries(ca, 2))
    assert cli("apply", manifest, "--state", rig.state).code == 0
    done = cli("revoke", manifest, "svc00", "--reason", "SUPERSEDED", "--state", rig.state)
    assert done.code == 0, done.err
    fresh = runner_copy(tmp_path / "one", tmp_path / "two", outputs=True)
    rig.proxy.reset_stats()
    again = cli("revoke", fresh, "svc00", "--reason", "SUPERSEDED", "--state", rig.state)
    assert again.code == 0 and "already revoked" in again.out
    assert rig.proxy.snapshot()["calls"].get("RevokeCertificate", 0) == 0
    listed = json.loads(cli("state", "list", fresh, "--state", rig.state, "--json").out)["certificates"]
    assert [(r["entry"], r["status"]) for r in listed] == [("svc00", "revoked (SUPERSEDED)"), ("svc01", "current")]


@pytest.mark.parametrize("how", ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "profile", "state block"])
def test_the_state_finds_s3_by_every_standard_setting(tmp_path: Path, cli: Cli, rig: Rig, how: str) -> None:
    ca = create_active_ca(rig.moto, "us-east-1", f"state endpoint {how}")
    manifest, _ = write_aws_manifest(tmp_path, rig.proxy.endpoint, entries(ca, 1))
    assert cli("apply", manifest, "--state", rig.state).code == 0
    env = {k: v for k, v in rig.env.items() if k != "AWS_ENDPOINT_URL_S3"}
    url = ["--state", rig.state]
    if how == "profile":
        config = tmp_path / "aws-config"
        config.write_text(f"[default]\nendpoint_url = {rig.moto}\n")
        env["AWS_CONFIG_FILE"] = str(config)
    elif how == "state block":
        text = manifest.read_text().replace("certificates:", f"state: {{type: s3, bucket: {BUCKET}, key: "
                                            f"ci/certs.state, endpoint_url: '{rig.moto}'}}\ncertificates:")
        manifest.write_text(text)
        url = []
    else:
        env[how] = rig.moto
    code, text = finish(pca_batch(env, "state", "list", manifest, *url, "--json", cwd=tmp_path))
    assert code == 0, text
    assert [r["entry"] for r in json.loads(text)["certificates"]] == ["svc00"]
