"""`pca-batch serve` for the tests: in a thread of this process, or as a real process.

A pytest plugin (see tests/conftest.py): the module-scoped ``serve_endpoint`` fixture is a
server on 127.0.0.1 over a fresh store, beside moto's ``moto``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import boto3
import pytest
from botocore.config import Config

from pca_batch.serve.main import ServeOptions, running
from tests.support.common import REPO

URL = re.compile(r"listening on (http://127\.0\.0\.1:(\d+))")
EC_CONFIG = {"KeyAlgorithm": "EC_prime256v1", "SigningAlgorithm": "SHA256WITHECDSA"}
ROOT_TEMPLATE = "arn:aws:acm-pca:::template/RootCACertificate/V1"


@contextmanager
def serve_thread(store: Path, **options: Any) -> Iterator[str]:
    """`pca-batch serve` in a thread of this process (no signals); yields its URL."""
    with running(ServeOptions(store=store, **options)) as server:
        yield server.url


@dataclass
class ServeProcess:
    url: str
    process: subprocess.Popen[str]
    banner: str  # what it printed on start
    store: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> tuple[int, str, str]:
        """Send ``sig``; its exit status and what it printed after the banner, on stdout and stderr."""
        self.process.send_signal(sig)
        out, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, out, err


@contextmanager
def serve_process(store: Path, *args: str, env: Mapping[str, str] | None = None) -> Iterator[ServeProcess]:
    """`python -m pca_batch serve --store STORE ARGS...` as its own process; yields once it listens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pca_batch", "serve", "--store", str(store), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env if env is not None else os.environ),
    )
    try:
        banner = _read_banner(process)
        m = URL.search(banner)
        if m is None:
            problem = process.stderr.read() if process.stderr and process.poll() is not None else ""
            raise RuntimeError(f"pca-batch serve did not start: {banner!r} {problem}")
        yield ServeProcess(m.group(1), process, banner, store)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=20)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _read_banner(process: subprocess.Popen[str], timeout: float = 60) -> str:
    """The first three lines it prints (or what it printed before it ended)."""
    assert process.stdout is not None
    lines: list[str] = []
    stream: IO[str] = process.stdout

    def read() -> None:
        for _ in range(3):
            line = stream.readline()
            if not line:
                return
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return "".join(lines)


def client(url: str, region: str = "us-east-1", **config: Any) -> Any:
    """A boto3 acm-pca client for the server at ``url`` (one attempt per call)."""
    return boto3.session.Session().client(
        "acm-pca",
        region_name=region,
        endpoint_url=url,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, **config),
    )


def activate_root(acm: Any, common_name: str, config: Mapping[str, Any] = EC_CONFIG, **create: Any) -> str:
    """Create a root CA through the API, sign its own certificate, import it: its ARN, ACTIVE."""
    arn: str = acm.create_certificate_authority(
        CertificateAuthorityConfiguration={**config, "Subject": {"CommonName": common_name}},
        CertificateAuthorityType="ROOT",
        **create,
    )["CertificateAuthorityArn"]
    csr = acm.get_certificate_authority_csr(CertificateAuthorityArn=arn)["Csr"]
    issued = acm.issue_certificate(
        CertificateAuthorityArn=arn,
        Csr=csr.encode("ascii"),
        SigningAlgorithm=config["SigningAlgorithm"],
        TemplateArn=ROOT_TEMPLATE,
        Validity={"Value": 10, "Type": "YEARS"},
    )["CertificateArn"]
    pem = acm.get_certificate(CertificateAuthorityArn=arn, CertificateArn=issued)["Certificate"]
    acm.import_certificate_authority_certificate(CertificateAuthorityArn=arn, Certificate=pem.encode("ascii"))
    return arn


@pytest.fixture(scope="module")
def serve_endpoint(aws_env: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`pca-batch serve` on 127.0.0.1 over a fresh store, for the module; its URL."""
    with serve_thread(tmp_path_factory.mktemp("serve-store")) as url:
        yield url
