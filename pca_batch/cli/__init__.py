"""The command line: a thin argparse layer over the core.

``main(argv) -> int``. Each command is a module of this package (validate, apply,
revoke, report, skeleton, schema, ca, serve, state) with ``register(subparsers)``, which adds its parser and sets
its ``handler(args, out, err) -> int``: the handler unpacks the namespace and calls
a function with explicit arguments; no Namespace goes further.

Expected failures (``PcaBatchError``) become a message and an exit status;
anything else is a bug: a short message, the traceback in a file, exit 3.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pca_batch import __version__
from pca_batch.cli import apply, ca, report, revoke, schema, serve, skeleton, state, validate
from pca_batch.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ManifestError,
    PcaBatchError,
    UsageError,
)

if TYPE_CHECKING:
    from rich.console import Console

Handler = Callable[[argparse.Namespace, "Console", "Console"], int]


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so usage errors flow through main()."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The root parser; each command's module adds its own sub-parser and handler."""
    parser = _Parser(prog="pca-batch", description="Issue many AWS Private CA certificates from one YAML manifest.")
    parser.add_argument("--version", action="version", version=f"pca-batch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for command in (validate, apply, revoke, report, skeleton, schema, ca, serve, state):
        command.register(sub)
    return parser


def _consoles() -> tuple[Console, Console]:
    from pca_batch.report.text import make_console

    return make_console(), make_console(stderr=True)


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
        handler: Handler | None = getattr(args, "handler", None)
        if handler is None:
            raise UsageError(
                "pca-batch: a command is needed "
                "(validate, apply, revoke, report, skeleton, schema, ca, serve, state); see --help"
            )
        return handler(args, out, err)
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
        import tempfile  # here, not at the start of every command
        import traceback

        fd, name = tempfile.mkstemp(prefix="pca-batch-crash-", suffix=".txt")
        with os.fdopen(fd, "w") as fh:
            traceback.print_exc(file=fh)
        err.print(
            f"pca-batch: internal error (a bug, not your input); the traceback is in {name}. "
            "Please report it.",
            markup=False,
        )
        return EXIT_INTERNAL
