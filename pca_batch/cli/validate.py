"""`pca-batch validate`: check manifests; exit 0 when valid, 2 when not. Writes nothing."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pca_batch.errors import EXIT_INVALID, EXIT_OK, ManifestError

if TYPE_CHECKING:
    from rich.console import Console


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("validate", help="check manifests; exit 0 when valid, 2 when not")
    p.add_argument("manifests", nargs="+", metavar="MANIFEST")
    p.add_argument("--allow-outside-paths", action="store_true", help="let outputs lie outside the manifest's folder")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, out: Console, err: Console) -> int:
    return run_validate(args.manifests, args.allow_outside_paths, out, err)


def run_validate(paths: Sequence[str], allow_outside_paths: bool, out: Console, err: Console) -> int:
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
