"""`pca-batch ca ...`: manage the embedded local private CA's authorities.

A thin argparse layer: each handler unpacks the namespace into explicit arguments
for :mod:`pca_batch.backends.local.admin` and prints what it returns (JSON, or the
CA certificate as PEM) on standard output. Errors are raised as BackendError or
UsageError; ``cli.main`` turns them into a message and an exit status.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pca_batch.acmpca import GENERAL_PURPOSE, USAGE_MODES
from pca_batch.errors import EXIT_OK, UsageError
from pca_batch.model import DEFAULT_STORE
from pca_batch.pki.algorithms import DEFAULT_KEY_ALGORITHM, KEY_ALGORITHMS


def _admin() -> Any:
    # only for `ca` commands: keeps other commands' start-up short
    from pca_batch.backends.local import admin as local_admin

    return local_admin


def _write(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _json(value: Any, *, indent: int | None = 2) -> None:
    _write(json.dumps(value, indent=indent))


def _validity_days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of days, not {text!r}") from None
    if not 1 <= value <= 36500:
        raise argparse.ArgumentTypeError(f"expected 1 to 36500 days, not {value}")
    return value


def cmd_create(
    store: Path,
    common_name: str,
    key_algorithm: str,
    validity_days: int,
    parent: str | None,
    usage_mode: str,
    region: str | None,
    account: str | None,
) -> int:
    if not common_name.strip():
        raise UsageError("ca create: --common-name must not be empty")
    arn = _admin().create_authority(
        store,
        common_name=common_name,
        key_algorithm=key_algorithm,
        validity_days=validity_days,
        parent_arn=parent,
        usage_mode=usage_mode,
        region=region,
        account=account,
    )
    _json({"CertificateAuthorityArn": arn}, indent=None)
    return EXIT_OK


def cmd_list(store: Path) -> int:
    _json({"CertificateAuthorities": _admin().list_authorities(store)})
    return EXIT_OK


def cmd_certificate(store: Path, ca_arn: str) -> int:
    _write(_admin().authority_certificate(store, ca_arn))
    return EXIT_OK


def cmd_set_status(store: Path, ca_arn: str, status: str) -> int:
    _admin().set_authority_status(store, ca_arn, status)
    return EXIT_OK


def cmd_audit_report(store: Path, ca_arn: str) -> int:
    _json(_admin().audit_report(store, ca_arn))
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add the ``ca`` command and its sub-commands to the top-level parser's subparsers."""
    ca = subparsers.add_parser("ca", help="manage the local private CA (backend type local)")
    commands = ca.add_subparsers(dest="ca_command", metavar="CA_COMMAND", parser_class=type(ca))
    ca.set_defaults(handler=_missing_subcommand)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
        p.add_argument(
            "--store",
            type=Path,
            default=Path(DEFAULT_STORE),
            metavar="DIR",
            help=f"the store folder (default {DEFAULT_STORE})",
        )
        return p

    def add_arn(p: argparse.ArgumentParser) -> None:
        p.add_argument("--certificate-authority-arn", required=True, metavar="ARN", dest="ca_arn")

    p = add("create", "create a root CA, or with --parent a subordinate CA; prints its ARN")
    p.add_argument("--common-name", required=True, metavar="CN")
    p.add_argument("--key-algorithm", choices=KEY_ALGORITHMS, default=DEFAULT_KEY_ALGORITHM)
    p.add_argument("--validity-days", type=_validity_days, default=3650, metavar="N")
    p.add_argument("--parent", metavar="CA_ARN", help="the CA that signs this one (a subordinate CA)")
    p.add_argument("--usage-mode", choices=USAGE_MODES, default=GENERAL_PURPOSE)
    p.add_argument("--region", metavar="R", help="the ARN's region (default: the parent's, else us-east-1)")
    p.add_argument(
        "--account", metavar="ID", help="the ARN's account (default: the parent's, else 123456789012)"
    )
    p.set_defaults(
        handler=lambda a: cmd_create(
            a.store,
            a.common_name,
            a.key_algorithm,
            a.validity_days,
            a.parent,
            a.usage_mode,
            a.region,
            a.account,
        )
    )

    p = add("list", "list the CAs in the store (JSON)")
    p.set_defaults(handler=lambda a: cmd_list(a.store))

    p = add("certificate", "print a CA's certificate (PEM)")
    add_arn(p)
    p.set_defaults(handler=lambda a: cmd_certificate(a.store, a.ca_arn))

    p = add("disable", "disable a CA: it issues nothing until enabled")
    add_arn(p)
    p.set_defaults(handler=lambda a: cmd_set_status(a.store, a.ca_arn, "DISABLED"))

    p = add("enable", "enable a disabled CA")
    add_arn(p)
    p.set_defaults(handler=lambda a: cmd_set_status(a.store, a.ca_arn, "ACTIVE"))

    p = add("audit-report", "print a CA's audit report: every certificate it issued (JSON)")
    add_arn(p)
    p.set_defaults(handler=lambda a: cmd_audit_report(a.store, a.ca_arn))


def _missing_subcommand(args: argparse.Namespace) -> int:
    raise UsageError(
        "pca-batch ca: a sub-command is needed (create, list, certificate, disable, enable, audit-report)"
    )
