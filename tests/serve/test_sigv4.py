"""`pca-batch serve --credentials`: every request's SigV4 signature is checked as AWS checks it."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import boto3
import botocore.auth
import pytest
from botocore import UNSIGNED
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import ClientError

from pca_batch.serve.protocol import ServiceError
from pca_batch.serve.sigv4 import Credentials, SignedRequest, parse_credentials, verify
from tests.support.moto_server import apply_env, aws_test_env
from tests.support.serve_server import serve_thread

KEY_ID, SECRET = "AKIDSERVETEST", "serve-test-secret"
TARGET = "ACMPrivateCA.ListCertificateAuthorities"


@pytest.fixture(scope="module")
def signed_server(aws_env: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_thread(tmp_path_factory.mktemp("sig"), credentials=Credentials(KEY_ID, SECRET)) as url:
        yield url


def acm(url: str, key: str = KEY_ID, secret: str = SECRET, **config: Any) -> Any:
    return boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret).client(
        "acm-pca", region_name="us-east-1", endpoint_url=url,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, **config),
    )  # fmt: skip


def error_of(call: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"], raised.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_the_right_credentials_pass_and_others_are_refused_with_403(signed_server: str) -> None:
    assert acm(signed_server).list_certificate_authorities()["CertificateAuthorities"] == []
    wrong_secret = acm(signed_server, secret="not-the-secret")
    assert error_of(wrong_secret.list_certificate_authorities) == ("InvalidSignatureException", 403)
    unknown_key = acm(signed_server, key="AKIDSOMEONEELSE")
    assert error_of(unknown_key.list_certificate_authorities) == ("UnrecognizedClientException", 403)
    unsigned = acm(signed_server, signature_version=UNSIGNED)
    assert error_of(unsigned.list_certificate_authorities) == ("MissingAuthenticationTokenException", 403)


def signed(url: str, body: bytes, moment: datetime | None = None, secret: str = SECRET) -> AWSRequest:
    request = AWSRequest(method="POST", url=url + "/", data=body,
                         headers={"X-Amz-Target": TARGET, "Content-Type": "application/x-amz-json-1.1"})  # fmt: skip
    signer = SigV4Auth(BotoCredentials(KEY_ID, secret), "acm-pca", "us-east-1")
    with mock.patch.object(botocore.auth, "get_current_datetime", lambda: moment or datetime.now(UTC)):
        signer.add_auth(request)  # signed at ``moment``
    return request


def send(url: str, request: AWSRequest, body: bytes) -> tuple[int, dict[str, Any]]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        conn.request("POST", "/", body=body, headers=headers)
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        conn.close()


def test_a_body_changed_after_signing_and_an_old_date_are_refused(signed_server: str) -> None:
    body = b'{"MaxResults": 5}'
    status, answer = send(signed_server, signed(signed_server, body), body)
    assert (status, answer) == (200, {"CertificateAuthorities": []})
    status, answer = send(signed_server, signed(signed_server, body), b'{"MaxResults": 6}')
    assert (status, answer["__type"]) == (403, "InvalidSignatureException")
    old = datetime.now(UTC) - timedelta(minutes=20)
    status, answer = send(signed_server, signed(signed_server, body, old), body)
    assert (status, answer["__type"]) == (403, "InvalidSignatureException")
    assert answer["message"].startswith("Signature expired: ")


def test_the_aws_cli_signs_as_serve_checks(signed_server: str, tmp_path: Path) -> None:
    def run(secret: str) -> subprocess.CompletedProcess[str]:
        env = {**aws_test_env(tmp_path / "aws"), "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": secret,
               "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
        return subprocess.run(
            [sys.executable, "-m", "awscli", "acm-pca", "list-certificate-authorities", "--endpoint-url",
             signed_server, "--output", "json"],
            env=apply_env(env), capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    good = run(SECRET)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout) == {"CertificateAuthorities": []}
    bad = run("wrong")
    assert bad.returncode == 255 and "InvalidSignatureException" in bad.stderr


def test_verify_matches_botocores_signer_on_paths_and_queries() -> None:
    url = "http://127.0.0.1:1234/some%20path/x?b=2&a=1&c=a%2Fb"
    request = AWSRequest(method="GET", url=url, data=b"", headers={"X-Amz-Target": TARGET})
    SigV4Auth(BotoCredentials(KEY_ID, SECRET), "acm-pca", "eu-west-1").add_auth(request)
    received = SignedRequest("GET", "/some%20path/x?b=2&a=1&c=a%2Fb",
                             [("Host", "127.0.0.1:1234"), *request.headers.items()], b"")  # fmt: skip
    auth = verify(received, {KEY_ID: Credentials(KEY_ID, SECRET)}, datetime.now(UTC))
    assert auth.region == "eu-west-1"
    with pytest.raises(ServiceError) as refused:
        verify(received, {KEY_ID: Credentials(KEY_ID, "other")}, datetime.now(UTC))
    assert (refused.value.code, refused.value.status) == ("InvalidSignatureException", 403)


@pytest.mark.parametrize("text", ["nocolon", ":secret", "KEY:", "bad key:secret"])
def test_credentials_must_be_key_id_colon_secret(text: str) -> None:
    with pytest.raises(ValueError):
        parse_credentials(text)
    assert SECRET not in repr(Credentials(KEY_ID, SECRET))
