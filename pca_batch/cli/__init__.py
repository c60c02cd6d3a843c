"""The command line: a thin argparse layer over the core.

``main(argv) -> int``; each sub-command is a function with explicit arguments.
Expected failures (``PcaBatchError``) become a message and an exit status;
anything else is a bug: a short message, the traceback in a file, exit 3.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pca_batch import __version__
from pca_batch.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    ManifestError,
    PcaBatchError,
    UsageError,
)
from pca_batch.model import ApplyOptions, Shard

if TYPE_CHECKING:
    from rich.console import Console


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so usage errors flow through main()."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _shard(text: str) -> Shard:
    m = re.fullmatch(r"(\d+)/(\d+)", text)
    if not m or not (1 <= int(m.group(1)) <= int(m.group(2))):
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N, not {text!r}")
    return Shard(int(m.group(1)), int(m.group(2)))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, not {value}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError(f"expected 0 or more, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pca-batch", description="Issue many AWS Private CA certificates from one YAML manifest.")
    parser.add_argument("--version", action="version", version=f"pca-batch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("validate", help="check manifests; exit 0 when valid, 2 when not")
    p.add_argument("manifests", nargs="+", metavar="MANIFEST")
    p.add_argument("--allow-outside-paths", action="store_true", help="let outputs lie outside the manifest's folder")

    p = sub.add_parser("apply", help="issue every entry of a manifest (or --plan: the dry run)")
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--plan", action="store_true", help="dry run: show what would be issued; change nothing")
    p.add_argument("--report", type=Path, metavar="FILE", help="write the JSON report here")
    p.add_argument("--junit", type=Path, metavar="FILE", help="write a JUnit XML report here")
    p.add_argument("--journal", type=Path, metavar="FILE", help="the journal (default .pca-batch/journal.jsonl)")
    p.add_argument("--store", type=Path, metavar="DIR", help="local backend: the store folder")
    p.add_argument("--region", help="aws backend: the region (default: each CA ARN's)")
    p.add_argument("--profile", help="aws backend: the named profile")
    p.add_argument("--endpoint-url", help="aws backend: the endpoint")
    p.add_argument("--concurrency", type=_positive_int, metavar="N", help="entries in flight at once (default 16)")
    p.add_argument("--max-rate", type=_rate, metavar="N", help="IssueCertificate calls per second (0: no limit)")
    p.add_argument("--max-attempts", type=_positive_int, metavar="N", help="attempts per call (default 8)")
    p.add_argument("--fail-fast", action="store_true", help="start no new entry after a failure")
    p.add_argument("--allow-outside-paths", action="store_true", help="let outputs lie outside the manifest's folder")
    p.add_argument("--offline", action="store_true", help="with --plan: make no call at all (skip preflight)")
    p.add_argument("--force", action="store_true", help="reissue every entry")
    p.add_argument("--shard", type=_shard, metavar="K/N", help="run the K-th of N disjoint parts of the manifest")
    p.add_argument(
        "--detailed-exitcode", action="store_true", help="with --plan: 0 nothing to do, 2 changes pending, 1 error"
    )

    p = sub.add_parser("report", help="work with JSON reports")
    report_sub = p.add_subparsers(dest="report_command", metavar="SUBCOMMAND", parser_class=_Parser)
    merge = report_sub.add_parser("merge", help="join the reports of several shards into one")
    merge.add_argument("reports", nargs="+", type=Path, metavar="REPORT")
    merge.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="the merged report")

    p = sub.add_parser("skeleton", help="print a commented manifest skeleton")
    p.add_argument("--request", action="store_true", help="print the IssueCertificate request JSON skeleton")

    try:
        from pca_batch.cli import ca as ca_cli
    except ImportError:  # the local CA commands are optional in a trimmed build
        ca_cli = None  # type: ignore[assignment]
    if ca_cli is not None:
        ca_cli.register(sub)
    return parser


def cmd_validate(paths: Sequence[str], allow_outside_paths: bool, out: Console, err: Console) -> int:
    from pca_batch.manifest.load import load_manifest
    from pca_batch.manifest.problems import print_problems

    status = EXIT_OK
    for path in paths:
        try:
            manifest = load_manifest(path, allow_outside_paths=allow_outside_paths)
        except ManifestError as exc:
            print_problems(exc.problems, err)
            status = EXIT_INVALID
            continue
        problems = manifest.all_problems()
        if problems:
            print_problems(problems, err)
            status = EXIT_INVALID
        else:
            n = len(manifest.entries)
            out.print(f"{path}: valid ({n} entr{'ies' if n != 1 else 'y'})", markup=False, highlight=False)
    return status


def cmd_report_merge(reports: Sequence[Path], output: Path, out: Console) -> int:
    """Join shard reports; exit 1 when any entry failed or was invalid, as apply would."""
    from pca_batch.report.json_report import merge_reports, write_report
    from pca_batch.report.live import plain_line, print_final
    from pca_batch.report.text import write_lines

    results = merge_reports(reports)
    write_report(output, results)
    if not out.is_terminal:
        write_lines(out, [plain_line(r) for r in results])
    print_final(out, results, sum(r.duration_s for r in results))
    return 1 if any(r.status in ("failed", "invalid") for r in results) else EXIT_OK


def cmd_skeleton(request: bool, out: Console) -> int:
    from pca_batch.manifest.skeleton import MANIFEST_SKELETON, request_skeleton

    text = request_skeleton() if request else MANIFEST_SKELETON
    out.file.write(text if text.endswith("\n") else text + "\n")
    out.file.flush()
    return EXIT_OK


def _consoles() -> tuple[Console, Console]:
    from pca_batch.report.text import make_console

    return make_console(), make_console(stderr=True)


def _dispatch(args: argparse.Namespace, out: Console, err: Console) -> int:
    if args.command == "validate":
        return cmd_validate(args.manifests, args.allow_outside_paths, out, err)
    if args.command == "skeleton":
        return cmd_skeleton(args.request, out)
    if args.command == "report":
        if args.report_command != "merge":
            raise UsageError("pca-batch report: a subcommand is needed (merge)")
        return cmd_report_merge(args.reports, args.output, out)
    if args.command == "apply":
        from pca_batch.cli.apply import run_apply

        options = ApplyOptions(
            plan=args.plan,
            report=args.report,
            junit=args.junit,
            journal=args.journal,
            store=args.store,
            region=args.region,
            profile=args.profile,
            endpoint_url=args.endpoint_url,
            concurrency=args.concurrency,
            max_rate=args.max_rate,
            max_attempts=args.max_attempts,
            fail_fast=args.fail_fast,
            allow_outside_paths=args.allow_outside_paths,
            offline=args.offline,
            force=args.force,
            shard=args.shard,
            detailed_exitcode=args.detailed_exitcode,
        )
        return run_apply(args.manifest, options, out, err)
    handler = getattr(args, "handler", None)
    if handler is not None:
        return int(handler(args))
    raise UsageError("pca-batch: a command is needed (validate, apply, skeleton, ca); see pca-batch --help")


def main(argv: Sequence[str] | None = None) -> int:
    """The program. Called without ``argv`` (as the installed command is), it ends the process
    itself once everything is written (see :func:`_end_now`); with ``argv`` it returns."""
    code = _main(argv)
    if argv is None:
        _end_now(code)
    return code


def _end_now(code: int) -> None:
    """Exit without the interpreter's teardown: freeing the AWS SDK's models and the entries
    costs a tenth of a second that a CI job waits for. Only when nothing is left to finish:
    every file pca-batch writes is closed and flushed by then, and a thread still running
    (a call left in flight by an interrupted run, whose ARN goes to the journal) makes the
    exit the ordinary one, which waits for it."""
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed or broken stream: let the ordinary exit deal with it
        return
    os._exit(code)


def _main(argv: Sequence[str] | None) -> int:
    out, err = _consoles()
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        return _dispatch(args, out, err)
    except ManifestError as exc:
        from pca_batch.manifest.problems import print_problems

        print_problems(exc.problems, err)
        return exc.exit_code
    except PcaBatchError as exc:
        err.print(f"pca-batch: {exc}" if not str(exc).startswith("pca-batch") else str(exc), markup=False)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("pca-batch: interrupted", markup=False)
        return EXIT_INTERRUPTED
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except BrokenPipeError:
        return EXIT_OK
    except Exception:
        fd, name = tempfile.mkstemp(prefix="pca-batch-crash-", suffix=".txt")
        with os.fdopen(fd, "w") as fh:
            traceback.print_exc(file=fh)
        err.print(
            f"pca-batch: internal error (a bug, not your input); the traceback is in {name}. "
            "Please report it.",
            markup=False,
        )
        return EXIT_INTERNAL
