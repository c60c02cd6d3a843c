"""Argument types shared by the commands: durations (``--throttle-timeout``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pca_batch.cli.args import duration
from pca_batch.run.retry import format_duration
from tests.support.common import Cli


@pytest.mark.parametrize(("text", "seconds"), [
    ("0", 0.0), ("90", 90.0), ("90s", 90.0), ("2.5s", 2.5), ("15m", 900.0), ("1h", 3600.0), ("1h30m", 5400.0),
    ("2m30s", 150.0), (" 15m ", 900.0),
])  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "15x", "-5", "m", "1.5.2s", "15m 3s"])
def test_what_is_no_duration_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected a duration such as 90s, 15m or 1h"):
        duration(text)


@given(st.integers(0, 10 * 3600))
def test_a_duration_as_pca_batch_writes_it_reads_back(seconds: int) -> None:
    assert duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("command", [["apply"], ["revoke", "--reason", "SUPERSEDED"]])
def test_a_bad_throttle_timeout_is_a_usage_error(cli: Cli, tmp_path: Path, command: list[str]) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("version: 1\ncertificates: []\n")
    args = [command[0], manifest, *(["web"] if command[0] == "revoke" else []), *command[1:]]
    result = cli(*args, "--throttle-timeout", "soon")
    assert result.code == 2
    assert "--throttle-timeout" in result.err and "expected a duration such as 90s, 15m or 1h" in result.err


def test_a_bug_is_exit_3_with_the_traceback_in_a_file_never_on_the_screen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Anything that is not an expected failure: a short message naming a file that holds the
    traceback (the modules that write it are imported only then), exit 3."""
    import re

    from pca_batch import cli
    from pca_batch.cli import validate

    def broken(paths: object, options: object, out: object, err: object) -> int:
        raise RuntimeError("a bug in the handler")

    monkeypatch.setattr(validate, "run_validate", broken)
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the report goes (gettempdir caches)
    manifest = tmp_path / "m.yaml"
    manifest.write_text("version: 1\n")
    assert cli.main(["validate", str(manifest)]) == 3
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    found = re.search(r"the traceback is in (\S+)\. Please report it", " ".join(captured.err.split()))
    assert found is not None, captured.err
    report = Path(found.group(1))
    assert report.parent == tmp_path
    text = report.read_text()
    assert "Traceback (most recent call last)" in text and "RuntimeError: a bug in the handler" in text


@pytest.mark.parametrize("text", ["90", "90s", "15m", "1h", "1h30m", "2.5s", "0", "1h30m15s", "", " ", "soon", "15 m",
                                  "m", "1x", "-5", "1.h", "90ss"])
def test_the_manifest_schema_accepts_the_durations_the_command_line_does(text: str) -> None:
    """settings.throttle_timeout (a string) and --throttle-timeout read the same durations."""
    import re

    from pca_batch import schema

    node = schema.load("manifest.schema.json")["$defs"]["settings"]["properties"]["throttle_timeout"]
    try:
        duration(text)
        accepted = True
    except argparse.ArgumentTypeError:
        accepted = False
    in_schema = len(text) >= node["minLength"] and re.fullmatch(node["pattern"].strip("^$"), text) is not None
    assert in_schema == accepted
