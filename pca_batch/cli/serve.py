"""`pca-batch serve`: the local CA store as an AWS Private CA endpoint (acm-pca's JSON 1.1 API).

A thin layer: it reads the options into :class:`pca_batch.serve.main.ServeOptions`, prints the
endpoint once it listens, and serves until SIGINT or SIGTERM (exit 0).
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pca_batch.errors import EXIT_OK, UsageError
from pca_batch.model import DEFAULT_STORE

if TYPE_CHECKING:
    from rich.console import Console

CREDENTIALS_ENV = "PCA_BATCH_SERVE_CREDENTIALS"


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535 (0: any free port), not {text!r}")
    return int(text)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve the local CA store as an AWS Private CA endpoint (for the AWS CLI, boto3, Terraform)",
        description=(
            "Serve the local CA store as an AWS Private CA endpoint: acm-pca's 23 operations over JSON 1.1, "
            "as the AWS CLI, boto3 and other SDKs call them (--endpoint-url URL). Prints the URL once it "
            "listens; serves until SIGINT or SIGTERM. CRLs and audit reports are written where AWS writes "
            "them in S3, in a folder per bucket under --s3-dir, and CRLs are also served over HTTP at the "
            "URL the certificates name."
        ),
    )
    p.add_argument("--store", type=Path, default=Path(DEFAULT_STORE), metavar="DIR",
                   help=f"the store folder (default {DEFAULT_STORE}; made when missing)")  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=0, help="the port (default 0: a free port, printed)")
    p.add_argument("--region", default="us-east-1", help="the region of unsigned requests (default us-east-1)")
    p.add_argument("--account", default="123456789012", help="the account of new CAs (default 123456789012)")
    p.add_argument("--s3-dir", type=Path, metavar="DIR", help="the folder standing for S3 buckets (default STORE/s3)")
    p.add_argument(
        "--credentials",
        metavar="KEY_ID:SECRET",
        help=f"check every request's SigV4 signature against these (or set {CREDENTIALS_ENV}); default: no check",
    )
    p.add_argument("--log", type=Path, metavar="FILE", help="append one line per request to FILE")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, out: Console, err: Console) -> int:
    from pca_batch.serve.main import ServeOptions, is_loopback, serve
    from pca_batch.serve.sigv4 import parse_credentials

    text = args.credentials if args.credentials is not None else os.environ.get(CREDENTIALS_ENV) or None
    try:
        credentials = parse_credentials(text) if text is not None else None
    except ValueError as exc:
        source = "--credentials" if args.credentials is not None else CREDENTIALS_ENV
        raise UsageError(f"pca-batch serve: {source}: {exc}") from None
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", args.region):
        raise UsageError(f"pca-batch serve: --region {args.region!r} is not an AWS region name")
    if not re.fullmatch(r"\d{12}", args.account):
        raise UsageError(f"pca-batch serve: --account {args.account!r} is not a 12-digit AWS account ID")
    options = ServeOptions(
        store=args.store, s3_dir=args.s3_dir, host=args.host, port=args.port, region=args.region,
        account=args.account, credentials=credentials, log=args.log,
    )  # fmt: skip
    if not is_loopback(args.host):
        err.print(
            f"pca-batch serve: listening on {args.host}, not loopback: whoever reaches it can use the CA"
            + ("" if credentials else " (give --credentials)"),
            markup=False,
        )

    def announce(url: str) -> None:
        port = url.rsplit(":", 1)[1]
        checked = f"SigV4 checked for {credentials.access_key_id}" if credentials else "SigV4 not checked"
        out.file.write(
            f"pca-batch serve: listening on {url} (port {port})\n"
            f"  store {args.store}, buckets {options.buckets}, region {args.region}, account {args.account}, "
            f"{checked}\n"
            f"  aws acm-pca --endpoint-url {url} ...   (stop: Ctrl-C or SIGTERM)\n"
        )
        out.file.flush()

    serve(options, announce)
    out.file.write("pca-batch serve: stopped\n")
    out.file.flush()
    return EXIT_OK
