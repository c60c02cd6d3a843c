"""Acceptance tests of `validate`, `apply --plan` and `skeleton`, through main()."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from pca_batch import schema
from pca_batch.manifest.load import load_manifest
from tests.support.common import CA_ARN, REPO, Cli, CsrFile

GOOD = """\
version: 1
defaults:
  CertificateAuthorityArn: ${TEST_CA_ARN}
  SigningAlgorithm: SHA256WITHECDSA
  Validity: {Value: 30, Type: DAYS}
certificates:
  - name: web
    Csr: file://csr/web.csr
    output: {certificate: out/web.pem, chain: out/web.chain.pem}
  - name: api
    Csr: file://csr/api.csr
    Validity: Value=7,Type=DAYS
"""


@pytest.fixture
def good(tmp_path: Path, csr_file: CsrFile, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TEST_CA_ARN", CA_ARN)
    csr_file("web", common_name="web.example", dns=("web.example", "www.example"))
    csr_file("api", common_name="api.example", dns=())
    path = tmp_path / "manifest.yaml"
    path.write_text(GOOD)
    return path


def test_validate_ok(good: Path, cli: Cli) -> None:
    result = cli("validate", good)
    assert (result.code, result.out.strip()) == (0, f"{good}: valid (2 entries)")


def test_validate_several_files_reports_each(good: Path, tmp_path: Path, cli: Cli) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ncertificates: []\n")
    result = cli("validate", good, bad)
    assert result.code == 2
    assert "valid (2 entries)" in result.out and f"{bad}:2: -: $.certificates" in result.err


def test_plan_table_summary_and_report(good: Path, tmp_path: Path, cli: Cli) -> None:
    report = tmp_path / "plan.json"
    result = cli("apply", good, "--plan", "--report", report)
    assert result.code == 0, result.err
    assert "+ issue web" in result.out and "+ issue api" in result.out
    assert "DNS:www.example" in result.out and "validity=7 DAYS" in result.out
    assert "Plan: 2 entries, 2 planned" in result.out
    data = json.loads(report.read_text())
    Draft202012Validator(schema.load(schema.REPORT)).validate(data)
    assert data["summary"] == {
        "total": 2,
        "planned": 2,
        "issued": 0,
        "recovered": 0,
        "unchanged": 0,
        "failed": 0,
        "invalid": 0,
        "skipped": 0,
        "revoked": 0,
        "rates": [],  # a plan of the local backend learns no rate
    }
    web = data["results"][0]
    assert web["status"] == "planned" and web["certificate_authority_arn"] == CA_ARN
    assert web["outputs"] == {
        "certificate": "out/web.pem",
        "chain": "out/web.chain.pem",
        "full_chain": None,
        "private_key": None,
    }
    assert web["idempotency_token"] in result.out
    # the plan writes nothing but its report
    assert not (tmp_path / "out").exists() and not (tmp_path / ".pca-batch").exists()


def test_tokens_are_stable_across_runs_and_change_with_the_request(good: Path, cli: Cli, tmp_path: Path) -> None:
    first = [e.token for e in load_manifest(good).entries]
    assert first == [e.token for e in load_manifest(good).entries]
    good.write_text(GOOD.replace("Value: 30", "Value: 31"))
    second = [e.token for e in load_manifest(good).entries]
    assert second[0] != first[0] and second[1] == first[1]  # api overrides Validity


def test_plan_with_problems_shows_invalid_rows(good: Path, tmp_path: Path, cli: Cli) -> None:
    good.write_text(GOOD.replace("SigningAlgorithm: SHA256WITHECDSA", "SigningAlgorithm: NOPE"))
    report = tmp_path / "plan.json"
    result = cli("apply", good, "--plan", "--report", report)
    assert result.code == 2
    assert "! invalid web" in result.out
    assert f"{good}:4: web: $.SigningAlgorithm" in result.err
    data = json.loads(report.read_text())
    assert data["summary"]["invalid"] == 2
    assert data["results"][0]["error"]["code"] == "InvalidManifest"


def test_detailed_exitcode(good: Path, cli: Cli) -> None:
    assert cli("apply", good, "--plan", "--detailed-exitcode").code == 2  # changes pending
    good.write_text(GOOD.replace("SigningAlgorithm: SHA256WITHECDSA", "SigningAlgorithm: NOPE"))
    assert cli("apply", good, "--plan", "--detailed-exitcode").code == 1


def test_apply_refuses_an_invalid_manifest_and_issues_nothing(good: Path, tmp_path: Path, cli: Cli) -> None:
    good.write_text(GOOD + "  - name: web\n    Csr: file://csr/web.csr\n")
    report = tmp_path / "r.json"
    result = cli("apply", good, "--report", report)
    assert result.code == 2
    assert "already used" in result.err and "Nothing was issued" in result.err
    statuses = [r["status"] for r in json.loads(report.read_text())["results"]]
    assert statuses == ["skipped", "skipped", "invalid"]
    assert not (tmp_path / "out").exists()


def test_unset_variable_is_a_problem_not_an_empty_string(
    good: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_CA_ARN")
    result = cli("validate", good)
    assert result.code == 2
    assert (
        f"{good}:3: -: $.defaults.CertificateAuthorityArn: the environment variable TEST_CA_ARN is not set"
        in result.err
    )
    assert "1 problem" in result.err  # no echo of the empty value in every entry


def test_variable_default(good: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_CA_ARN")
    good.write_text(GOOD.replace("${TEST_CA_ARN}", "${TEST_CA_ARN:-" + CA_ARN + "}"))
    assert cli("validate", good).code == 0


def test_outside_paths_allowed_on_request(good: Path, cli: Cli) -> None:
    good.write_text(GOOD.replace("out/web.pem", "../elsewhere/web.pem"))
    assert cli("validate", good).code == 2
    assert cli("validate", good, "--allow-outside-paths").code == 0


def test_symlinked_output_folder_pointing_out_is_outside(good: Path, tmp_path: Path, cli: Cli) -> None:
    target = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    target.mkdir()
    (tmp_path / "out").symlink_to(target)
    result = cli("validate", good)
    assert result.code == 2 and "outside the manifest's folder" in result.err


def test_fifo_as_csr_never_blocks(good: Path, tmp_path: Path, cli: Cli) -> None:
    fifo = tmp_path / "csr" / "fifo.csr"
    os.mkfifo(fifo)
    good.write_text(GOOD.replace("file://csr/web.csr", "file://csr/fifo.csr"))
    result = cli("validate", good)
    assert result.code == 2 and "not a regular file" in result.err


def test_messages_never_quote_a_referenced_file(tmp_path: Path, cli: Cli) -> None:
    secret = "TOP-SECRET-VALUE-1234"
    (tmp_path / "secret.txt").write_text(f"password={secret}\n")
    (tmp_path / "req.json").write_text(json.dumps({"Csr": "x", "SigningAlgorithm": secret, "TemplateArn": secret}))
    (tmp_path / "m.yaml").write_text(
        "version: 1\ncertificates:\n"
        "  - name: a\n    Csr: file://secret.txt\n"
        "  - name: b\n    cli_input_json: file://req.json\n"
        "  - name: c\n    cli_input_json: file://secret.txt\n"
    )
    result = cli("validate", tmp_path / "m.yaml")
    assert result.code == 2
    assert secret not in result.out + result.err
    assert "b: $.SigningAlgorithm: the value is not one of" in result.err


def test_huge_manifest_is_refused_without_a_traceback(tmp_path: Path, cli: Cli) -> None:
    big = tmp_path / "big.yaml"
    with big.open("w") as fh:
        fh.write("version: 1\ncertificates:\n")
        line = "  - {name: x, Csr: file://x.csr}  # " + "p" * 60 + "\n"
        fh.write(line * (50 * 1024 * 1024 // len(line)))
    result = cli("validate", big)
    assert result.code == 2
    assert "at most" in result.err and "Traceback" not in result.err


def test_missing_manifest(tmp_path: Path, cli: Cli) -> None:
    result = cli("validate", tmp_path / "nope.yaml")
    assert result.code == 2 and "does not exist" in result.err


def test_usage_errors_exit_2(cli: Cli, good: Path) -> None:
    assert cli("apply").code == 2
    assert cli("apply", good, "--concurrency", "0").code == 2
    assert cli("apply", good, "--shard", "3/2").code == 2
    assert cli("frobnicate").code == 2
    assert cli().code == 2


def test_shards_cover_every_entry_exactly_once(
    tmp_path: Path, csr_file: CsrFile, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_CA_ARN", CA_ARN)
    csr_file("web")
    body = GOOD.split("certificates:")[0] + "certificates:\n"
    body += "".join(f"  - name: svc-{i}\n    Csr: file://csr/web.csr\n" for i in range(40))
    (tmp_path / "m.yaml").write_text(body)
    seen: list[str] = []
    for k in (1, 2, 3):
        report = tmp_path / f"r{k}.json"
        assert cli("apply", tmp_path / "m.yaml", "--plan", "--shard", f"{k}/3", "--report", report).code == 0
        seen += [r["name"] for r in json.loads(report.read_text())["results"]]
    assert sorted(seen) == sorted(f"svc-{i}" for i in range(40))


def test_skeleton_is_a_manifest_that_loads(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = cli("skeleton")
    assert result.code == 0 and result.out.startswith("# pca-batch manifest")
    (tmp_path / "m.yaml").write_text(result.out)
    monkeypatch.setenv("PCA_CA_ARN", CA_ARN)
    problems = load_manifest(tmp_path / "m.yaml").all_problems()
    # only the files it names are missing: the skeleton's shape is valid
    assert problems and all(p.path in ("$.Csr", "$.cli_input_json") for p in problems), problems


def test_readme_quick_start_names_the_two_commands() -> None:
    text = (REPO / "README.md").read_text()
    assert "make demo" in text and "make test" in text
