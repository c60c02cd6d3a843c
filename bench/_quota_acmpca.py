"""A stand-in acm-pca endpoint that enforces AWS Private CA's request quotas, for bench_quota.

Like bench/_null_acmpca.py it speaks the JSON 1.1 protocol as botocore sends it
(keep-alive, ``X-Amz-Target``), but it answers like the service under load:

- a token bucket per operation (``--issue-rate`` IssueCertificate and ``--get-rate``
  GetCertificate calls a second, each bucket holding one second's worth); a call that
  finds its bucket empty is answered ``ThrottlingException`` (HTTP 400, the JSON 1.1
  error shape) and does nothing else;
- every answer, throttled or not, takes ``--latency`` seconds (50 ms by default);
- IssueCertificate signs a real certificate for the CSR (an EC P-256 CA made at start),
  and, as AWS does, gives the first certificate's ARN back when a (CA, idempotency token)
  comes again; GetCertificate answers that certificate and the CA's as the chain;
- DescribeCertificateAuthority says the CA is ACTIVE (any CA ARN in the account).

GET ``/__stats__`` answers its counters as JSON: per operation the calls, the throttled
calls, the times of the first and last call let through; per token the certificates
signed for it (1, or the run issued twice).

    python -m bench._quota_acmpca --issue-rate 25 --get-rate 75   # prints "listening on URL"
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench._null_acmpca import send_json, serve_until_terminated

STATS_PATH = "/__stats__"


class TokenBucket:
    """``rate`` tokens a second, at most ``capacity`` held; starts full."""

    def __init__(self, rate: float, capacity: float | None = None) -> None:
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate)
        self._tokens = self.capacity
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


class _Ca:
    """The one CA that signs every certificate."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench quota CA")])
        now = dt.datetime.now(dt.UTC)
        self.not_after = now + dt.timedelta(days=3650)
        self.cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(self.not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.name = name
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def sign(self, csr_pem: bytes, days: int) -> tuple[int, str]:
        csr = x509.load_pem_x509_csr(csr_pem)
        now = dt.datetime.now(dt.UTC)
        serial = x509.random_serial_number()
        cert = (
            x509.CertificateBuilder().subject_name(csr.subject).issuer_name(self.name)
            .public_key(csr.public_key()).serial_number(serial)
            .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=days))
            .sign(self.key, hashes.SHA256())
        )
        return serial, cert.public_bytes(serialization.Encoding.PEM).decode()


class Service:
    """The quota, the certificates and the counters, shared by the handler threads."""

    def __init__(self, issue_rate: float, get_rate: float, latency: float) -> None:
        self.buckets = {"IssueCertificate": TokenBucket(issue_rate), "GetCertificate": TokenBucket(get_rate)}
        self.latency = latency
        self.ca = _Ca()
        self.lock = threading.Lock()
        self.by_token: dict[tuple[str, str], str] = {}
        self.certificates: dict[str, str] = {}
        self.signed = Counter[str]()  # per token
        self.calls = Counter[str]()
        self.throttled = Counter[str]()
        self.first_ok: dict[str, float] = {}
        self.last_ok: dict[str, float] = {}

    def answer(self, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        arrived = time.time()
        with self.lock:
            self.calls[operation] += 1
        bucket = self.buckets.get(operation)
        if bucket is not None and not bucket.take():
            with self.lock:
                self.throttled[operation] += 1
            return 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}
        with self.lock:
            self.first_ok.setdefault(operation, arrived)
            self.last_ok[operation] = max(self.last_ok.get(operation, arrived), arrived)
        handler = getattr(self, "_" + operation, None)
        if handler is None:
            return 400, {"__type": "InvalidRequestException", "message": f"not here: {operation}"}
        answered: tuple[int, dict[str, Any]] = handler(body)
        return answered

    def _IssueCertificate(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:  # noqa: N802 - the API's name
        ca_arn = str(body.get("CertificateAuthorityArn", ""))
        token = str(body.get("IdempotencyToken") or "")
        with self.lock:
            known = self.by_token.get((ca_arn, token)) if token else None
        if known is not None:
            return 200, {"CertificateArn": known}
        days = int((body.get("Validity") or {}).get("Value") or 7)
        serial, pem = self.ca.sign(base64.b64decode(body["Csr"]), days)
        arn = f"{ca_arn}/certificate/{serial:032x}"
        with self.lock:
            known = self.by_token.get((ca_arn, token)) if token else None
            if known is not None:  # the same token at once from two threads: the first one wins
                return 200, {"CertificateArn": known}
            if token:
                self.by_token[(ca_arn, token)] = arn
            self.certificates[arn] = pem
            self.signed[token] += 1
        return 200, {"CertificateArn": arn}

    def _GetCertificate(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:  # noqa: N802
        with self.lock:
            pem = self.certificates.get(str(body.get("CertificateArn", "")))
        if pem is None:
            return 400, {"__type": "ResourceNotFoundException", "message": "no such certificate"}
        return 200, {"Certificate": pem, "CertificateChain": self.ca.pem}

    def _DescribeCertificateAuthority(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:  # noqa: N802
        return 200, {"CertificateAuthority": {
            "Arn": body.get("CertificateAuthorityArn"), "Status": "ACTIVE", "Type": "ROOT",
            "UsageMode": "GENERAL_PURPOSE", "NotAfter": self.ca.not_after.timestamp(),
            "CertificateAuthorityConfiguration": {
                "KeyAlgorithm": "EC_prime256v1", "SigningAlgorithm": "SHA256WITHECDSA",
                "Subject": {"CommonName": "bench quota CA"},
            },
        }}

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "calls": dict(self.calls), "throttled": dict(self.throttled),
                "first_ok": dict(self.first_ok), "last_ok": dict(self.last_ok),
                "signed_per_token": dict(self.signed),
            }


def handler_for(service: Service) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            started = time.monotonic()
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            operation = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
            status, answer = service.answer(operation, body)
            time.sleep(max(0.0, service.latency - (time.monotonic() - started)))
            send_json(self, status, answer)

        def do_GET(self) -> None:  # noqa: N802
            send_json(self, 200, service.stats() if self.path == STATS_PATH else {"error": "no such page"})

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # four processes of 64 connections may all connect at once


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--issue-rate", type=float, default=25.0)
    parser.add_argument("--get-rate", type=float, default=75.0)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args(argv)
    service = Service(args.issue_rate, args.get_rate, args.latency)
    return serve_until_terminated(_Server(("127.0.0.1", 0), handler_for(service)))


if __name__ == "__main__":
    sys.exit(main())
