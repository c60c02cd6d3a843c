"""`pca-batch state`: look at and look after the state (list, unlock, compact), and bring a certificate
issued elsewhere under management (import)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from pca_batch.cli.args import add_backend_options, add_state_options, positive_int
from pca_batch.errors import EXIT_OK, UsageError
from pca_batch.model import ApplyOptions

if TYPE_CHECKING:
    from rich.console import Console

    from pca_batch.model import Manifest


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("state", help="list the state, remove a stale lock, compact it, import a certificate")
    commands = p.add_subparsers(dest="state_command", metavar="SUBCOMMAND", parser_class=type(p))
    p.set_defaults(handler=_missing_subcommand)

    listing = commands.add_parser("list", help="each entry's current certificate, as the state records it")
    listing.add_argument("manifest", metavar="MANIFEST")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    _common(listing, lock=False)
    listing.set_defaults(handler=_handle_list)

    unlock = commands.add_parser("unlock", help="remove a lock a run left behind (its ID is in the message)")
    unlock.add_argument("manifest", metavar="MANIFEST")
    unlock.add_argument("lock_id", metavar="LOCK_ID")
    _common(unlock, lock=False)
    unlock.set_defaults(handler=_handle_unlock)

    compact = commands.add_parser("compact", help="move the state's history to its archive now")
    compact.add_argument("manifest", metavar="MANIFEST")
    _common(compact, lock=True)
    compact.set_defaults(handler=_handle_compact)

    _register_import(commands)


def _common(p: argparse.ArgumentParser, *, lock: bool) -> None:
    add_state_options(p, lock=lock)
    p.add_argument("--profile", help="the named AWS profile (an s3 state)")


def _missing_subcommand(args: argparse.Namespace, out: Console, err: Console) -> int:
    raise UsageError("pca-batch state: a subcommand is needed (list, unlock, compact, import)")


def _options(args: argparse.Namespace) -> ApplyOptions:
    return ApplyOptions(journal=args.journal, state=args.state, profile=args.profile,
                        lock_timeout=getattr(args, "lock_timeout", None))


def _manifest(path: str) -> Manifest:
    """The manifest, for where its state is and its entries' outputs: problems elsewhere (an entry
    that does not validate) do not stop a look at the state; one in its ``state:`` block does."""
    from pca_batch.errors import ManifestError
    from pca_batch.manifest.load import load_manifest

    manifest = load_manifest(path)
    wrong = [p for p in manifest.problems if p.path == "$.state" or p.path.startswith("$.state.")]
    if wrong:
        raise ManifestError(wrong)
    return manifest


def _handle_list(args: argparse.Namespace, out: Console, err: Console) -> int:
    return run_list(_manifest(args.manifest), _options(args), out, as_json=args.json)


def _handle_unlock(args: argparse.Namespace, out: Console, err: Console) -> int:
    return run_unlock(_manifest(args.manifest), args.lock_id, _options(args), out)


def _handle_compact(args: argparse.Namespace, out: Console, err: Console) -> int:
    return run_compact(_manifest(args.manifest), _options(args), out)


def run_list(manifest: Manifest, options: ApplyOptions, out: Console, *, as_json: bool = False) -> int:
    from pca_batch.report.text import write_lines
    from pca_batch.state import open_state
    from pca_batch.state.listing import as_table, rows

    state = open_state(manifest, options)
    try:
        found = rows(manifest, state.read().events)
    finally:
        state.close()
    if as_json:
        from pca_batch.state.listing import as_json as to_json

        out.file.write(to_json(found, state.display))
        out.file.flush()
        return EXIT_OK
    waiting = sum(1 for r in found if r.token is not None)
    keys = f", {waiting} key(s) whose certificate is not on record" if waiting else ""
    write_lines(out, as_table(found) + [f"{len(found) - waiting} certificate(s) on record in {state.display}{keys}"])
    return EXIT_OK


def run_unlock(manifest: Manifest, lock_id: str, options: ApplyOptions, out: Console) -> int:
    from pca_batch.report.text import write_lines
    from pca_batch.state import open_state

    state = open_state(manifest, options)
    try:
        gone = state.unlock(lock_id)
    finally:
        state.close()
    write_lines(out, [f"removed the lock {gone.id} on {state.display} ({gone.operation}, {gone.who}, "
                      f"since {gone.created})"])
    return EXIT_OK


def run_compact(manifest: Manifest, options: ApplyOptions, out: Console) -> int:
    from pca_batch.report.text import write_lines
    from pca_batch.state import ALL, open_state

    state = open_state(manifest, options)
    try:
        with state.locked("state compact", ALL, options.lock_timeout):
            before = state.read()
            done = state.maybe_compact(before, whole=True, force=True)
    finally:
        state.close()
    if done is None:
        write_lines(out, [f"{state.display}: nothing to compact ({len(before.events)} record(s), no history)"])
    else:
        write_lines(out, [f"{state.display} compacted: {done.kept} record(s) kept, {done.archived} moved to "
                          f"{done.archive}"])
    return EXIT_OK


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
        journal=args.journal, state=args.state, lock_timeout=args.lock_timeout, store=args.store,
        region=args.region, profile=args.profile, endpoint_url=args.endpoint_url, max_attempts=args.max_attempts,
        allow_outside_paths=args.allow_outside_paths,
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
