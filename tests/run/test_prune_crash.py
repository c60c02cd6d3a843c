"""A real `apply --prune` killed with SIGKILL in the middle of its revocations, then run again:
every orphan revoked exactly once (journal and CA agree), its files gone, the rest untouched."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.run.test_runner_acceptance import CA, audit, env, write_manifest


def revoked_lines(folder: Path) -> list[dict[str, str]]:
    text = (folder / ".pca-batch" / "journal.jsonl").read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]
    return [r for r in lines if r.get("event") == "revoked"]


def test_sigkill_during_prune_then_a_rerun_revokes_every_orphan_once_and_removes_its_files(tmp_path: Path) -> None:
    names = [f"svc{i:03d}" for i in range(300)]
    kept = names[:5]
    manifest = write_manifest(tmp_path, names)
    first = subprocess.run([sys.executable, "-m", "pca_batch", "apply", str(manifest)], cwd=tmp_path, env=env(),
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    write_manifest(tmp_path, kept)

    proc = subprocess.Popen(
        [sys.executable, "-m", "pca_batch", "apply", str(manifest), "--prune", "--max-rate", "100",
         "--concurrency", "4"],
        cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120  # a bound on waiting, not a timing assertion
    while len(revoked_lines(tmp_path)) < 20:
        assert proc.poll() is None, f"the prune ended before it could be killed: {proc.communicate()}"
        assert time.monotonic() < deadline, "the prune made no progress"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert 20 <= len(revoked_lines(tmp_path)) < len(names) - len(kept)  # really stopped midway

    plan = subprocess.run([sys.executable, "-m", "pca_batch", "apply", str(manifest), "--prune", "--plan",
                           "--detailed-exitcode"], cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120)
    assert plan.returncode == 2 and "to revoke (no longer in the manifest)" in plan.stdout

    again = subprocess.run([sys.executable, "-m", "pca_batch", "apply", str(manifest), "--prune"],
                           cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr

    orphans = set(names) - set(kept)
    lines = revoked_lines(tmp_path)
    assert Counter(r["name"] for r in lines) == Counter({n: 1 for n in orphans})  # each once, none forgotten
    assert {r["reason"] for r in lines} == {"CESSATION_OF_OPERATION"}
    issued = {item["subject"]: item for item in audit(tmp_path)}
    for name in names:
        item = issued[f"CN={name}.example"]
        assert (item["revocationReason"] == "CESSATION_OF_OPERATION") == (name in orphans), name
    assert {r["certificate_arn"] for r in lines} == {
        issued[f"CN={n}.example"]["certificateArn"] for n in orphans
    }
    left = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert left == sorted(f"{n}{suffix}" for n in kept for suffix in (".pem", ".chain.pem", ".full.pem"))

    done = subprocess.run([sys.executable, "-m", "pca_batch", "apply", str(manifest), "--prune", "--plan",
                           "--detailed-exitcode"], cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout
    assert CA in first.stdout
