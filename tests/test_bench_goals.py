"""The benches' goal lines: a missed goal makes the bench exit non-zero, whatever came after it."""

from __future__ import annotations

import pytest

from bench._gen import Goals


def test_every_goal_met_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    goals = Goals()
    assert goals.check("ratio 0.40 (goal <= 0.50)", True)
    assert goals.exit_status() == 0
    assert capsys.readouterr().out == "ratio 0.40 (goal <= 0.50)  PASS\n"


def test_one_missed_goal_among_met_ones_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    goals = Goals()
    goals.check("first", True)
    assert not goals.check("second", False)
    goals.check("third", True)
    assert goals.exit_status() == 1
    assert goals.missed == ["second"]
    assert capsys.readouterr().out.splitlines() == ["first  PASS", "second  MISS", "third  PASS", "1 goal missed"]
