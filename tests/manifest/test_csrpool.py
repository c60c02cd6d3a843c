from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pca_batch.manifest import csrpool
from pca_batch.plan import tokens
from tests.support.common import CORPUS, Cli

REQUEST = {"SigningAlgorithm": "SHA256WITHECDSA", "Validity": {"Value": 30, "Type": "DAYS"}}


def _flat(outcomes: list[csrpool.Outcome]) -> list[object]:
    return [o if isinstance(o, str) else (o.pem, o.info.key_algorithm, o.token) for o in outcomes]


@pytest.mark.parametrize("busy", [False, True], ids=["one thread: fork", "threads: spawn"])
def test_pool_and_inline_agree(tmp_path: Path, busy: bool) -> None:
    good = (CORPUS / "csr" / "ec256.csr").read_bytes()
    bad = (CORPUS / "csr" / "altered.csr").read_bytes()
    (tmp_path / "good.csr").write_bytes(good)
    jobs: list[csrpool.Job] = []
    body = tokens.canonical_without_csr(REQUEST)
    for i in range(csrpool.POOL_THRESHOLD + 50):
        source: csrpool.Source = bad if i % 7 == 0 else str(tmp_path / "good.csr") if i % 2 else good
        jobs.append(csrpool.Job(source, f"e{i}", body) if i % 3 else csrpool.Job(source))
    jobs[13] = csrpool.Job(str(tmp_path / "missing.csr"))
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    if busy:
        other.start()
    try:
        pooled = csrpool.CsrChecker(len(jobs))
    finally:
        stop.set()
    assert pooled._workers, "a pool of at least one worker on this machine"
    method = "spawn" if threading.active_count() > 1 or busy else "fork"
    assert type(pooled._workers[0].process).__name__.lower().startswith(method)
    inline = csrpool.CsrChecker(1)
    for job in jobs:
        pooled.add(*job)
        inline.add(*job)
    a, b = pooled.results(), inline.results()
    assert len(a) == len(b) == len(jobs)
    assert _flat(a) == _flat(b)
    assert isinstance(a[0], str) and "signature" in a[0]
    assert isinstance(a[13], str) and "does not exist" in a[13]
    one, two = a[1], a[3]
    assert isinstance(one, csrpool.Checked) and isinstance(two, csrpool.Checked)
    assert one.pem == good.decode().strip() + "\n" and one.info.key_algorithm == "EC_prime256v1"
    assert one.info.subject  # read lazily from the PEM the worker sent back
    assert one.token == tokens.derive("e1", {**REQUEST, "Csr": one.pem}) and two.token is None


def test_a_worker_that_dies_costs_nothing() -> None:
    good = (CORPUS / "csr" / "ec256.csr").read_bytes()
    checker = csrpool.CsrChecker(csrpool.POOL_THRESHOLD)
    for _ in range(csrpool.BATCH * 2):
        checker.add(good)
    for worker in checker._workers:
        worker.process.kill()
        worker.process.join()
    for _ in range(csrpool.BATCH * 3 + 7):
        checker.add(good)
    out = checker.results()
    assert len(out) == csrpool.BATCH * 5 + 7 and all(isinstance(o, csrpool.Checked) for o in out)


def test_the_prefetch_guesses_from_the_text_and_never_changes_an_outcome(tmp_path: Path) -> None:
    good = (CORPUS / "csr" / "ec256.csr").read_bytes()
    bad = (CORPUS / "csr" / "altered.csr").read_bytes()
    (tmp_path / "csr").mkdir()
    lines = ["certificates:"]
    for i in range(csrpool.POOL_THRESHOLD):
        (tmp_path / "csr" / f"{i}.csr").write_bytes(bad if i % 5 == 0 else good)
        quote = '"' if i % 2 else ""
        lines += [f"  - name: e{i}", f"    Csr: {quote}file://csr/{i}.csr{quote}  # comment"]
    lines += ["  - {name: x, Csr: 'file://${HOME}/x.csr'}", "# Csr: file://csr/never.csr", "    Csr: fileb://./csr/0.csr"]
    manifest = tmp_path / "m.yaml"
    manifest.write_text("\n".join(lines) + "\n")
    paths = csrpool.prefetch_paths(manifest.read_bytes(), str(tmp_path))
    assert paths[:2] == [str(tmp_path / "csr" / "0.csr"), str(tmp_path / "csr" / "1.csr")]
    assert len(paths) == csrpool.POOL_THRESHOLD  # deduplicated; no ${VAR}, no comment line

    checker = csrpool.CsrChecker(csrpool.POOL_THRESHOLD, manifest=manifest.read_bytes(), root=str(tmp_path))
    # a file changed after the workers may have read it ahead: the outcome is the one of what was read
    asked = [str(tmp_path / "csr" / f"{i}.csr") for i in range(csrpool.POOL_THRESHOLD)] + [str(tmp_path / "other.csr")]
    (tmp_path / "other.csr").write_bytes(good)
    for path in asked:
        checker.add(path)
    out = checker.results()
    assert [isinstance(o, str) for o in out] == [i % 5 == 0 for i in range(csrpool.POOL_THRESHOLD)] + [False]


def test_large_manifest_reports_bad_csr_at_its_line(tmp_path: Path, cli: Cli) -> None:
    from tests.support.common import CA_ARN

    (tmp_path / "good.csr").write_bytes((CORPUS / "csr" / "ec256.csr").read_bytes())
    (tmp_path / "bad.csr").write_bytes((CORPUS / "csr" / "altered.csr").read_bytes())
    lines = [
        "version: 1",
        "defaults:",
        f"  CertificateAuthorityArn: {CA_ARN}",
        "  SigningAlgorithm: SHA256WITHECDSA",
        "  Validity: {Value: 1, Type: DAYS}",
        "certificates:",
    ]
    for i in range(csrpool.POOL_THRESHOLD + 10):
        lines += [f"  - name: e{i}", f"    Csr: file://{'bad' if i == 321 else 'good'}.csr"]
    (tmp_path / "m.yaml").write_text("\n".join(lines) + "\n")
    result = cli("validate", tmp_path / "m.yaml")
    assert result.code == 2
    assert result.err.splitlines()[0] == (
        f"{tmp_path / 'm.yaml'}:{7 + 2 * 321 + 1}: e321: $.Csr: "
        "the CSR's signature does not verify (was it altered after signing?)"
    )


def test_an_entry_checked_keeps_every_other_field() -> None:
    import dataclasses

    from pca_batch.errors import Problem
    from pca_batch.model import CsrInfo, Entry, Outputs

    values = {
        "name": "n",
        "index": 3,
        "line": 9,
        "request": {"Csr": "x"},
        "token": None,
        "csr": None,
        "outputs": Outputs(certificate=Path("c.pem")),
        "problems": (Problem("f", 1, "n", "$", "m"),),
        "key": object(),
        "renew_before": "30d",
        "explicit_token": True,
        "revoke_replaced": "SUPERSEDED",
    }
    assert set(values) == {f.name for f in dataclasses.fields(Entry)}, "a new field: give it a value here"
    entry = Entry(**values)  # type: ignore[arg-type]
    info = CsrInfo("CN=a", (), "EC_prime256v1", "00")
    assert entry.checked(info, "tok") == dataclasses.replace(entry, csr=info, token="tok")


def test_ctrl_c_while_workers_check_gives_exit_130_and_leaves_no_process(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.support.common import CA_ARN

    (tmp_path / "good.csr").write_bytes((CORPUS / "csr" / "ec256.csr").read_bytes())
    lines = ["version: 1", "defaults:", f"  CertificateAuthorityArn: {CA_ARN}", "  SigningAlgorithm: SHA256WITHECDSA"]
    lines += ["  Validity: {Value: 1, Type: DAYS}", "certificates:"]
    for i in range(20_000):
        lines += [f"  - name: e{i}", "    Csr: file://good.csr"]
    (tmp_path / "m.yaml").write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pca_batch", "validate", str(tmp_path / "m.yaml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as a terminal's Ctrl-C reaches
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until the worker process is there
        group = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
        if len(group) >= 2:
            break
        time.sleep(0.02)
    time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert err.decode().strip() == "pca-batch: interrupted"
    time.sleep(0.2)
    left = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout
    assert left == "", "a worker process outlived the interrupted run"


def test_csr_info_equality_does_not_depend_on_what_was_read_yet() -> None:
    pem = (CORPUS / "csr" / "ec256.csr").read_text()
    read, unread = csrpool.check_one(csrpool.Job(pem.encode())), csrpool.check_one(csrpool.Job(pem.encode()))
    assert isinstance(read, csrpool.Checked) and isinstance(unread, csrpool.Checked)
    assert read.info.subject  # read one of them, lazily, from its PEM
    assert read.info == unread.info and hash(read.info) == hash(unread.info)
    other = csrpool.check_one(csrpool.Job((CORPUS / "csr" / "rsa2048.csr").read_bytes()))
    assert isinstance(other, csrpool.Checked) and other.info != read.info
