"""A null acm-pca endpoint for the benches: the fastest any server can answer a boto3 client.

It speaks the JSON 1.1 protocol as botocore sends it (keep-alive, ``X-Amz-Target``) and answers
every operation the serve bench uses with a canned, well-formed answer, doing no work at all: no
signature check, no store, no signing. The rate a client reaches against it is the client's own
ceiling on this machine (its CPU per call), which no real server can pass.

    python -m bench._null_acmpca      # prints "listening on http://127.0.0.1:PORT", serves until SIGTERM
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from types import FrameType
from typing import Any

CA = "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/00000000-0000-4000-8000-000000000000"
PEM = "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n"
CSR = "-----BEGIN CERTIFICATE REQUEST-----\nMA==\n-----END CERTIFICATE REQUEST-----\n"
ANSWERS = {
    "CreateCertificateAuthority": {"CertificateAuthorityArn": CA},
    "GetCertificateAuthorityCsr": {"Csr": CSR},
    "IssueCertificate": {"CertificateArn": f"{CA}/certificate/0123456789abcdef0123456789abcdef"},
    "GetCertificate": {"Certificate": PEM, "CertificateChain": PEM},
    "ImportCertificateAuthorityCertificate": {},
}


def send_json(handler: BaseHTTPRequestHandler, status: int, body: Mapping[str, Any]) -> None:
    """Answer as AWS's JSON 1.1 protocol does (the bench stand-ins' one way to answer)."""
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/x-amz-json-1.1")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        operation = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
        answer = ANSWERS.get(operation)
        status, body = (200, answer) if answer is not None else (400, {"__type": "InvalidRequestException",
                                                                        "message": f"not here: {operation}"})
        send_json(self, status, body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
        pass


def main() -> int:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    return serve_until_terminated(server)


def serve_until_terminated(server: HTTPServer) -> int:
    """Print the address the bench waits for, then answer until SIGTERM."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
