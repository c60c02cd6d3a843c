"""Idempotency tokens through `pca-batch serve`, as AWS honours them: the same token within five
minutes gives the same certificate (or CA), also when the calls arrive at the same moment."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from tests.support.moto_server import make_csr
from tests.support.serve_server import EC_CONFIG, activate_root, client

T = TypeVar("T")
THREADS = 8


@pytest.fixture(scope="module")
def root(serve_endpoint: str) -> str:
    acm = client(serve_endpoint)
    try:
        return activate_root(acm, "tokens root")
    finally:
        acm.close()


def at_once(serve_endpoint: str, call: Callable[[Any, int], T]) -> list[T]:
    """``call(client, i)`` from THREADS threads, each with its own client, released together."""
    clients = [client(serve_endpoint, max_pool_connections=1) for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS)

    def run(i: int) -> T:
        barrier.wait()
        return call(clients[i], i)

    try:
        with ThreadPoolExecutor(THREADS) as pool:
            return list(pool.map(run, range(THREADS)))
    finally:
        for c in clients:
            c.close()


@pytest.fixture
def csrs() -> Iterator[list[bytes]]:
    yield [make_csr(f"t{i}.example")[0] for i in range(THREADS)]


def issuer(root: str, csrs: list[bytes], token: Callable[[int], str]) -> Callable[[Any, int], str]:
    def issue(acm: Any, i: int) -> str:
        arn: str = acm.issue_certificate(
            CertificateAuthorityArn=root, Csr=csrs[i], SigningAlgorithm="SHA256WITHECDSA",
            Validity={"Value": 1, "Type": "DAYS"}, IdempotencyToken=token(i),
        )["CertificateArn"]  # fmt: skip
        return arn

    return issue


def test_one_token_from_threads_at_once_gives_one_certificate(
    serve_endpoint: str, root: str, csrs: list[bytes]
) -> None:
    arns = at_once(serve_endpoint, issuer(root, csrs, lambda i: "the-one-token"))
    assert len(set(arns)) == 1
    acm = client(serve_endpoint)
    try:
        answer = acm.get_certificate(CertificateAuthorityArn=root, CertificateArn=arns[0])
        assert answer["Certificate"].startswith("-----BEGIN CERTIFICATE-----")
    finally:
        acm.close()
    distinct = at_once(serve_endpoint, issuer(root, csrs, lambda i: f"token-{i}"))
    assert len(set(distinct)) == THREADS and arns[0] not in distinct


def test_one_create_token_from_threads_at_once_gives_one_ca(serve_endpoint: str) -> None:
    def create(acm: Any, i: int) -> str:
        arn: str = acm.create_certificate_authority(
            CertificateAuthorityConfiguration={**EC_CONFIG, "Subject": {"CommonName": f"racing {i}"}},
            CertificateAuthorityType="ROOT", IdempotencyToken="create-once",
        )["CertificateAuthorityArn"]  # fmt: skip
        return arn

    arns = at_once(serve_endpoint, create)
    assert len(set(arns)) == 1
    acm = client(serve_endpoint)
    try:
        listed = [ca["Arn"] for ca in acm.list_certificate_authorities()["CertificateAuthorities"]]
        assert listed.count(arns[0]) == 1
        names = {ca["CertificateAuthorityConfiguration"]["Subject"]["CommonName"]
                 for ca in acm.list_certificate_authorities()["CertificateAuthorities"]}  # fmt: skip
        assert len({n for n in names if n.startswith("racing")}) == 1
    finally:
        acm.close()
