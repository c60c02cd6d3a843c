"""`pca-batch state SUBCOMMAND`: the state (the journal) that proves what was issued.

``state import MANIFEST NAME CERTIFICATE_ARN`` brings a certificate issued earlier (by a shell
loop, the console, another tool) under management. Each subcommand is a function of its own
(``_register_import`` adds its parser, ``_handle_import`` runs it), so that more join the group
the same way. Only the parsers are built at import; the core when a subcommand runs.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from pca_batch.cli.args import add_backend_options, positive_int
from pca_batch.errors import UsageError
from pca_batch.model import ApplyOptions

if TYPE_CHECKING:
    from rich.console import Console

SUBCOMMANDS = "import"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "state", help="the state that proves what was issued: import a certificate issued elsewhere",
        description="The state (the journal beside the manifest, or --journal) records every certificate "
        "pca-batch issued, so that a re-run issues nothing twice.",
    )
    commands = p.add_subparsers(dest="state_command", metavar="SUBCOMMAND", parser_class=type(p))
    p.set_defaults(handler=_missing_subcommand)
    _register_import(commands)


def _missing_subcommand(args: argparse.Namespace, out: Console, err: Console) -> int:
    raise UsageError(f"pca-batch state: a subcommand is needed ({SUBCOMMANDS}); see pca-batch state --help")


# -- state import --------------------------------------------------------------------------------


def _register_import(commands: Any) -> None:
    p = commands.add_parser(
        "import", help="bring a certificate issued earlier under management",
        description="Fetch CERTIFICATE_ARN (GetCertificate), check that it is entry NAME's certificate "
        "(the entry's CA, its CSR's or private key's public key, its subject and SANs), record it in the "
        "state and write the entry's output files, as apply does. The next apply finds the entry unchanged "
        "and makes no call for it. When anything differs, each difference is named and nothing is "
        "recorded or written (exit 2).",
    )
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("name", metavar="NAME", help="the entry the certificate is for")
    p.add_argument("certificate_arn", metavar="CERTIFICATE_ARN",
                   help="arn:aws:acm-pca:REGION:ACCOUNT:certificate-authority/CA_ID/certificate/SERIAL")
    add_backend_options(p)
    p.add_argument("--max-attempts", type=positive_int, metavar="N", help="attempts per call (default 8)")
    p.add_argument("--allow-outside-paths", action="store_true", help="let outputs lie outside the manifest's folder")
    p.set_defaults(handler=_handle_import)


def _handle_import(args: argparse.Namespace, out: Console, err: Console) -> int:
    options = ApplyOptions(
        journal=args.journal, store=args.store, region=args.region, profile=args.profile,
        endpoint_url=args.endpoint_url, max_attempts=args.max_attempts, allow_outside_paths=args.allow_outside_paths,
    )
    return cmd_import(args.manifest, args.name, args.certificate_arn, options, out)


def cmd_import(manifest_path: str, name: str, certificate_arn: str, options: ApplyOptions, out: Console) -> int:
    from pca_batch.errors import ManifestError
    from pca_batch.manifest.load import load_manifest
    from pca_batch.run.importing import run_import

    manifest = load_manifest(manifest_path, allow_outside_paths=options.allow_outside_paths)
    if manifest.problems:
        raise ManifestError(manifest.problems)
    return run_import(manifest, name, certificate_arn, options, out)
