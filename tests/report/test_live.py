"""Terminal reporting: plain lines for logs, progress and a table on terminals, no secrets."""

from __future__ import annotations

import io

from rich.console import Console

from pca_batch.model import FAILED, ISSUED, RECOVERED, SKIPPED, UNCHANGED, Result
from pca_batch.report.live import LiveReport, final_summary, plain_line, print_final

ARN = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/ca/certificate/" + "ab" * 16

RESULTS = [
    Result(name="web", status=ISSUED, certificate_arn=ARN, serial="ab" * 16, not_after="2027-01-01T00:00:00Z",
           attempts=2, duration_s=0.25),
    Result(name="api", status=UNCHANGED, certificate_arn=ARN, serial="cd" * 16,
           not_after="2027-02-01T00:00:00Z", attempts=0, duration_s=0.01),
    Result(name="bad", status=FAILED, attempts=1, error_code="MalformedCSRException",
           error_message="The certificate signing request is invalid [not markup]."),
    Result(name="later", status=SKIPPED, error_code="Interrupted",
           error_message="the run was interrupted before this entry started"),
]


def plain_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=100, color_system=None), out


def terminal_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=100, color_system=None, force_terminal=True), out


def test_logs_get_one_plain_line_per_entry_and_the_summary() -> None:
    console, out = plain_console()
    with LiveReport(console, len(RESULTS)) as live:
        for r in RESULTS:
            live.advance(r)
    print_final(console, RESULTS, 1.234)
    lines = out.getvalue().splitlines()
    assert len(lines) == 5
    assert lines[0].startswith("issued    web  " + ARN)
    assert "serial " + "ab" * 16 in lines[0] and "expires 2027-01-01T00:00:00Z" in lines[0]
    assert "2 attempts" in lines[0]
    assert lines[2] == ("failed    bad  MalformedCSRException: The certificate signing request is invalid "
                        "[not markup].  (1 attempt)")
    assert lines[3].startswith("skipped   later  Interrupted: ")
    assert lines[4] == "4 entries, 1 issued, 1 unchanged, 1 failed, 1 skipped in 1.2s"
    assert "\x1b" not in out.getvalue()  # no control codes in CI logs


def test_long_lines_are_not_wrapped_in_logs() -> None:
    console, out = plain_console()
    long_error = Result(name="x", status=FAILED, error_code="InvalidArgsException",
                        error_message="word " * 60)
    with LiveReport(console, 1) as live:
        live.advance(long_error)
    assert len(out.getvalue().splitlines()) == 1


def test_a_terminal_gets_progress_then_a_table() -> None:
    console, out = terminal_console()
    ticks = iter(range(1000))
    with LiveReport(console, len(RESULTS), get_time=lambda: float(next(ticks))) as live:
        for r in RESULTS:
            live.advance(r)
        assert live.failures == 1
    print_final(console, RESULTS, 3.0)
    text = out.getvalue()
    assert "4/4" in text and "1 failed" in text
    table = text[text.index("pca-batch apply"):]
    assert all(len(line) <= 100 for line in table.splitlines())
    assert "2027-01-01" in table and "unchanged" in table
    assert text.rstrip().endswith("4 entries, 1 issued, 1 unchanged, 1 failed, 1 skipped in 3.0s")


def test_a_wide_terminal_shows_every_column_whole() -> None:
    out = io.StringIO()
    console = Console(file=out, width=320, color_system=None, force_terminal=True)
    print_final(console, RESULTS, 3.0)
    header = next(line for line in out.getvalue().splitlines() if "certificate ARN" in line)
    assert header.split() == ["name", "status", "certificate", "ARN", "serial", "expiry", "attempts",
                              "duration", "error"]
    text = out.getvalue()
    assert ARN in text and "ab" * 16 in text
    assert "MalformedCSRException: The certificate signing request is invalid [not markup]." in text


def test_no_color_means_no_colour_codes_even_on_a_terminal(monkeypatch: object) -> None:
    import pytest

    mp = pytest.MonkeyPatch()
    mp.setenv("NO_COLOR", "1")
    try:
        out = io.StringIO()
        console = Console(file=out, width=100, force_terminal=True)
        print_final(console, RESULTS, 1.0)
    finally:
        mp.undo()
    assert "\x1b[31m" not in out.getvalue() and "\x1b[1;31m" not in out.getvalue()
    assert "bad" in out.getvalue()


def test_the_summary_says_when_the_run_was_interrupted() -> None:
    assert final_summary(RESULTS[:1], 0.5, interrupted=True) == "1 entries, 1 issued in 0.5s (interrupted)"


def test_no_entries_prints_just_the_summary() -> None:
    console, out = terminal_console()
    with LiveReport(console, 0):
        pass
    print_final(console, [], 0.0)
    assert out.getvalue().strip() == "0 entries in 0.0s"


def test_plain_line_mentions_a_kept_arn_for_an_unfinished_entry() -> None:
    r = Result(name="n", status=SKIPPED, certificate_arn=ARN, error_code="Interrupted",
               error_message="interrupted")
    assert plain_line(r) == f"skipped   n  Interrupted: interrupted  {ARN}"


def test_text_from_a_server_cannot_steer_the_terminal_or_split_a_log_line() -> None:
    console, out = plain_console()
    evil = Result(name="x", status=FAILED, attempts=1, error_code="Boom\x1b[2J",
                  error_message="line one\nline two\r\x07\x9b31m\tend")
    with LiveReport(console, 1) as live:
        live.advance(evil)
    text = out.getvalue()
    assert text.count("\n") == 1 and "\x1b" not in text and "\x07" not in text and "\x9b" not in text
    assert "Boom?[2J: line one line two ??31m\tend" in text


def test_log_lines_come_in_groups_but_never_wait_long(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import pca_batch.report.live as console_module

    now = [100.0]
    monkeypatch.setattr(console_module.time, "monotonic", lambda: now[0])
    console, out = plain_console()
    with LiveReport(console, len(RESULTS)) as live:
        live.advance(RESULTS[0])
        live.advance(RESULTS[1])
        assert out.getvalue() == ""  # grouped: nothing written yet
        live.tick()
        assert out.getvalue() == ""  # not waited long enough
        now[0] += LiveReport.FLUSH_S
        live.tick()  # the runner ticks a few times a second, results or not
        assert out.getvalue().splitlines() == [plain_line(RESULTS[0]), plain_line(RESULTS[1])]
        live.advance(RESULTS[2])
    assert out.getvalue().splitlines()[-1] == plain_line(RESULTS[2])  # the rest at the end


def test_logs_and_pipes_get_a_plain_console_and_terminals_rich() -> None:
    from pca_batch.report.text import PlainConsole, make_console

    assert isinstance(make_console(env={}), PlainConsole)  # pytest's stdout is no terminal
    assert not isinstance(make_console(env={"FORCE_COLOR": "1"}), PlainConsole)  # rich decides then
    assert not isinstance(make_console(stderr=True, env={"TTY_COMPATIBLE": "1"}), PlainConsole)


def test_the_plain_console_prints_text_as_it_is_and_renders_anything_else() -> None:
    from rich.table import Table

    from pca_batch.report.text import PlainConsole

    out = io.StringIO()
    plain = PlainConsole(file=out)
    plain.print("pca-batch: " + "x" * 150 + "\x1b[2J", markup=False)  # no wrapping at 80, no escape
    plain.print("two\nlines")
    table = Table("name", "status")
    table.add_row("web", "issued")
    plain.print(table)
    lines = out.getvalue().splitlines()
    assert lines[0] == "pca-batch: " + "x" * 150 + "?[2J"
    assert lines[1:3] == ["two", "lines"]
    assert any("web" in line and "issued" in line for line in lines[3:]) and "\x1b" not in out.getvalue()


def test_a_terminal_run_still_gets_rich_tables() -> None:
    import os
    import subprocess
    import sys

    from tests.support.common import REPO

    done = subprocess.run(
        [sys.executable, "-m", "pca_batch", "apply", str(REPO / "manifests" / "demo.yaml"), "--plan"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "TTY_COMPATIBLE": "1", "NO_COLOR": "1", "COLUMNS": "200", "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    assert "Plan for" in done.stdout and "━" in done.stdout  # the table, drawn by rich


def test_a_recovered_entry_says_no_issue_call_was_made() -> None:
    recovered = Result(name="db", status=RECOVERED, certificate_arn=ARN, serial="ef" * 16,
                       not_after="2027-03-01T00:00:00Z", attempts=0, duration_s=0.02)
    line = plain_line(recovered)
    assert line.startswith("recovered db  " + ARN)
    assert "no IssueCertificate call" in line and "attempt" not in line
    assert final_summary([*RESULTS, recovered], 1.0) == (
        "5 entries, 1 issued, 1 recovered, 1 unchanged, 1 failed, 1 skipped in 1.0s"
    )


def test_an_entry_issued_but_not_written_shows_its_arn() -> None:
    unwritten = Result(name="cut", status=FAILED, certificate_arn=ARN, attempts=1, error_code="Interrupted",
                       error_message="its certificate was issued, but its files were not written")
    assert plain_line(unwritten) == (f"failed    cut  Interrupted: its certificate was issued, but its files were "
                                     f"not written  (1 attempt)  {ARN}")
