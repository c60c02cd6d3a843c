"""`pca-batch schema [manifest|request|report]`: print a JSON Schema pca-batch publishes.

``manifest`` is for editors and ``check-jsonschema`` (every request member with its types,
enums, bounds and patterns, hover help and snippets); ``request`` is the IssueCertificate
request; ``report`` the JSON report of apply and plan.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from pca_batch.errors import EXIT_OK

if TYPE_CHECKING:
    from rich.console import Console

SCHEMAS = ("manifest", "request", "report")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("schema", help="print the JSON Schema of a manifest, a request or a report")
    p.add_argument("name", nargs="?", choices=SCHEMAS, default="manifest", help="which schema (default: manifest)")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, out: Console, err: Console) -> int:
    return run_schema(args.name, out)


def run_schema(name: str, out: Console) -> int:
    from pca_batch import schema

    files = {"manifest": schema.MANIFEST, "request": schema.REQUEST, "report": schema.REPORT}
    text = schema.text(files[name])
    out.file.write(text if text.endswith("\n") else text + "\n")
    out.file.flush()
    return EXIT_OK
