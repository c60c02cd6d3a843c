"""`apply --prune` end to end on the local CA: what the manifest no longer lists is revoked
(CESSATION_OF_OPERATION) and its files removed; the plan shows it first; shards, other
manifests in the same folder and files that entries still write are left alone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pca_batch.model import Shard
from pca_batch.plan.shards import in_shard
from tests.support.common import CA_ARN, Cli, CsrFile
from tests.support.local_ca import openssl

HEAD = f"""\
version: 1
backend:
  type: local
  store: store
  authorities:
    - {{arn: {CA_ARN}, common_name: Prune Test CA, crl: {{url: "http://crl.example/pki"}}}}
defaults:
  CertificateAuthorityArn: {CA_ARN}
  SigningAlgorithm: SHA256WITHECDSA
  Validity: {{Value: 7, Type: DAYS}}
certificates:
"""


def entry(name: str) -> str:
    outputs = f"certificate: out/{name}.pem, full_chain: out/{name}-full.pem, chain: out/{name}-chain.pem"
    return f"  - {{name: {name}, Csr: file://csr/{name}.csr, output: {{{outputs}}}}}\n"


def key_entry(name: str) -> str:
    return (f"  - {{name: {name}, key: {{algorithm: EC_prime256v1, subject: {{CommonName: {name}.example}}}}, "
            f"output: {{certificate: out/{name}.pem, private_key: out/{name}.key}}}}\n")


def write(path: Path, names: list[str], keyed: tuple[str, ...] = ()) -> Path:
    body = "".join(key_entry(n) if n in keyed else entry(n) for n in names)
    path.write_text(HEAD + body)
    return path


def journal(folder: Path) -> list[dict[str, object]]:
    text = (folder / ".pca-batch" / "journal.jsonl").read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [r for r in lines if r["event"] != "key"]  # certificates and revocations (keys: tests/state)


def serial(folder: Path, name: str) -> str:
    lines = [r for r in journal(folder) if r["event"] == "issued" and r["name"] == name]
    return str(lines[-1]["certificate_arn"]).rsplit("/", 1)[1]


def revoked_lines(folder: Path) -> list[tuple[str, str]]:
    return sorted((str(r["name"]), str(r["reason"])) for r in journal(folder) if r["event"] == "revoked")


@pytest.fixture
def issued(tmp_path: Path, csr_file: CsrFile, cli: Cli) -> Path:
    for name in ("web", "api", "db", "queue", "cache"):
        csr_file(name, common_name=f"{name}.example", dns=(f"{name}.example",))
    path = write(tmp_path / "m.yaml", ["web", "api", "db", "queue", "cache"], keyed=("cache",))
    result = cli("apply", path)
    assert result.code == 0, result.err
    return path


def test_the_issue_scenario_revoke_two_prune_one_then_the_crl_openssl_and_lint_agree(
    issued: Path, cli: Cli, tmp_path: Path
) -> None:
    folder = issued.parent
    assert cli("revoke", issued, "web", "db", "--reason", "KEY_COMPROMISE").code == 0
    gone = serial(folder, "queue")
    write(issued, ["web", "api", "db", "cache"], keyed=("cache",))
    report = tmp_path / "r.json"
    # web and db were revoked: apply renews them (their CSRs are new ones below), and prunes queue
    (folder / "csr" / "web.csr").write_bytes(_fresh_csr("web"))
    (folder / "csr" / "db.csr").write_bytes(_fresh_csr("db"))
    old = {n: serial(folder, n) for n in ("web", "db")}
    result = cli("apply", issued, "--prune", "--report", report)
    assert result.code == 0, result.out + result.err
    assert re.search(r"^revoked\s+queue\s.*reason CESSATION_OF_OPERATION\s+no longer in the manifest", result.out, re.M)
    rows = {r["name"]: r for r in json.loads(report.read_text())["results"]}
    assert rows["queue"]["status"] == "revoked" and rows["queue"]["serial"] == gone
    assert rows["queue"]["revocation_reason"] == "CESSATION_OF_OPERATION" and rows["queue"]["action"] == "revoke"
    assert {rows[n]["status"] for n in ("web", "db")} == {"issued"}
    assert not [p for p in (folder / "out").iterdir() if p.name.startswith("queue")]

    crl = tmp_path / "ca.crl"
    assert cli("ca", "crl", "--store", tmp_path / "store", CA_ARN, "-o", crl).code == 0
    text = openssl("crl", "-inform", "DER", "-in", str(crl), "-noout", "-text").stdout
    listed = {int(s, 16) for s in re.findall(r"Serial Number: ([0-9A-F]+)", text)}
    assert listed == {int(old["web"], 16), int(old["db"], 16), int(gone, 16)}
    assert text.count("Key Compromise") == 2 and text.count("Cessation Of Operation") == 1
    lint = subprocess.run([str(Path(sys.executable).with_name("lint_crl")), "lint", "-t", "CRL", "-p", "PKIX",
                           "-s", "NOTICE", str(crl)], capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr

    audit = json.loads(cli("ca", "audit-report", "--store", tmp_path / "store", CA_ARN).out)
    revoked = {row["serial"].replace(":", ""): row["revocationReason"] for row in audit if row["revocationReason"]}
    assert revoked == {old["web"]: "KEY_COMPROMISE", old["db"]: "KEY_COMPROMISE", gone: "CESSATION_OF_OPERATION"}

    again = cli("revoke", issued, "api", "--reason", "KEY_COMPROMISE")
    assert again.code == 0
    twice = cli("revoke", issued, "api", "--reason", "KEY_COMPROMISE")
    assert twice.code == 0 and "already revoked" in twice.out
    assert [n for n, _ in revoked_lines(folder)].count("api") == 1


def _fresh_csr(name: str) -> bytes:
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.support.common import make_csr_pem

    key = ec.generate_private_key(ec.SECP256R1())
    return make_csr_pem(common_name=f"{name}.example", dns=(f"{name}.example",), key=key)


def test_the_plan_lists_orphans_and_prune_plans_their_revocation(issued: Path, cli: Cli, tmp_path: Path) -> None:
    folder = issued.parent
    write(issued, ["web", "api", "db"])
    plan = cli("apply", issued, "--plan", "--detailed-exitcode")
    assert plan.code == 0, plan.out + plan.err  # orphans alone are no change without --prune
    assert re.search(r"^\? orphaned \(no longer in the manifest; apply --prune revokes it\) cache .*serial="
                     + serial(folder, "cache"), plan.out, re.M)
    assert "Plan: 3 entries, 3 unchanged; 2 orphaned" in plan.out
    report = tmp_path / "plan.json"
    pruning = cli("apply", issued, "--plan", "--prune", "--detailed-exitcode", "--report", report)
    assert pruning.code == 2
    assert re.search(r"^- revoke \(no longer in the manifest\) queue ", pruning.out, re.M)
    assert "Plan: 3 entries, 3 unchanged; 2 to revoke (no longer in the manifest)" in pruning.out
    rows = {r["name"]: r for r in json.loads(report.read_text())["results"]}
    assert (rows["queue"]["status"], rows["queue"]["action"]) == ("planned", "revoke")
    assert rows["cache"]["outputs"] == {"certificate": "out/cache.pem", "chain": None, "full_chain": None,
                                        "private_key": "out/cache.key"}
    assert not [r for r in journal(folder) if r["event"] == "revoked"]  # a plan changes nothing
    assert (folder / "out" / "queue.pem").exists()


def test_prune_revokes_removes_the_files_and_a_second_run_has_nothing_to_do(issued: Path, cli: Cli) -> None:
    folder = issued.parent
    write(issued, ["web", "api", "db"])
    plain = cli("apply", issued)  # without --prune nothing is revoked
    assert plain.code == 0 and not revoked_lines(folder)
    assert "2 name(s) no longer in the manifest still have a certificate on record (cache, queue): apply --prune" \
        in plain.out
    assert (folder / "out" / "cache.key").exists()
    pruned = cli("apply", issued, "--prune")
    assert pruned.code == 0, pruned.out + pruned.err
    assert revoked_lines(folder) == [("cache", "CESSATION_OF_OPERATION"), ("queue", "CESSATION_OF_OPERATION")]
    assert sorted(p.name for p in (folder / "out").iterdir()) == sorted(
        f"{n}{suffix}.pem" for n in ("web", "api", "db") for suffix in ("", "-full", "-chain")
    )
    again = cli("apply", issued, "--prune", "--plan", "--detailed-exitcode")
    assert again.code == 0 and "revoke" not in again.out and "orphaned" not in again.out
    rerun = cli("apply", issued, "--prune")
    assert rerun.code == 0 and "revoked" not in rerun.out
    assert len(revoked_lines(folder)) == 2


def test_prune_leaves_a_file_another_entry_writes_now_and_files_that_hold_another_certificate(
    issued: Path, cli: Cli
) -> None:
    folder = issued.parent
    # queue is gone and web now writes what was queue's full chain; db's certificate file was replaced by hand
    text = HEAD + entry("api") + entry("cache").replace("out/cache-full.pem", "out/cache-full.pem") + \
        "  - {name: web, Csr: file://csr/web.csr, output: {certificate: out/web.pem, full_chain: out/queue-full.pem}}\n"
    issued.write_text(text.replace("name: cache, Csr: file://csr/cache.csr", "name: cache, Csr: file://csr/web.csr"))
    (folder / "out" / "db.pem").write_bytes((folder / "out" / "api.pem").read_bytes())
    result = cli("apply", issued, "--prune")
    assert result.code == 0, result.out + result.err
    assert ("queue", "CESSATION_OF_OPERATION") in revoked_lines(folder)
    assert ("db", "CESSATION_OF_OPERATION") in revoked_lines(folder)
    assert (folder / "out" / "queue-full.pem").exists()  # web writes it now
    assert not (folder / "out" / "queue.pem").exists()
    # db's certificate file no longer holds db's certificate: revoked, but its files are left alone
    assert (folder / "out" / "db.pem").exists() and (folder / "out" / "db-full.pem").exists()
    assert re.search(r"^revoked\s+db\s.*left alone", result.out, re.M)


def test_prune_in_a_shard_prunes_only_that_shards_names(issued: Path, cli: Cli) -> None:
    folder = issued.parent
    write(issued, ["web"])
    gone = ["api", "db", "queue", "cache"]
    first = Shard(1, 2)
    mine = [n for n in gone if in_shard(n, first)]
    assert mine and len(mine) < len(gone)  # the names really split
    result = cli("apply", issued, "--prune", "--shard", "1/2")
    assert result.code == 0, result.out + result.err
    assert sorted(n for n, _ in revoked_lines(folder)) == sorted(mine)
    rest = cli("apply", issued, "--prune", "--shard", "2/2")
    assert rest.code == 0
    assert sorted(n for n, _ in revoked_lines(folder)) == sorted(gone)


def test_a_name_listed_in_another_shard_is_never_an_orphan(issued: Path, cli: Cli) -> None:
    folder = issued.parent
    for k in (1, 2, 3):
        result = cli("apply", issued, "--prune", "--shard", f"{k}/3")
        assert result.code == 0 and "revoked" not in result.out, result.out
    assert not revoked_lines(folder)


def test_another_manifest_in_the_same_folder_keeps_its_certificates(issued: Path, cli: Cli) -> None:
    folder = issued.parent
    other = folder / "other.yaml"
    other.write_text(HEAD + "  - {name: lone, Csr: file://csr/web.csr, output: {certificate: out/lone.pem}}\n")
    assert cli("apply", other).code == 0
    result = cli("apply", issued, "--prune")  # m.yaml does not list "lone": it is other.yaml's
    assert result.code == 0 and "lone" not in result.out
    assert not revoked_lines(folder) and (folder / "out" / "lone.pem").exists()
    other.write_text(HEAD + "  - {name: solo, Csr: file://csr/api.csr, output: {certificate: out/solo.pem}}\n")
    emptied = cli("apply", other, "--prune")
    assert emptied.code == 0, emptied.out + emptied.err
    assert revoked_lines(folder) == [("lone", "CESSATION_OF_OPERATION")]
    assert (folder / "out" / "web.pem").exists()


def test_an_orphan_revoked_by_hand_earlier_only_loses_its_files(issued: Path, cli: Cli) -> None:
    folder = issued.parent
    assert cli("revoke", issued, "queue", "--reason", "KEY_COMPROMISE").code == 0
    write(issued, ["web", "api", "db", "cache"], keyed=("cache",))
    plan = cli("apply", issued, "--plan", "--prune")
    assert "revoked already (KEY_COMPROMISE): its files are removed" in plan.out
    result = cli("apply", issued, "--prune")
    assert result.code == 0
    assert re.search(r"^revoked\s+queue\s.*reason KEY_COMPROMISE.*already revoked", result.out, re.M)
    assert revoked_lines(folder) == [("queue", "KEY_COMPROMISE")]
    assert not (folder / "out" / "queue.pem").exists()
