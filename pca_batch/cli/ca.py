"""`pca-batch ca ...`: manage the embedded local private CA's authorities.

A thin argparse layer: each handler unpacks the namespace into explicit arguments
for :mod:`pca_batch.backends.local.admin` and prints what it returns on the out
console. Every sub-command follows one convention (:data:`CONVENTION`, shown by
``pca-batch ca --help``). Errors are raised as BackendError or UsageError;
``cli.main`` turns them into a message and an exit status.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pca_batch.acmpca import GENERAL_PURPOSE, USAGE_MODES
from pca_batch.cli.args import days
from pca_batch.errors import EXIT_OK, UsageError
from pca_batch.model import DEFAULT_CRL_DAYS, DEFAULT_CRL_URL, DEFAULT_STORE, CrlConfig, NewAuthority
from pca_batch.pki.algorithms import DEFAULT_KEY_ALGORITHM, KEY_ALGORITHMS

if TYPE_CHECKING:
    from rich.console import Console

COMMANDS = ("create", "list", "certificate", "disable", "enable", "audit-report", "crl")
CONVENTION = (
    "Every sub-command works on a store folder (--store, default .pca-batch). The CA a "
    "sub-command acts on is its ARN argument (or --certificate-authority-arn ARN, alias "
    "--ca-arn, as the AWS CLI names it; when both are given they must agree). Output is JSON "
    "on standard output, as the AWS CLI prints it. Where the answer holds a certificate "
    "(create, certificate), --pem prints the certificate as PEM instead of the JSON, and "
    "-o FILE also writes it to FILE (atomically; what is printed does not change)."
)


def _admin() -> Any:
    # only for `ca` commands: keeps other commands' start-up short
    from pca_batch.backends.local import admin as local_admin

    return local_admin


def _write(out: Console, text: str) -> None:
    out.file.write(text if text.endswith("\n") else text + "\n")
    out.file.flush()


def _json(out: Console, value: Any) -> None:
    _write(out, json.dumps(value, indent=4))  # as the AWS CLI indents


def _answer(out: Console, answer: dict[str, Any], certificate: str, pem: bool, output: Path | None) -> None:
    """The convention's three outputs: JSON, or the PEM with --pem; the PEM in a file with -o."""
    if output is not None:
        from pca_batch.files import atomic_write

        atomic_write(output, certificate)
    if pem:
        _write(out, certificate)
    else:
        _json(out, answer)


def cmd_create(store: Path, ca: NewAuthority, pem: bool, output: Path | None, out: Console) -> int:
    if not ca.common_name.strip():
        raise UsageError("ca create: --common-name must not be empty")
    admin = _admin()
    arn = admin.create_authority(store, ca)
    certificate = admin.authority_certificate(store, arn) if pem or output else ""
    _answer(out, {"CertificateAuthorityArn": arn}, certificate, pem, output)
    return EXIT_OK


def cmd_list(store: Path, out: Console) -> int:
    _json(out, {"CertificateAuthorities": _admin().list_authorities(store)})
    return EXIT_OK


def cmd_certificate(store: Path, ca_arn: str, pem: bool, output: Path | None, out: Console) -> int:
    answer = _admin().get_certificate_authority_certificate(store, ca_arn)
    _answer(out, answer, answer["Certificate"], pem, output)
    return EXIT_OK


def cmd_set_status(store: Path, ca_arn: str, status: str, out: Console) -> int:
    _admin().set_authority_status(store, ca_arn, status)
    _json(out, {"CertificateAuthorityArn": ca_arn, "Status": status})
    return EXIT_OK


def cmd_audit_report(store: Path, ca_arn: str, out: Console) -> int:
    _json(out, _admin().audit_report(store, ca_arn))
    return EXIT_OK


def cmd_crl(store: Path, ca_arn: str, pem: bool, output: Path | None, out: Console) -> int:
    """Make the CA's next CRL: JSON of what it holds, or the CRL as PEM with --pem; -o FILE
    writes it (DER, as AWS writes CRLs, or PEM with --pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from pca_batch.files import atomic_write

    crl = _admin().certificate_revocation_list(store, ca_arn)
    text = crl.public_bytes(Encoding.PEM).decode("ascii")
    if output is not None:
        atomic_write(output, text if pem else crl.public_bytes(Encoding.DER))
    if pem:
        _write(out, text)
        return EXIT_OK
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    _json(
        out,
        {
            "CertificateAuthorityArn": ca_arn,
            "CrlNumber": number,
            "ThisUpdate": crl.last_update_utc.isoformat(),
            "NextUpdate": crl.next_update_utc.isoformat() if crl.next_update_utc else None,
            "RevokedCertificates": [
                {"Serial": format(r.serial_number, "032x"), "RevokedAt": r.revocation_date_utc.isoformat()}
                for r in crl
            ],
        },
    )
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add the ``ca`` command and its sub-commands to the top-level parser's subparsers."""
    ca = subparsers.add_parser(
        "ca",
        help="manage the local private CA (backend type local)",
        description=f"Manage the local private CA (backend type local). {CONVENTION}",
    )
    commands = ca.add_subparsers(dest="ca_command", metavar="CA_COMMAND", parser_class=type(ca))
    ca.set_defaults(handler=_missing_subcommand)

    def add(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = commands.add_parser(name, help=help_text, description=description)
        p.add_argument(
            "--store",
            type=Path,
            default=Path(DEFAULT_STORE),
            metavar="DIR",
            help=f"the store folder (default {DEFAULT_STORE})",
        )
        return p

    def add_arn(p: argparse.ArgumentParser) -> None:
        p.add_argument("arn", nargs="?", metavar="ARN", help="the CA's ARN")
        p.add_argument(
            "--certificate-authority-arn", "--ca-arn", metavar="ARN", dest="ca_arn", help="the CA's ARN, as an option"
        )

    def add_pem(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument("--pem", action="store_true", help=f"print {what} as PEM instead of the JSON")
        p.add_argument(
            "-o", "--output", type=Path, metavar="FILE", help=f"also write {what} to FILE as PEM (atomically)"
        )

    p = add(
        "create",
        "create a root CA, or with --parent a subordinate CA; prints its ARN (JSON)",
        'Create a root CA, or with --parent a subordinate CA. Prints {"CertificateAuthorityArn": ARN} '
        "as `aws acm-pca create-certificate-authority` does; --pem prints the new CA's certificate instead, "
        "-o FILE also writes it to FILE.",
    )
    p.add_argument("--common-name", required=True, metavar="CN")
    p.add_argument("--key-algorithm", choices=KEY_ALGORITHMS, default=DEFAULT_KEY_ALGORITHM)
    p.add_argument("--validity-days", type=days(1, 36500), default=3650, metavar="N")
    p.add_argument("--parent", metavar="CA_ARN", help="the CA that signs this one (a subordinate CA)")
    p.add_argument("--usage-mode", choices=USAGE_MODES, default=GENERAL_PURPOSE)
    p.add_argument("--region", metavar="R", help="the ARN's region (default: the parent's, else us-east-1)")
    p.add_argument("--account", metavar="ID", help="the ARN's account (default: the parent's, else 123456789012)")
    p.add_argument(
        "--crl",
        action="store_true",
        help="CRLs: every certificate the CA issues names its CRL (<crl-url>/<CA id>.crl); `ca crl` makes it",
    )
    p.add_argument("--crl-url", metavar="URL", help=f"the CRLs' folder URL (with --crl; default {DEFAULT_CRL_URL})")
    p.add_argument(
        "--crl-days",
        type=days(1, 5000, " (AWS's ExpirationInDays)"),
        metavar="N",
        help=f"a CRL's nextUpdate is N days after its thisUpdate (with --crl; default {DEFAULT_CRL_DAYS})",
    )
    add_pem(p, "the new CA's certificate")
    p.set_defaults(handler=_handle_create)

    p = add(
        "list",
        "list the CAs in the store (JSON)",
        'Print {"CertificateAuthorities": [...]} as `aws acm-pca list-certificate-authorities` does.',
    )
    p.set_defaults(handler=lambda a, out, err: cmd_list(a.store, out))

    p = add(
        "certificate",
        "print a CA's certificate and chain (JSON; --pem: the certificate as PEM)",
        'Print {"Certificate": PEM, "CertificateChain": PEM} as `aws acm-pca '
        "get-certificate-authority-certificate` does (a root CA has no CertificateChain); --pem prints "
        "the CA's certificate alone as PEM instead, -o FILE also writes it to FILE.",
    )
    add_arn(p)
    add_pem(p, "the CA's certificate")
    p.set_defaults(handler=lambda a, out, err: cmd_certificate(a.store, _arn(a), a.pem, a.output, out))

    p = add(
        "disable",
        "disable a CA: it issues nothing until enabled",
        'Disable a CA: it issues nothing until enabled. Prints {"CertificateAuthorityArn": ARN, '
        '"Status": "DISABLED"}.',
    )
    add_arn(p)
    p.set_defaults(handler=lambda a, out, err: cmd_set_status(a.store, _arn(a), "DISABLED", out))

    p = add(
        "enable",
        "enable a disabled CA",
        'Enable a disabled CA. Prints {"CertificateAuthorityArn": ARN, "Status": "ACTIVE"}.',
    )
    add_arn(p)
    p.set_defaults(handler=lambda a, out, err: cmd_set_status(a.store, _arn(a), "ACTIVE", out))

    p = add(
        "audit-report",
        "print a CA's audit report: every certificate it issued (JSON)",
        "Print the CA's audit report, every certificate it issued, oldest first: the JSON list "
        "AWS Private CA writes as an audit report.",
    )
    add_arn(p)
    p.set_defaults(handler=lambda a, out, err: cmd_audit_report(a.store, _arn(a), out))

    p = add(
        "crl",
        "make the CA's current CRL (JSON of its entries; --pem: the CRL as PEM; -o FILE: DER)",
        "Make the CA's current complete CRL as AWS Private CA makes it (next CRL number, thisUpdate now, "
        "nextUpdate after the CA's --crl-days, every revoked certificate until it expires) and print what it "
        "holds as JSON; --pem prints the CRL as PEM instead; -o FILE also writes it to FILE: DER, as AWS "
        "writes CRLs to S3, or PEM with --pem.",
    )
    add_arn(p)
    p.add_argument("--pem", action="store_true", help="print the CRL as PEM instead of the JSON (and write PEM)")
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="also write the CRL to FILE (DER; PEM with --pem)")
    p.set_defaults(handler=lambda a, out, err: cmd_crl(a.store, _arn(a), a.pem, a.output, out))


def _arn(args: argparse.Namespace) -> str:
    """The CA's ARN: the argument, the option, or both when they agree."""
    positional, option = args.arn, args.ca_arn
    if positional is not None and option is not None and positional != option:
        raise UsageError(f"pca-batch ca {args.ca_command}: two different CA ARNs given ({positional} and {option})")
    arn = positional if positional is not None else option
    if arn is None:
        raise UsageError(
            f"pca-batch ca {args.ca_command}: the CA's ARN is needed (ARN or --certificate-authority-arn ARN)"
        )
    return str(arn)


def _handle_create(args: argparse.Namespace, out: Console, err: Console) -> int:
    if not args.crl and (args.crl_url is not None or args.crl_days is not None):
        raise UsageError("pca-batch ca create: --crl-url and --crl-days need --crl")
    crl = None
    if args.crl:
        crl = CrlConfig(url=args.crl_url or DEFAULT_CRL_URL, days=args.crl_days or DEFAULT_CRL_DAYS)
    ca = NewAuthority(
        common_name=args.common_name,
        key_algorithm=args.key_algorithm,
        validity_days=args.validity_days,
        parent_arn=args.parent,
        usage_mode=args.usage_mode,
        region=args.region,
        account=args.account,
        crl=crl,
    )
    return cmd_create(args.store, ca, args.pem, args.output, out)


def _missing_subcommand(args: argparse.Namespace, out: Console, err: Console) -> int:
    raise UsageError(f"pca-batch ca: a sub-command is needed ({', '.join(COMMANDS)})")
