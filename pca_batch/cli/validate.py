"""`pca-batch validate`: check manifests; exit 0 when valid, 2 when not. Writes nothing but --junit.

Under GitHub Actions every problem is also an annotation at its line, and the step summary
gets their table; ``--junit`` writes a test case per entry, for CI test views (GitLab's).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pca_batch.errors import EXIT_INVALID, EXIT_OK, ManifestError, Problem

if TYPE_CHECKING:
    from rich.console import Console

    from pca_batch.model import Manifest


@dataclass(frozen=True)
class ValidateOptions:
    allow_outside_paths: bool = False
    offline: bool = False  # no environment needed: an unset ${VAR} is no problem (its value goes unchecked)
    junit: Path | None = None


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("validate", help="check manifests; exit 0 when valid, 2 when not")
    p.add_argument("manifests", nargs="+", metavar="MANIFEST")
    p.add_argument("--allow-outside-paths", action="store_true", help="let outputs lie outside the manifest's folder")
    p.add_argument(
        "--offline",
        action="store_true",
        help="away from the run's environment (a pre-commit hook): an unset ${VAR} is no problem, its value unchecked",
    )
    p.add_argument("--junit", type=Path, metavar="FILE", help="write a JUnit XML report: a test case per entry")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, out: Console, err: Console) -> int:
    options = ValidateOptions(allow_outside_paths=args.allow_outside_paths, offline=args.offline, junit=args.junit)
    return run_validate(args.manifests, options, out, err)


def run_validate(paths: Sequence[str], options: ValidateOptions, out: Console, err: Console) -> int:
    from pca_batch.manifest.problems import print_problems
    from pca_batch.report.github import report_problems

    status = EXIT_OK
    checked: list[tuple[str, Manifest | None, Sequence[Problem]]] = []
    for path in paths:
        manifest, problems = _check(path, options)
        checked.append((path, manifest, manifest.problems if manifest is not None else problems))
        if problems:
            print_problems(problems, err)
            report_problems(problems, display=path, command="validate", console=out)
            status = EXIT_INVALID
        elif manifest is not None:
            out.print(_valid_line(path, manifest), markup=False, highlight=False)
    if options.junit is not None:
        from pca_batch.files import atomic_write
        from pca_batch.report.junit import validation_junit

        atomic_write(options.junit, validation_junit(checked))
    return status


def _check(path: str, options: ValidateOptions) -> tuple[Manifest | None, list[Problem]]:
    """The manifest (None when it cannot be read at all) and every problem found in it."""
    from pca_batch.manifest.load import load_manifest, load_without_env

    load = load_without_env if options.offline else load_manifest
    try:
        manifest = load(path, allow_outside_paths=options.allow_outside_paths)
    except ManifestError as exc:
        return None, list(exc.problems)
    return manifest, manifest.all_problems()


def _valid_line(path: str, manifest: Manifest) -> str:
    n = len(manifest.entries)
    line = f"{path}: valid ({n} entr{'ies' if n != 1 else 'y'})"
    if manifest.unset_env:  # --offline: say what could not be checked
        line += "; not checked, as not set: " + ", ".join(f"${{{name}}}" for name in manifest.unset_env)
    return line
