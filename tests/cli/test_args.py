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
