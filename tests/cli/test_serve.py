"""`pca-batch serve` as a process: it prints where it listens, writes nothing per request (an
access log with --log), survives malformed requests, and stops cleanly on SIGINT and SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pca_batch.serve.main import is_loopback
from tests.support.common import Cli
from tests.support.moto_server import apply_env, aws_test_env
from tests.support.serve_server import ServeProcess, client, serve_process


@pytest.fixture(scope="module", autouse=True)
def dummy_credentials(aws_env: Path) -> None:
    """boto3 in this process signs with the test's dummy keys and talks to loopback only."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, Path]]:
    folder = tmp_path_factory.mktemp("served")
    env = apply_env(aws_test_env(folder / "aws"))
    with serve_process(folder / "store", "--log", str(folder / "access.log"), env=env) as running:
        yield running, folder


def raw(url: str, data: bytes) -> bytes:
    """Send ``data`` as it is on a new connection; everything the server answers until it closes."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=30) as conn:
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def post(target: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: {target}\r\nContent-Type: application/x-amz-json-1.1\r\n"
        f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
    ).encode() + body


def status_and_body(answer: bytes) -> tuple[int, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (post("ACMPrivateCA.ListCertificateAuthorities", b"{not json"), 400, "SerializationException"),
        (post("ACMPrivateCA.ListCertificateAuthorities", b"[1, 2]"), 400, "SerializationException"),
        (post("ACMPrivateCA.NoSuchOperation", b"{}"), 400, "UnknownOperationException"),
        (post("ACMPrivateCA.ListCertificateAuthorities", b'{"MaxResults": "ten"}'), 400, "SerializationException"),
        (post("ACMPrivateCA.DescribeCertificateAuthority", b"{}"), 400, "ValidationException"),
        (b"GARBAGE\r\n\r\n", 400, None),
        (b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413, None),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411, None),
        (b"GET /nothing-here HTTP/1.1\r\nConnection: close\r\n\r\n", 404, None),
    ],
)
def test_a_malformed_request_is_answered_and_the_server_keeps_serving(
    served: tuple[ServeProcess, Path], request_bytes: bytes, status: int, code: str | None
) -> None:
    running, _ = served
    got_status, body = status_and_body(raw(running.url, request_bytes))
    assert got_status == status
    if code is not None:
        assert json.loads(body)["__type"] == code
    assert running.process.poll() is None
    acm = client(running.url)
    try:
        assert "CertificateAuthorities" in acm.list_certificate_authorities()
    finally:
        acm.close()


def test_the_access_log_has_a_line_per_request_and_stdout_nothing(served: tuple[ServeProcess, Path]) -> None:
    running, folder = served
    acm = client(running.url)
    try:
        acm.list_certificate_authorities()
        with pytest.raises(acm.exceptions.ResourceNotFoundException):
            acm.describe_certificate_authority(
                CertificateAuthorityArn="arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/nope"
            )
    finally:
        acm.close()
    lines = (folder / "access.log").read_text().splitlines()
    assert any('"POST /" 200' in line and "ACMPrivateCA.ListCertificateAuthorities" in line for line in lines)
    assert any(
        '"POST /" 400' in line and "DescribeCertificateAuthority ResourceNotFoundException" in line for line in lines
    )
    assert "listening on" in running.banner and f"(port {urlsplit(running.url).port})" in running.banner


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_it_stops_cleanly_on_sigint_and_sigterm(tmp_path: Path, sig: int) -> None:
    with serve_process(tmp_path / "store", env=apply_env(aws_test_env(tmp_path / "aws"))) as running:
        acm = client(running.url)
        try:
            acm.list_certificate_authorities()
        finally:
            acm.close()
        code, out, err = running.stop(sig)
    assert (code, out, err) == (0, "pca-batch serve: stopped\n", "")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", urlsplit(running.url).port or 0), timeout=2).close()


def test_credentials_come_from_the_environment_too(tmp_path: Path) -> None:
    env = apply_env({**aws_test_env(tmp_path / "aws"), "PCA_BATCH_SERVE_CREDENTIALS": "AKIDENV:env-secret"})
    with serve_process(tmp_path / "store", env=env) as running:
        assert "SigV4 checked for AKIDENV" in running.banner
        acm = client(running.url)  # the dummy test credentials: refused
        try:
            with pytest.raises(acm.exceptions.ClientError) as refused:
                acm.list_certificate_authorities()
            assert refused.value.response["Error"]["Code"] == "UnrecognizedClientException"
        finally:
            acm.close()
        running.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--credentials", "no-colon"], "--credentials: expected ACCESS_KEY_ID:SECRET_ACCESS_KEY"),
        (["--port", "70000"], "expected a port number"),
        (["--region", "moon"], "--region 'moon' is not an AWS region name"),
        (["--account", "12"], "--account '12' is not a 12-digit AWS account ID"),
    ],
)
def test_bad_options_are_exit_2(cli: Cli, tmp_path: Path, args: list[str], message: str) -> None:
    result = cli("serve", "--store", tmp_path / "store", *args)
    assert result.code == 2
    assert message in result.err
    assert not (tmp_path / "store").exists()


def test_a_port_in_use_is_exit_2(cli: Cli, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = cli("serve", "--store", tmp_path / "store", "--port", str(taken.getsockname()[1]))
    assert result.code == 2 and "cannot listen on 127.0.0.1:" in result.err


def test_a_store_that_cannot_be_made_is_exit_2(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    result = cli("serve", "--store", tmp_path / "file" / "store")
    assert result.code == 2 and "cannot open the store" in result.err


def test_loopback_addresses() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1")
