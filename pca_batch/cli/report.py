"""`pca-batch report merge`: join the JSON reports of several shards into one."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pca_batch.errors import EXIT_FAILED, EXIT_OK, UsageError

if TYPE_CHECKING:
    from rich.console import Console


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("report", help="work with JSON reports")
    commands = p.add_subparsers(dest="report_command", metavar="SUBCOMMAND", parser_class=type(p))
    p.set_defaults(handler=_missing_subcommand)
    merge = commands.add_parser("merge", help="join the reports of several shards into one")
    merge.add_argument("reports", nargs="+", type=Path, metavar="REPORT")
    merge.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="the merged report")
    merge.set_defaults(handler=_handle_merge)


def _missing_subcommand(args: argparse.Namespace, out: Console, err: Console) -> int:
    raise UsageError("pca-batch report: a subcommand is needed (merge)")


def _handle_merge(args: argparse.Namespace, out: Console, err: Console) -> int:
    return run_merge(args.reports, args.output, out)


def run_merge(reports: Sequence[Path], output: Path, out: Console) -> int:
    """Join shard reports; exit 1 when any entry failed or was invalid, as apply would."""
    from pca_batch.report.json_report import merge_reports, write_report
    from pca_batch.report.live import plain_line, print_final
    from pca_batch.report.text import write_lines

    results, rates = merge_reports(reports)
    write_report(output, results, rates)
    if not out.is_terminal:
        write_lines(out, [plain_line(r) for r in results])
    print_final(out, results, sum(r.duration_s for r in results))
    return EXIT_FAILED if any(r.status in ("failed", "invalid") for r in results) else EXIT_OK
