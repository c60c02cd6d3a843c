"""The bench's test doubles: moto's application behind a server that keeps connections
open, and the fault proxy reusing them (tests/support/keepalive_wsgi.py, tests/support/fault_proxy.py)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pca_batch.backends.aws import AwsBackend
from tests.support.fault_proxy import FaultProxy
from tests.support.keepalive_wsgi import Server
from tests.support.moto_server import (
    create_active_ca,
    issue_request,
    make_csr,
    moto_process,
)


@contextmanager
def serving(app: Any) -> Iterator[Server]:
    server = Server(app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Connection", "close")])
    return [f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}?{environ['QUERY_STRING']} ".encode(), body]


def exchange(port: int, data: bytes, answers: int) -> tuple[list[bytes], bool]:
    """Send ``data`` on one connection; the answers read, and whether the server then closed it."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(data)
        raw = b""
        got: list[bytes] = []
        while len(got) < answers:
            chunk = conn.recv(65536)
            if not chunk:
                break
            raw += chunk
            while b"\r\n\r\n" in raw:
                head, _, rest = raw.partition(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                if len(rest) < length:
                    break
                got.append(head + b"\r\n\r\n" + rest[:length])
                raw = rest[length:]
        conn.settimeout(0.5)
        try:
            closed = conn.recv(1) == b""
        except TimeoutError:
            closed = False
    return got, closed


def test_the_server_answers_requests_one_after_another_on_one_connection() -> None:
    with serving(echo) as server:
        two = (b"POST /a?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
               b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
        answers, closed = exchange(server.port, two, 2)
    assert [a.split(b"\r\n")[0] for a in answers] == [b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK"]
    assert answers[0].endswith(b"POST /a?x=1 abc") and answers[1].endswith(b"POST /b? ")
    assert all(b"Connection: close" not in a for a in answers)  # the application's own is dropped
    assert not closed  # kept open for the next request


def test_the_server_closes_when_asked_and_refuses_what_it_does_not_read() -> None:
    with serving(echo) as server:
        answers, closed = exchange(server.port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 1)
        assert answers[0].startswith(b"HTTP/1.1 200 OK") and closed
        answers, closed = exchange(server.port, b"GET / HTTP/1.0\r\n\r\n", 1)
        assert closed
        chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        answers, closed = exchange(server.port, chunked, 1)
        assert answers[0].startswith(b"HTTP/1.1 411") and closed

        def broken(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            raise RuntimeError("a bug")

        server.app = broken
        answers, closed = exchange(server.port, b"GET / HTTP/1.1\r\n\r\n", 1)
        assert answers[0].startswith(b"HTTP/1.1 500") and closed


def test_the_bench_moto_answers_the_aws_backend_through_the_proxy_on_one_connection(
    aws_env: Any,  # noqa: F811
) -> None:
    with moto_process() as (endpoint, _pid), FaultProxy(endpoint) as proxy:
        ca = create_active_ca(endpoint, "us-east-1")
        backend = AwsBackend(endpoint_url=proxy.endpoint)
        try:
            for i in range(5):
                csr, key = make_csr(f"svc-{i}.example")
                arn = backend.issue_certificate(issue_request(ca, csr, token=f"tok-{i}"))
                bundle = backend.get_certificate(ca, arn)
                cert = x509.load_pem_x509_certificate(bundle.certificate.encode())
                spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
                assert spki == key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        finally:
            backend.close()
        stats = proxy.snapshot()
    assert stats["forwarded"] == {"IssueCertificate": 5, "GetCertificate": 5}
    assert stats["upstream_connections"] == 1


def test_the_proxy_opens_a_new_connection_when_moto_closes_each(moto: str) -> None:  # noqa: F811
    ca = create_active_ca(moto, "us-east-1")
    with FaultProxy(moto) as proxy:
        backend = AwsBackend(endpoint_url=proxy.endpoint)
        try:
            for i in range(3):
                arn = backend.issue_certificate(issue_request(ca, make_csr(f"w-{i}.example")[0], token=f"w-{i}"))
                assert backend.get_certificate(ca, arn).certificate.startswith("-----BEGIN CERTIFICATE-----")
        finally:
            backend.close()
        stats = proxy.snapshot()
    assert stats["upstream_connections"] == 6  # werkzeug, moto's own server, closes after every answer


def test_the_quota_stand_in_throttles_past_its_bucket_and_issues_each_token_once(
    aws_env: Any,  # noqa: F811
) -> None:
    import pytest

    from bench._quota_acmpca import Service, TokenBucket, _Server, handler_for
    from pca_batch.errors import BackendError

    service = Service(issue_rate=1.0, get_rate=100.0, latency=0.0)
    server = _Server(("127.0.0.1", 0), handler_for(service))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ca = "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/1b1b1b1b-2222-4333-8444-555555555555"
    csr, key = make_csr("quota.example")
    backend = AwsBackend(endpoint_url=f"http://127.0.0.1:{server.server_address[1]}", region="us-east-1")
    try:
        arn = backend.issue_certificate(issue_request(ca, csr, token="tok-quota"))
        with pytest.raises(BackendError) as caught:  # the bucket holds one second's worth: 1 call
            backend.issue_certificate(issue_request(ca, csr, token="tok-quota"))
        assert caught.value.code == "ThrottlingException"
        service.buckets["IssueCertificate"] = TokenBucket(1000.0)  # room again: the same token, the same ARN
        assert backend.issue_certificate(issue_request(ca, csr, token="tok-quota")) == arn
        bundle = backend.get_certificate(ca, arn)
        assert backend.describe_certificate_authority(ca).status == "ACTIVE"
    finally:
        backend.close()
        server.shutdown()
        server.server_close()
    cert = x509.load_pem_x509_certificate(bundle.certificate.encode())
    assert cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == key.public_key(
    ).public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    stats = service.stats()
    assert stats["calls"]["IssueCertificate"] == 3 and stats["throttled"] == {"IssueCertificate": 1}
    assert stats["signed_per_token"] == {"tok-quota": 1}
