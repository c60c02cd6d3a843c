"""GitHub Actions: the step summary table and ::error annotations at the entry's manifest line."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from pca_batch.model import FAILED, ISSUED, RECOVERED, SKIPPED, Result
from pca_batch.report.github import (
    error_annotations,
    escape_data,
    escape_property,
    report_to_github,
    summary_markdown,
)

ARN = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/ca/certificate/" + "ab" * 16
RESULTS = [
    Result(name="web", status=ISSUED, certificate_arn=ARN, serial="ab" * 16, not_after="2027-01-01T00:00:00Z",
           attempts=1, line=7),
    Result(name="bad", status=FAILED, attempts=1, error_code="MalformedCSRException",
           error_message="100% wrong\nsecond line | pipe", line=12),
    Result(name="later", status=SKIPPED, error_code="FailFast", error_message="not started", line=15),
]


def test_escaping_follows_the_toolkit() -> None:
    assert escape_data("a%b\r\nc") == "a%25b%0D%0Ac"
    assert escape_property("dir,a:b%\n") == "dir%2Ca%3Ab%25%0A"


def test_failures_become_one_line_annotations_at_the_entry() -> None:
    lines = error_annotations(RESULTS, "manifests/prod.yaml")
    assert lines == [
        "::error file=manifests/prod.yaml,line=12::"
        "bad: MalformedCSRException: 100%25 wrong%0Asecond line | pipe"
    ]


def test_summary_table_escapes_cells() -> None:
    md = summary_markdown(RESULTS, title="manifests/prod.yaml")
    assert md.startswith("### pca-batch apply: manifests/prod.yaml\n")
    assert "3 entries: 1 issued, 1 failed, 1 skipped" in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0] == "| name | status | certificate ARN | serial | expiry | attempts | error |"
    assert rows[1] == f"| web | issued | `{ARN}` | {'ab' * 16} | 2027-01-01T00:00:00Z | 1 | – |"
    assert rows[2] == ("| bad | failed | – | – | – | 1 | "
                       "MalformedCSRException: 100% wrong second line \\| pipe |")
    assert len(rows) == 4


def test_under_github_the_summary_is_appended_and_annotations_printed(tmp_path: Path) -> None:
    summary_file = tmp_path / "summary.md"
    summary_file.write_text("earlier step\n")
    out = io.StringIO()
    console = Console(file=out, width=40, color_system=None)  # narrow: annotations must not wrap
    env = {"GITHUB_STEP_SUMMARY": str(summary_file), "GITHUB_WORKSPACE": str(tmp_path)}
    manifest = tmp_path / "manifests" / "prod.yaml"
    assert report_to_github(RESULTS, manifest_path=manifest, display=str(manifest), console=console, env=env)
    text = summary_file.read_text()
    assert text.startswith("earlier step\n### pca-batch apply:")
    assert out.getvalue().splitlines() == [
        "::error file=manifests/prod.yaml,line=12::"
        "bad: MalformedCSRException: 100%25 wrong%0Asecond line | pipe"
    ]


def test_outside_github_nothing_happens(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, width=100, color_system=None)
    assert not report_to_github(RESULTS, manifest_path=tmp_path / "m.yaml", display="m.yaml", console=console,
                                env={})
    assert out.getvalue() == ""


def test_recovered_entries_are_counted_and_explained() -> None:
    recovered = Result(name="db", status=RECOVERED, certificate_arn=ARN, serial="ab" * 16, attempts=0, line=20)
    md = summary_markdown([*RESULTS, recovered], title="m.yaml")
    assert "4 entries: 1 issued, 1 recovered, 1 failed, 1 skipped" in md
    assert f"| db | recovered | `{ARN}` |" in md
    assert "recovered: issued by an earlier run (per the journal)" in md
    assert "recovered:" not in summary_markdown(RESULTS, title="m.yaml")
    assert len(error_annotations([recovered], "m.yaml")) == 0  # not an error
