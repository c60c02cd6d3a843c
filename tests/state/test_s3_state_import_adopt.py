"""`state import`, `apply --adopt` and `--max-issue` on the s3 state, over real HTTP: S3 and acm-pca
from moto's server, acm-pca through the fault proxy that counts the calls. What one runner imports
or adopts, a fresh runner (no `.pca-batch/`, the outputs checked out) finds unchanged with no call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.state import test_s3_state_e2e as e2e
from tests.state.test_s3_state_e2e import Rig, runner_copy
from tests.support.common import Cli
from tests.support.moto_server import AwsEntry, create_active_ca, honour_validity, write_aws_manifest

pytestmark = pytest.mark.usefixtures("aws_env")
# the s3 state's end-to-end fixtures, shared by name
s3, fresh_state, s3_env, proxy, rig = e2e.s3, e2e.fresh_state, e2e.s3_env, e2e.proxy, e2e.rig


@pytest.fixture(scope="module", autouse=True)
def as_asked(moto: str) -> Iterator[None]:
    """Certificates with the Validity and SigningAlgorithm asked for (adoption checks both)."""
    with pytest.MonkeyPatch.context() as mp:
        honour_validity(mp)
        yield


@pytest.fixture(scope="module")
def ca(moto: str) -> str:
    return create_active_ca(moto, "us-east-1", "s3 state import CA")


def loop_issue(moto: str, ca: str, csr: Path) -> tuple[str, str]:
    """IssueCertificate and GetCertificate, as a script does: the ARN and the leaf."""
    client = boto3.client("acm-pca", region_name="us-east-1", endpoint_url=moto)
    try:
        arn = client.issue_certificate(CertificateAuthorityArn=ca, Csr=csr.read_bytes(),
                                       SigningAlgorithm="SHA256WITHRSA",
                                       Validity={"Value": 7, "Type": "DAYS"})["CertificateArn"]
        return arn, client.get_certificate(CertificateAuthorityArn=ca, CertificateArn=arn)["Certificate"]
    finally:
        client.close()


def test_adopted_on_one_runner_unchanged_on_a_fresh_one(cli: Cli, rig: Rig, ca: str, tmp_path: Path) -> None:
    names = ["a", "b", "c"]
    manifest, _ = write_aws_manifest(tmp_path / "one", rig.proxy.endpoint, [AwsEntry(n, ca) for n in names])
    (manifest.parent / "out").mkdir()
    for n in names:
        _arn, leaf = loop_issue(rig.moto, ca, manifest.parent / "csr" / f"{n}.csr")
        (manifest.parent / "out" / f"{n}.pem").write_text(leaf)
    rig.proxy.reset_stats()
    done = cli("apply", manifest, "--state", rig.state, "--adopt")
    assert done.code == 0, done.err
    assert sum(line.endswith("adopted") for line in done.out.splitlines()) == 3
    assert "IssueCertificate" not in rig.proxy.snapshot()["calls"]
    fresh = runner_copy(manifest.parent, tmp_path / "two", outputs=True)
    rig.proxy.reset_stats()
    again = cli("apply", fresh, "--state", rig.state)
    assert again.code == 0 and "3 entries, 3 unchanged" in again.out
    assert rig.proxy.snapshot()["calls"] == {}


def test_imported_on_one_runner_unchanged_on_a_fresh_one(cli: Cli, rig: Rig, ca: str, tmp_path: Path) -> None:
    manifest, _ = write_aws_manifest(tmp_path / "one", rig.proxy.endpoint, [AwsEntry("web", ca)])
    arn, _leaf = loop_issue(rig.moto, ca, manifest.parent / "csr" / "web.csr")
    rig.proxy.reset_stats()
    done = cli("state", "import", manifest, "web", arn, "--state", rig.state)
    assert done.code == 0, done.err
    assert f"recorded in {rig.state}" in done.out
    assert rig.proxy.snapshot()["calls"] == {"GetCertificate": 1}
    fresh = runner_copy(manifest.parent, tmp_path / "two", outputs=True)
    rig.proxy.reset_stats()
    again = cli("apply", fresh, "--state", rig.state)
    assert again.code == 0 and "1 entries, 1 unchanged" in again.out
    assert rig.proxy.snapshot()["calls"] == {}


def test_max_issue_names_the_s3_state_that_has_no_record(cli: Cli, rig: Rig, ca: str, tmp_path: Path) -> None:
    manifest, _ = write_aws_manifest(tmp_path, rig.proxy.endpoint, [AwsEntry(f"m{i}", ca) for i in range(3)])
    assert cli("apply", manifest, "--state", rig.state).code == 0
    lost = rig.state.replace("certs.state", "lost.state")  # a key nobody wrote: the state is "lost"
    rig.proxy.reset_stats()
    refused = cli("apply", manifest, "--state", lost, "--max-issue", "1")
    assert refused.code == 1
    text = " ".join(refused.err.split())
    assert f"3 renewals: the state at {lost} has no record of them; was the state lost?" in text
    assert "IssueCertificate" not in rig.proxy.snapshot()["calls"]
