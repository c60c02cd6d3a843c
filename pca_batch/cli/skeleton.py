"""`pca-batch skeleton`: print a commented manifest (or the request JSON) to start from."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from pca_batch.errors import EXIT_OK

if TYPE_CHECKING:
    from rich.console import Console


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("skeleton", help="print a commented manifest skeleton")
    p.add_argument("--request", action="store_true", help="print the IssueCertificate request JSON skeleton")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, out: Console, err: Console) -> int:
    return run_skeleton(args.request, out)


def run_skeleton(request: bool, out: Console) -> int:
    from pca_batch.manifest.skeleton import MANIFEST_SKELETON, request_skeleton

    text = request_skeleton() if request else MANIFEST_SKELETON
    out.file.write(text if text.endswith("\n") else text + "\n")
    out.file.flush()
    return EXIT_OK
