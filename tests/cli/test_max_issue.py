"""The issue guard (`apply --max-issue N`, `settings.max_issue`) and the plan's count per CA, on the
local CA: apply refuses before any IssueCertificate call and says how many and why; the plan
names each CA's usage mode; the guard's count is the number of certificates apply then issues."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pca_batch.manifest.load import load_manifest
from pca_batch.plan import converge, guard
from pca_batch.plan.renewal import IssuedIndex
from tests.support.common import CA_ARN, Cli, make_csr_pem

SHORT_ARN = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/22222222-2222-3333-4444-555555555555"


def head(extra_settings: str = "") -> str:
    return f"""\
version: 1
backend:
  type: local
  store: store
  authorities:
    - {{arn: {CA_ARN}, common_name: Guard Test CA}}
    - {{arn: {SHORT_ARN}, common_name: Guard Short CA, usage_mode: SHORT_LIVED_CERTIFICATE}}
{extra_settings}defaults:
  CertificateAuthorityArn: {CA_ARN}
  SigningAlgorithm: SHA256WITHECDSA
  Validity: {{Value: 7, Type: DAYS}}
certificates:
"""


def write(folder: Path, names: list[str], *, short: tuple[str, ...] = (), extra_settings: str = "") -> Path:
    (folder / "csr").mkdir(parents=True, exist_ok=True)
    lines = [head(extra_settings)]
    for name in names:
        csr = folder / "csr" / f"{name}.csr"
        if not csr.exists():
            csr.write_bytes(make_csr_pem(common_name=f"{name}.example", dns=(f"{name}.example",)))
        ca = f", CertificateAuthorityArn: {SHORT_ARN}" if name in short else ""
        lines.append(f"  - {{name: {name}, Csr: file://csr/{name}.csr{ca}, output: {{certificate: out/{name}.pem}}}}\n")
    path = folder / "m.yaml"
    path.write_text("".join(lines))
    return path


def flat(text: str) -> str:
    """Console output as one line (rich wraps long messages)."""
    return " ".join(text.split())


def issued_lines(folder: Path) -> list[dict[str, object]]:
    path = folder / ".pca-batch" / "journal.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if '"issued"' in line]


def test_max_issue_5_on_10_new_entries_refuses_before_any_call(cli: Cli, tmp_path: Path) -> None:
    names = [f"svc-{i}" for i in range(10)]
    manifest = write(tmp_path, names)
    report = tmp_path / "report.json"
    result = cli("apply", manifest, "--max-issue", "5", "--report", report)
    assert result.code == 1
    assert "refusing to run: 10 certificates would be issued, more than --max-issue 5 allows" in flat(result.err)
    assert "10 new certificates (never issued)" in flat(result.err)
    assert "Nothing was issued" in flat(result.err)
    assert "Traceback" not in result.err + result.out
    assert not (tmp_path / "out").exists()
    assert issued_lines(tmp_path) == []
    rows = json.loads(report.read_text())["results"]
    assert [r["status"] for r in rows] == ["skipped"] * 10
    assert {r["error"]["code"] for r in rows} == {"MaxIssueExceeded"}

    assert cli("apply", manifest, "--max-issue", "10").code == 0  # at the limit: it runs
    assert len(issued_lines(tmp_path)) == 10


def test_settings_max_issue_applies_and_the_command_line_wins(cli: Cli, tmp_path: Path) -> None:
    manifest = write(tmp_path, ["a", "b", "c"], extra_settings="settings: {max_issue: 2}\n")
    result = cli("apply", manifest)
    assert result.code == 1
    assert "more than settings.max_issue 2 allows" in flat(result.err)
    assert issued_lines(tmp_path) == []
    assert cli("apply", manifest, "--max-issue", "3").code == 0
    assert len(issued_lines(tmp_path)) == 3


def test_a_lost_state_is_named_as_the_likely_cause_and_nothing_is_renewed(cli: Cli, tmp_path: Path) -> None:
    names = ["a", "b", "c", "d"]
    manifest = write(tmp_path, names)
    assert cli("apply", manifest).code == 0
    files = {n: (tmp_path / "out" / f"{n}.pem").read_bytes() for n in names}
    journal = tmp_path / ".pca-batch" / "journal.jsonl"
    journal.unlink()  # the CI cache was missed
    result = cli("apply", manifest, "--max-issue", "1")
    assert result.code == 1
    assert f"4 renewals: the state at {journal} has no record of them; was the state lost?" in flat(result.err)
    assert {n: (tmp_path / "out" / f"{n}.pem").read_bytes() for n in names} == files
    assert not journal.exists() or issued_lines(tmp_path) == []


def test_after_a_lost_state_one_renewal_then_unchanged_not_a_renewal_every_run(cli: Cli, tmp_path: Path) -> None:
    """A renewal of a certificate the state has no record of used to be salted with that
    certificate's serial, which the next run cannot know: it renewed again on every run."""
    manifest = write(tmp_path, ["a", "b"])
    assert cli("apply", manifest).code == 0
    (tmp_path / ".pca-batch" / "journal.jsonl").unlink()
    assert cli("apply", manifest).code == 0  # renews both, once
    assert len(issued_lines(tmp_path)) == 2
    plan = cli("apply", manifest, "--plan")
    assert flat(plan.out).endswith("Plan: 2 entries, 2 unchanged"), plan.out
    assert cli("apply", manifest).code == 0
    assert len(issued_lines(tmp_path)) == 2


def test_the_plan_counts_what_each_ca_issues_with_its_usage_mode_and_says_apply_would_refuse(
    cli: Cli, tmp_path: Path
) -> None:
    manifest = write(tmp_path, ["a", "b", "c", "d"], short=("c",))
    assert cli("apply", write(tmp_path, ["d"])).code == 0  # d is issued already
    manifest = write(tmp_path, ["a", "b", "c", "d"], short=("c",))
    plan = cli("apply", manifest, "--plan")
    assert plan.code == 0, plan.err
    assert flat(plan.out).endswith(
        f"Plan: 4 entries, 3 planned, 1 unchanged; to issue: 2 from {CA_ARN} (general purpose), "
        f"1 from {SHORT_ARN} (short-lived)"
    )
    refused = cli("apply", manifest, "--plan", "--max-issue", "2")
    assert refused.code == 1
    expected = "apply would refuse to run: 3 certificates would be issued, more than --max-issue 2 allows"
    assert expected in flat(refused.err)
    assert len(issued_lines(tmp_path)) == 1  # the plan issued nothing

    offline = cli("apply", manifest, "--plan", "--offline")  # no store opened: the manifest's declared modes
    assert "(general purpose), 1 from" in flat(offline.out) and "(short-lived)" in flat(offline.out)


def test_max_issue_takes_zero_and_refuses_a_negative_number(cli: Cli, tmp_path: Path) -> None:
    manifest = write(tmp_path, ["a"])
    assert cli("apply", manifest, "--max-issue", "0").code == 1
    bad = cli("apply", manifest, "--max-issue", "-1")
    assert bad.code == 2 and "expected 0 or more" in flat(bad.err)


# -- the guard's count is what apply issues ---------------------------------------------------

MUTATIONS = ("keep", "delete_file", "delete_record", "new_csr", "new_entry")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=5))
def test_the_guards_count_equals_the_issue_calls_apply_makes(
    cli: Cli, tmp_path_factory: pytest.TempPathFactory, mutations: list[str]
) -> None:
    folder = tmp_path_factory.mktemp("guard")
    names = [f"e{i}" for i in range(len(mutations))]
    before = [n for n, m in zip(names, mutations, strict=True) if m != "new_entry"]
    if before:
        assert cli("apply", write(folder, before)).code == 0
    journal = folder / ".pca-batch" / "journal.jsonl"
    for name, mutation in zip(names, mutations, strict=True):
        if mutation == "delete_file":
            (folder / "out" / f"{name}.pem").unlink()
        elif mutation == "delete_record":
            journal.write_text("".join(line + "\n" for line in journal.read_text().splitlines()
                                       if f'"name":"{name}"' not in line))
        elif mutation == "new_csr":
            (folder / "csr" / f"{name}.csr").write_bytes(make_csr_pem(common_name=f"{name}.new.example",
                                                                      dns=(f"{name}.new.example",)))
    manifest = write(folder, names)
    loaded = load_manifest(str(manifest))
    index = IssuedIndex.load(journal)
    steps = converge.decide_all(list(loaded.entries), index, now=datetime.now(UTC), force=False)
    counted = len(guard.to_issue(steps, index))
    lines_before = len(issued_lines(folder))
    result = cli("apply", manifest)
    assert result.code == 0, result.err
    assert len(issued_lines(folder)) - lines_before == counted
    plan = cli("apply", manifest, "--plan")
    assert re.search(r"; to issue", flat(plan.out)) is None  # everything is in place now


def test_force_renews_every_time_it_is_asked(cli: Cli, tmp_path: Path) -> None:
    """Each --force renewal is salted with the serial it replaces: a second --force is a new certificate."""
    manifest = write(tmp_path, ["a", "b"])
    for run in range(1, 4):
        assert cli("apply", manifest, "--force").code == 0
        assert len(issued_lines(tmp_path)) == 2 * run
    assert len({line["certificate_arn"] for line in issued_lines(tmp_path)}) == 6


def test_the_refusal_counts_each_reason_for_a_renewal(cli: Cli, tmp_path: Path) -> None:
    manifest = write(tmp_path, ["a", "b", "c"])
    assert cli("apply", manifest).code == 0
    for name in ("a", "b"):  # a new CSR: the request changed
        (tmp_path / "csr" / f"{name}.csr").write_bytes(make_csr_pem(f"{name}.example", (f"{name}.example",)))
    result = cli("apply", manifest, "--max-issue", "1", "--force")
    assert "3 certificates would be issued, more than --max-issue 1 allows: 3 renewals forced (--force)" in flat(
        result.err)
    result = cli("apply", manifest, "--max-issue", "1")
    assert result.code == 1
    assert "2 certificates would be issued, more than --max-issue 1 allows: 2 renewals (the request changed: 2)" \
        in flat(result.err)


def test_forced_entries_whose_files_are_gone_are_counted_as_forced_not_as_never_issued(
    cli: Cli, tmp_path: Path
) -> None:
    import shutil

    manifest = write(tmp_path, ["a", "b"])
    assert cli("apply", manifest).code == 0
    shutil.rmtree(tmp_path / "out")  # issued once; --force then issues them again under new tokens
    result = cli("apply", manifest, "--max-issue", "1", "--force")
    assert result.code == 1
    assert "2 certificates would be issued, more than --max-issue 1 allows: 2 renewals forced (--force)" in flat(
        result.err)
    assert "never issued" not in result.err


def test_lost_files_are_planned_as_fetches_and_apply_fetches_exactly_those(cli: Cli, tmp_path: Path) -> None:
    """Certificates on record in the state under the token the entry would send are fetched
    again, not issued: the plan says `< fetch` with their serials, does not count them as issued,
    and apply recovers exactly those with the ARNs the plan named."""
    names = ["a", "b", "c"]
    manifest = write(tmp_path, names)
    assert cli("apply", manifest).code == 0
    arns = {str(r["name"]): str(r["certificate_arn"]) for r in issued_lines(tmp_path)}
    for name in ("a", "c"):
        (tmp_path / "out" / f"{name}.pem").unlink()
    report = tmp_path / "plan.json"
    plan = cli("apply", manifest, "--plan", "--detailed-exitcode", "--max-issue", "0", "--report", report)
    assert plan.code == 2, plan.out + plan.err  # changes pending, and --max-issue 0 does not refuse fetches
    rows = {r["name"]: r for r in json.loads(report.read_text())["results"]}
    assert {n: r["action"] for n, r in rows.items()} == {"a": "fetch", "b": "unchanged", "c": "fetch"}
    assert {n: rows[n]["certificate_arn"] for n in ("a", "c")} == {n: arns[n] for n in ("a", "c")}
    assert "2 to fetch again (on record in the state, not issued)" in flat(plan.out)
    assert "to issue:" not in plan.out
    assert "< fetch" in plan.out

    applied = tmp_path / "apply.json"
    assert cli("apply", manifest, "--max-issue", "0", "--report", applied).code == 0
    done = {r["name"]: r for r in json.loads(applied.read_text())["results"]}
    assert {n: r["status"] for n, r in done.items()} == {"a": "recovered", "b": "unchanged", "c": "recovered"}
    assert {n: done[n]["certificate_arn"] for n in names} == arns
    assert len(issued_lines(tmp_path)) == 3
    assert cli("apply", manifest, "--plan", "--detailed-exitcode").code == 0
