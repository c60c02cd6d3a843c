"""What a person sees while ``pca-batch apply`` runs and after it.

On a terminal: a rich progress bar (done/total, rate, ETA, failures) owned by
the main thread, then a table of every entry and a one-line summary. Not on a
terminal (CI logs): one plain line per finished entry and the summary, without
control codes. Colours follow rich's rules, so ``NO_COLOR`` is respected.
Nothing here ever sees a private key: results carry paths, ARNs and serials.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from pca_batch.model import FAILED, ISSUED, RECOVERED, RECOVERED_NOTE, REVOKED, SKIPPED, UNCHANGED, Result
from pca_batch.report.json_report import summary_line
from pca_batch.report.text import write_lines

if TYPE_CHECKING:  # rich is imported only for a terminal: logs do without it
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.table import Table

WIDE = 200  # terminal columns from which the table shows certificate ARNs whole
STATUS_STYLES = {
    ISSUED: "green", RECOVERED: "blue", UNCHANGED: "cyan", FAILED: "bold red", SKIPPED: "yellow", REVOKED: "magenta"
}


def _progress_bar(console: Console, get_time: Callable[[], float] | None) -> Progress:
    """done/total, rate, ETA and failures, for a terminal."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Entries finished per second, over rich's speed window."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("-- /s" if speed is None else f"{speed:.1f}/s", style="progress.data.speed")

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[failures]}"),
        console=console,
        get_time=get_time,
    )


def _error_text(result: Result) -> str:
    if result.error_code is None and result.error_message is None:
        return ""
    return f"{result.error_code or 'Error'}: {result.error_message or ''}"


def plain_line(result: Result) -> str:
    """One line for a finished entry, for logs: status, name, then what matters for that status."""
    head = f"{result.status:<9} {result.name}"
    if result.status in (ISSUED, RECOVERED, UNCHANGED):
        plural = "" if result.attempts == 1 else "s"
        how = RECOVERED_NOTE if result.status == RECOVERED else f"{result.attempts} attempt{plural}"
        return (
            f"{head}  {result.certificate_arn}  serial {result.serial}  expires {result.not_after}"
            f"  {how}  {result.duration_s:.2f}s{_retired(result)}{_why(result)}"
        )
    if result.status == REVOKED:
        note = f"  {result.reason}" if result.reason else ""
        return f"{head}  {result.certificate_arn}  serial {result.serial}  reason {result.revocation_reason}{note}"
    detail = _error_text(result)
    if result.status == FAILED:
        detail += f"  ({result.attempts} attempt{'' if result.attempts == 1 else 's'})"
    if result.certificate_arn:
        detail += f"  {result.certificate_arn}"
    return f"{head}  {detail}"


def _retired(result: Result) -> str:
    return "".join(f"  replaced serial {r.serial} revoked ({r.reason})" for r in result.revoked_replaced)


class LiveReport:
    """Progress while the run goes on; call :meth:`advance` from the main thread only.

    Log lines are written in small groups (at most ``FLUSH_S`` apart, and at the end):
    a write per entry would make the main thread queue for the interpreter lock once
    more per entry, while the workers need it for their calls.
    """

    FLUSH_S = 0.25

    def __init__(
        self, console: Console, total: int, *, get_time: Callable[[], float] | None = None
    ) -> None:
        self.console = console
        self.total = total
        self.failures = 0
        self._get_time = get_time
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._lines: list[str] = []
        self._flushed = time.monotonic()

    def __enter__(self) -> LiveReport:
        if self.console.is_terminal and self.total:
            self._progress = _progress_bar(self.console, self._get_time)
            self._progress.start()
            self._task = self._progress.add_task("issuing", total=self.total, failures="")
        return self

    def advance(self, result: Result) -> None:
        if result.status == FAILED:
            self.failures += 1
        if self._progress is not None and self._task is not None:
            failures = f"[red]{self.failures} failed[/]" if self.failures else ""
            self._progress.update(self._task, advance=1, failures=failures)
        else:
            self._lines.append(plain_line(result))
            if time.monotonic() - self._flushed >= self.FLUSH_S:
                self._flush()

    def tick(self) -> None:
        """Write the lines that have waited ``FLUSH_S`` (call it now and then)."""
        if self._lines and time.monotonic() - self._flushed >= self.FLUSH_S:
            self._flush()

    def _flush(self) -> None:
        lines, self._lines = self._lines, []
        write_lines(self.console, lines)
        self._flushed = time.monotonic()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._flush()
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def short_arn(arn: str) -> str:
    """``…/certificate/HEX`` for a certificate ARN: the part that differs between rows."""
    head, sep, tail = arn.rpartition("/certificate/")
    return f"…{sep}{tail}" if head else arn


def results_table(results: Sequence[Result], *, width: int = 200) -> Table:
    """The table after a run. Below ``WIDE`` columns ARNs are shortened to their certificate
    part (the CA is the same on most rows; the report and the log lines have them whole)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    shorten = width < WIDE
    # ARNs, serials and errors fold; the short columns never wrap.
    table = Table(title="pca-batch apply", box=box.SIMPLE_HEAD)
    table.add_column("name", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("certificate ARN", overflow="fold")
    table.add_column("serial", overflow="fold")
    table.add_column("expiry", no_wrap=True)
    table.add_column("attempts", justify="right", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("error", overflow="fold")
    for r in results:
        table.add_row(
            Text(r.name),
            Text(r.status, style=STATUS_STYLES.get(r.status, "")),
            Text(short_arn(r.certificate_arn or "") if shorten else r.certificate_arn or ""),
            Text(r.serial or ""),
            Text((r.not_after or "")[:10]),  # the date; the report and the log lines have the time
            str(r.attempts),
            f"{r.duration_s:.2f}s",
            Text(_error_text(r) or _note(r), style="red" if r.status == FAILED else ""),
        )
    return table


def _note(result: Result) -> str:
    """The error column of a row that did not fail: a revocation's reason, replaced certificates revoked."""
    if result.status == REVOKED:
        return " ".join(filter(None, [result.revocation_reason, f"({result.reason})" if result.reason else ""]))
    return (_retired(result) + _why(result)).strip()


def _why(result: Result) -> str:
    """Why an issued entry was issued as it was, when the run has something to say (a lost key)."""
    return f"  ({result.reason})" if result.reason and result.status == ISSUED else ""


def final_summary(results: Sequence[Result], elapsed_s: float, *, interrupted: bool = False) -> str:
    line = f"{summary_line(results)} in {elapsed_s:.1f}s"
    return line + " (interrupted)" if interrupted else line


def print_final(
    console: Console, results: Sequence[Result], elapsed_s: float, *, interrupted: bool = False
) -> None:
    """The table (terminals only: logs already have a line per entry) and the summary line."""
    if console.is_terminal and results:
        console.print(results_table(results, width=console.width))
    write_lines(console, [final_summary(results, elapsed_s, interrupted=interrupted)])
