"""`pca-batch apply` with the aws backend, end to end over real HTTP, directly and through faults, against
each of two AWS Private CA stand-ins: moto's server, and `pca-batch serve` (the ``endpoint`` fixture).

The CAs are SHORT_LIVED_CERTIFICATE: moto reports every CA so, whatever was asked, and serve's are
created so, so that one scenario holds for both (entries of 7 days pass, of 30 days fail preflight)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from pca_batch.acmpca import SHORT_LIVED, region_of
from pca_batch.backends.aws import NO_CREDENTIALS
from pca_batch.model import Shard
from pca_batch.plan.shards import in_shard
from tests.support.common import Cli
from tests.support.fault_proxy import FaultProxy, Faults
from tests.support.moto_server import (
    AwsEntry,
    aws_test_env,
    create_active_ca,
    free_port,
    patch_env,
    write_aws_manifest,
)


@pytest.fixture(scope="module", params=["moto", "serve"])
def endpoint(request: pytest.FixtureRequest) -> str:
    """moto's server, or `pca-batch serve` (each module-scoped): their endpoint URL."""
    url: str = request.getfixturevalue("moto" if request.param == "moto" else "serve_endpoint")
    return url


@pytest.fixture(scope="module")
def ca_east(endpoint: str) -> str:
    return create_active_ca(endpoint, "us-east-1", "pca-batch test root east", SHORT_LIVED)


@pytest.fixture(scope="module")
def ca_west(endpoint: str) -> str:
    return create_active_ca(endpoint, "us-west-2", "pca-batch test root west", SHORT_LIVED)


class Reader:
    """GetCertificate straight from the server: plain boto3, no pca-batch, no proxy."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._clients: dict[str, Any] = {}

    def get_certificate(self, ca_arn: str, certificate_arn: str) -> dict[str, Any]:
        region = str(region_of(ca_arn))
        if region not in self._clients:
            self._clients[region] = boto3.session.Session().client(
                "acm-pca", region_name=region, endpoint_url=self.endpoint
            )
        answer: dict[str, Any] = self._clients[region].get_certificate(
            CertificateAuthorityArn=ca_arn, CertificateArn=certificate_arn
        )
        return answer

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


@pytest.fixture(scope="module")
def reader(endpoint: str) -> Iterator[Reader]:
    r = Reader(endpoint)
    yield r
    r.close()


def read_report(path: Path) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in json.loads(path.read_text())["results"]}


def assert_issued_as_the_server_has_them(
    reader: Reader,
    folder: Path,
    report: dict[str, dict[str, Any]],
    keys: dict[str, bytes],
    cas: dict[str, str],
) -> None:
    """Every entry issued by its CA; the files hold exactly what GetCertificate answers."""
    assert set(report) == set(keys)
    arns = [r["certificate_arn"] for r in report.values()]
    assert len(set(arns)) == len(arns)
    for name, row in report.items():
        assert row["status"] == "issued", row
        assert row["error"] is None
        assert row["certificate_authority_arn"] == cas[name]
        assert row["certificate_arn"].startswith(cas[name] + "/certificate/")
        answer = reader.get_certificate(cas[name], row["certificate_arn"])
        certificate = (folder / "out" / f"{name}.pem").read_text()
        chain = (folder / "out" / f"{name}.chain.pem").read_text()
        full_chain = (folder / "out" / f"{name}.full.pem").read_text()
        assert certificate.strip() == answer["Certificate"].strip()
        assert chain.strip() == answer["CertificateChain"].strip()
        assert full_chain == certificate + chain
        cert = x509.load_pem_x509_certificate(certificate.encode())
        assert cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == keys[name]
        assert row["serial"] == format(cert.serial_number, "032x")
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(chain.encode()))


def test_apply_issues_every_entry_from_the_server(
    cli: Cli, reader: Reader, endpoint: str, ca_east: str, tmp_path: Path
) -> None:
    entries = [AwsEntry(f"direct-{i:02d}", ca_east) for i in range(12)]
    manifest, keys = write_aws_manifest(tmp_path, endpoint, entries, region="us-east-1")

    result = cli("apply", manifest, "--report", tmp_path / "r.json", "--concurrency", "8", "--max-rate", "0")

    assert result.code == 0, result.err
    report = read_report(tmp_path / "r.json")
    assert_issued_as_the_server_has_them(reader, tmp_path, report, keys, {e.name: ca_east for e in entries})
    assert {r["attempts"] for r in report.values()} == {1}


def test_apply_issues_from_cas_of_two_regions_in_one_run(
    cli: Cli, reader: Reader, endpoint: str, ca_east: str, ca_west: str, tmp_path: Path
) -> None:
    entries = [AwsEntry(f"region-{i}", ca_east if i % 2 else ca_west) for i in range(6)]
    manifest, keys = write_aws_manifest(tmp_path, endpoint, entries, region=None)

    result = cli("apply", manifest, "--report", tmp_path / "r.json", "--max-rate", "0")

    assert result.code == 0, result.err
    report = read_report(tmp_path / "r.json")
    assert_issued_as_the_server_has_them(reader, tmp_path, report, keys, {e.name: e.ca_arn for e in entries})
    issuers = {
        name: x509.load_pem_x509_certificate((tmp_path / "out" / f"{name}.pem").read_bytes())
        .issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0]
        .value
        for name in report
    }
    assert issuers == {
        e.name: "pca-batch test root east" if e.ca_arn == ca_east else "pca-batch test root west"
        for e in entries
    }


@pytest.mark.usefixtures("quick_timeouts")
def test_command_line_endpoint_and_region_win_over_the_manifests(
    cli: Cli, reader: Reader, endpoint: str, ca_west: str, tmp_path: Path
) -> None:
    # The manifest names a port where nothing listens and the wrong region for the CA.
    nowhere = f"http://127.0.0.1:{free_port()}"
    entries = [AwsEntry(f"cli-wins-{i}", ca_west) for i in range(3)]
    manifest, keys = write_aws_manifest(tmp_path, nowhere, entries, region="us-east-1")

    result = cli(
        "apply", manifest, "--report", tmp_path / "r.json", "--max-rate", "0",
        "--endpoint-url", endpoint, "--region", "us-west-2",
    )  # fmt: skip

    assert result.code == 0, result.err
    report = read_report(tmp_path / "r.json")
    assert_issued_as_the_server_has_them(reader, tmp_path, report, keys, {e.name: ca_west for e in entries})


@pytest.mark.usefixtures("quick_timeouts")
def test_apply_through_faults_issues_every_entry_and_no_token_reaches_the_server_twice(
    cli: Cli, reader: Reader, endpoint: str, ca_east: str, tmp_path: Path
) -> None:
    entries = [AwsEntry(f"faulty-{i:02d}", ca_east) for i in range(24)]
    faults = Faults(
        throttle=0.2,
        server_error=0.1,
        slow=0.1,
        drop=0.15,
        slow_seconds=0.8,
        in_progress_polls=1,
        max_faults_per_key=2,
        seed=5,
    )
    with FaultProxy(endpoint, faults) as proxy:
        manifest, keys = write_aws_manifest(tmp_path, proxy.endpoint, entries, region="us-east-1")
        result = cli(
            "apply", manifest, "--report", tmp_path / "r.json", "--concurrency", "24", "--max-rate", "0"
        )
        stats = proxy.snapshot()

    assert result.code == 0, result.err
    report = read_report(tmp_path / "r.json")
    assert_issued_as_the_server_has_them(reader, tmp_path, report, keys, {e.name: ca_east for e in entries})
    # Every kind of fault happened, and the runner got through all of them.
    assert {"throttle", "server_error", "slow", "drop", "in_progress"} <= set(stats["injected"])
    assert stats["calls"]["IssueCertificate"] > len(entries)
    assert any(r["attempts"] > 1 for r in report.values())
    # Each entry's token reached the server exactly once, however often the runner had to ask.
    tokens = {r["idempotency_token"] for r in report.values()}
    assert len(tokens) == len(entries)
    assert stats["issue_forwarded"] == dict.fromkeys(tokens, 1)
    assert stats["forwarded"]["IssueCertificate"] == len(entries)
    # Each IssueCertificate answer lost (slow, dropped) was answered again from the token record
    # (at least: on a loaded machine a fault-free answer may also come too late and be asked again).
    lost = stats["injected_by_operation"]
    assert stats["deduplicated"] >= lost.get("IssueCertificate:slow", 0) + lost.get(
        "IssueCertificate:drop", 0
    )
    assert stats["deduplicated"] > 0


def test_entries_preflight_refuses_end_failed_without_an_issue_call(
    cli: Cli, endpoint: str, ca_east: str, tmp_path: Path
) -> None:
    unknown = ca_east.rsplit("/", 1)[0] + "/00000000-0000-4000-8000-000000000000"
    entries = [
        AwsEntry("good-1", ca_east),
        AwsEntry("good-2", ca_east),
        AwsEntry("no-such-ca", unknown),
        AwsEntry("wrong-family", ca_east, signing_algorithm="SHA256WITHECDSA"),
        AwsEntry("too-long", ca_east, validity_days=30),  # the CAs are SHORT_LIVED_CERTIFICATE
    ]
    with FaultProxy(endpoint) as proxy:
        manifest, _ = write_aws_manifest(tmp_path, proxy.endpoint, entries)
        result = cli("apply", manifest, "--report", tmp_path / "r.json", "--max-rate", "0")
        stats = proxy.snapshot()

    assert result.code == 1
    report = read_report(tmp_path / "r.json")
    assert {name: (r["status"], (r["error"] or {}).get("code")) for name, r in report.items()} == {
        "good-1": ("issued", None),
        "good-2": ("issued", None),
        "no-such-ca": ("failed", "ResourceNotFoundException"),
        "wrong-family": ("failed", "InvalidArgsException"),
        "too-long": ("failed", "InvalidArgsException"),
    }
    assert "preflight" in report["too-long"]["error"]["message"]
    assert "SHORT_LIVED_CERTIFICATE" in report["too-long"]["error"]["message"]
    assert "SHA256WITHECDSA" in report["wrong-family"]["error"]["message"]
    assert stats["calls"]["DescribeCertificateAuthority"] == 2  # once per distinct CA
    assert stats["calls"]["IssueCertificate"] == 2  # the good entries only
    assert not (tmp_path / "out" / "too-long.pem").exists()


def test_a_shard_describes_only_the_cas_of_its_own_entries(
    cli: Cli, endpoint: str, ca_east: str, ca_west: str, tmp_path: Path, foreseen: list[str]
) -> None:
    shard = Shard(1, 2)
    names = [f"shard-{i}" for i in range(40)]
    mine = next(n for n in names if in_shard(n, shard))
    other = next(n for n in names if not in_shard(n, shard))
    entries = [AwsEntry(other, ca_west), AwsEntry(mine, ca_east)]
    with FaultProxy(endpoint) as proxy:
        manifest, _ = write_aws_manifest(tmp_path, proxy.endpoint, entries, region=None)
        result = cli("apply", manifest, "--max-rate", "0", "--shard", "1/2", "--report", tmp_path / "r.json")
        calls = proxy.snapshot()["calls"]

    assert result.code == 0, result.err
    assert set(read_report(tmp_path / "r.json")) == {mine}
    assert foreseen == [ca_east]
    assert calls == {"DescribeCertificateAuthority": 1, "IssueCertificate": 1, "GetCertificate": 1}


def test_no_credentials_is_one_message_before_any_call(
    cli: Cli, endpoint: str, ca_east: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    patch_env(monkeypatch, aws_test_env(tmp_path / "aws", credentials=False))
    entries = [AwsEntry(f"nocreds-{i}", ca_east) for i in range(3)]
    with FaultProxy(endpoint) as proxy:
        manifest, _ = write_aws_manifest(tmp_path, proxy.endpoint, entries)
        result = cli("apply", manifest, "--max-rate", "0")
        stats = proxy.snapshot()

    assert result.code == 2
    assert " ".join(result.err.split()).count(NO_CREDENTIALS) == 1
    assert "nocreds-" not in result.err
    assert stats["calls"] == {}
    assert not (tmp_path / "out").exists()


def test_an_invalid_manifest_is_reported_as_such_even_without_credentials(
    cli: Cli, endpoint: str, ca_east: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the aws backend is opened in the background while the entries are read: what it
    # finds (no credentials) must not hide the manifest's own problems
    patch_env(monkeypatch, aws_test_env(tmp_path / "aws", credentials=False))
    with FaultProxy(endpoint) as proxy:
        manifest, _ = write_aws_manifest(tmp_path, proxy.endpoint, [AwsEntry("ok", ca_east)])
        manifest.write_text(manifest.read_text().replace("SigningAlgorithm: SHA256WITHRSA", "SigningAlgorithm: MD5"))
        result = cli("apply", manifest, "--max-rate", "0")
        stats = proxy.snapshot()

    assert result.code == 2
    assert "$.SigningAlgorithm" in result.err and NO_CREDENTIALS not in " ".join(result.err.split())
    assert stats["calls"] == {}


def test_plan_shows_preflights_findings_from_the_ca_and_issues_nothing(
    cli: Cli, endpoint: str, ca_east: str, tmp_path: Path
) -> None:
    entries = [AwsEntry("fine", ca_east), AwsEntry("too-long", ca_east, validity_days=30)]
    with FaultProxy(endpoint) as proxy:
        manifest, _ = write_aws_manifest(tmp_path, proxy.endpoint, entries)
        planned = cli("apply", manifest, "--plan", "--report", tmp_path / "plan.json")
        after_plan = proxy.snapshot()
        offline = cli("apply", manifest, "--plan", "--offline")
        after_offline = proxy.snapshot()

    assert planned.code == 1
    rows = read_report(tmp_path / "plan.json")
    assert rows["fine"]["status"] == "planned" and rows["fine"]["error"] is None
    assert rows["too-long"]["error"]["code"] == "InvalidArgsException"
    assert "SHORT_LIVED_CERTIFICATE" in " ".join(planned.out.split())
    assert after_plan["calls"] == {"DescribeCertificateAuthority": 1}  # read-only: one describe, no issue
    assert offline.code == 0 and after_offline["calls"] == after_plan["calls"]
    assert not (tmp_path / "out").exists()
