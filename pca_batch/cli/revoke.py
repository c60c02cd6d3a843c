"""`pca-batch revoke MANIFEST NAME... --reason REASON`: revoke entries' current certificates.

Only the parser is built at import; the core (pca_batch.run.revoke) when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pca_batch.acmpca import REVOCATION_REASONS, UNSPECIFIED, RevocationReason
from pca_batch.cli.args import add_backend_options, positive_int
from pca_batch.errors import UsageError
from pca_batch.model import ApplyOptions

if TYPE_CHECKING:
    from rich.console import Console


def reason(text: str) -> RevocationReason:
    """A RevocationReason, as AWS names it; a usage error with a did-you-mean otherwise."""
    if text in REVOCATION_REASONS:
        return cast(RevocationReason, text)
    from pca_batch.errors import suggestion

    hint = suggestion(text.upper().replace("-", "_"), REVOCATION_REASONS) or suggestion(text, REVOCATION_REASONS)
    raise UsageError(f"pca-batch revoke: --reason {text!r} is not one of {', '.join(REVOCATION_REASONS)}{hint}")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "revoke",
        help="revoke the current certificate of named entries (RevokeCertificate)",
        description="Revoke the current certificate of each named entry: the last one the journal records "
        "as issued for it. Every name is checked first: an unknown one, or one with no certificate on "
        "record, is an error and nothing is revoked. Each revocation is recorded in the journal, so a "
        "second run says 'already revoked' and asks nothing.",
    )
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("names", nargs="+", metavar="NAME", help="the entries whose certificates to revoke")
    p.add_argument("--reason", default=UNSPECIFIED, metavar="REASON",
                   help=f"one of {', '.join(REVOCATION_REASONS)} (default {UNSPECIFIED})")
    p.add_argument("--report", type=Path, metavar="FILE", help="write the JSON report here")
    add_backend_options(p)
    p.add_argument("--max-attempts", type=positive_int, metavar="N", help="attempts per call (default 8)")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, out: Console, err: Console) -> int:
    why = reason(args.reason)
    options = ApplyOptions(
        report=args.report, journal=args.journal, state=args.state, lock_timeout=args.lock_timeout, store=args.store,
        region=args.region, profile=args.profile, endpoint_url=args.endpoint_url, max_attempts=args.max_attempts,
    )
    return cmd_revoke(args.manifest, args.names, why, options, out)


def cmd_revoke(manifest_path: str, names: list[str], why: RevocationReason, options: ApplyOptions, out: Console) -> int:
    from pca_batch.errors import ManifestError
    from pca_batch.manifest.load import load_manifest
    from pca_batch.run.revoke import run_revoke

    manifest = load_manifest(manifest_path)
    if manifest.problems:
        raise ManifestError(manifest.problems)
    return run_revoke(manifest, names, why, options, out)
