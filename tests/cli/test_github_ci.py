"""Under GitHub Actions (GITHUB_ACTIONS=true, a step summary file): every problem of an invalid
manifest is an annotation at its own line, for validate, apply and apply --plan, and the summary
has the problems' table, or the plan's table with its counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.run.test_runner_acceptance import CA, MISSING_CA, write_manifest
from tests.support.common import Cli


@pytest.fixture
def github(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    summary = tmp_path / "summary.md"
    summary.write_text("")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_SHA"):
        monkeypatch.delenv(name, raising=False)
    return summary


def _invalid(tmp_path: Path) -> tuple[Path, int, int]:
    """A manifest with two problems: an unknown signing algorithm (its line) and an unknown key (its line)."""
    manifest = write_manifest(tmp_path / "certs", ["web", "api"])
    text = manifest.read_text()
    text = text.replace("  - name: web\n", "  - name: web\n    SigningAlgorithm: SHA256WITHRSAA\n")
    text = text.replace("  - name: api\n", "  - name: api\n    Validty: x\n")
    manifest.write_text(text)
    lines = text.splitlines()
    return manifest, lines.index("    SigningAlgorithm: SHA256WITHRSAA") + 1, lines.index("    Validty: x") + 1


@pytest.mark.parametrize("command", [["validate"], ["apply"], ["apply", "--plan"]])
def test_every_problem_is_an_annotation_at_its_line(
    command: list[str], tmp_path: Path, github: Path, cli: Cli
) -> None:
    manifest, alg_line, typo_line = _invalid(tmp_path)
    result = cli(*command, manifest)
    assert result.code == 2
    annotations = [line for line in result.out.splitlines() if line.startswith("::error ")]
    assert annotations == [
        f"::error file=certs/m.yaml,line={alg_line},title=pca-batch%3A web::$.SigningAlgorithm: 'SHA256WITHRSAA' "
        "is not one of SHA256WITHECDSA, SHA384WITHECDSA, SHA512WITHECDSA, SHA256WITHRSA, SHA384WITHRSA, "
        "SHA512WITHRSA, SHA256WITHRSA_PSS, SHA384WITHRSA_PSS, SHA512WITHRSA_PSS, SM3WITHSM2, ML_DSA_44, ML_DSA_65, "
        "ML_DSA_87; did you mean 'SHA256WITHRSA'?",
        f"::error file=certs/m.yaml,line={typo_line},title=pca-batch%3A api::$.Validty: unknown key 'Validty'; "
        "did you mean 'Validity'?",
    ]
    summary = github.read_text()
    name = "plan" if "--plan" in command else command[0]
    assert f"### pca-batch {name}: {manifest} is invalid\n\n2 problems in 2 entries" in summary
    assert f"| {alg_line} | web | `$.SigningAlgorithm` | 'SHA256WITHRSAA' is not one of" in summary
    assert f"| {typo_line} | api | `$.Validty` | unknown key 'Validty'; did you mean 'Validity'? |" in summary


def test_a_manifest_that_cannot_be_read_is_annotated_too(tmp_path: Path, github: Path, cli: Cli) -> None:
    manifest = tmp_path / "broken.yaml"
    manifest.write_text("version: 1\ncertificates:\n  - name: a\n    Csr: [\n")
    for command in (["validate"], ["apply"], ["apply", "--plan"]):
        result = cli(*command, manifest)
        assert result.code == 2
        (annotation,) = [line for line in result.out.splitlines() if line.startswith("::error ")]
        assert annotation.startswith("::error file=broken.yaml,line=")
    assert github.read_text().count("broken.yaml is invalid") == 3


def test_the_summary_links_each_line_to_the_commit(
    tmp_path: Path, github: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/certs")
    monkeypatch.setenv("GITHUB_SHA", "0123abc")
    manifest, alg_line, _ = _invalid(tmp_path)
    cli("validate", manifest)
    assert f"| [{alg_line}](https://github.com/acme/certs/blob/0123abc/certs/m.yaml#L{alg_line}) | web |" in (
        github.read_text()
    )


def test_the_plan_table_and_its_counts_go_to_the_summary(tmp_path: Path, github: Path, cli: Cli) -> None:
    manifest = write_manifest(tmp_path, ["web", "api"])
    assert cli("apply", manifest, "--only-this-does-not-exist").code == 2  # (a usage error writes nothing)
    assert github.read_text() == ""
    result = cli("apply", manifest, "--plan")
    assert result.code == 0
    summary = github.read_text()
    counts = f"Plan: 2 entries, 2 planned; to issue: 2 from {CA} (general purpose)"
    assert f"### pca-batch plan: {manifest}\n\n{counts}\n" in summary
    assert "| name | action | CA | signing algorithm | validity | subject / SANs | idempotency token |" in summary
    assert "| web | + issue | arn:aws:acm-pca:" in summary
    assert "| SHA256WITHECDSA | 30 DAYS | CN=web.example, DNS:web.example | pb1-" in summary
    assert "::error" not in result.out


def test_entries_the_ca_would_refuse_are_annotated_in_the_plan(tmp_path: Path, github: Path, cli: Cli) -> None:
    manifest = write_manifest(tmp_path, ["web", "lost"], ca_for={"lost": MISSING_CA})
    assert cli("apply", manifest).code == 1  # creates the store, so that the plan's preflight reads it
    github.write_text("")
    result = cli("apply", manifest, "--plan")
    assert result.code == 1
    (annotation,) = [line for line in result.out.splitlines() if line.startswith("::error ")]
    line = manifest.read_text().splitlines().index("  - name: lost") + 1
    assert annotation.startswith(f"::error file=m.yaml,line={line}::lost: ResourceNotFoundException: ")
    assert "| lost | x refused (ResourceNotFoundException: " in github.read_text()


def test_outside_github_actions_there_is_no_annotation(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    manifest, _, _ = _invalid(tmp_path)
    result = cli("validate", manifest)
    assert result.code == 2 and "::error" not in result.out + result.err
