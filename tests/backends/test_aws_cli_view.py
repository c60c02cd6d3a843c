"""The AWS CLI's view: `aws acm-pca get-certificate` on the report's ARNs gives the certificates we wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pca_batch.acmpca import region_of
from tests.support.common import CliResult
from tests.support.moto_server import (
    AwsEntry,
    apply_env,
    aws_test_env,
    create_active_ca,
    moto_thread,
    patch_env,
    write_aws_manifest,
)


@pytest.fixture(scope="module")
def aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str | None]]:
    changes = aws_test_env(tmp_path_factory.mktemp("aws"))
    with pytest.MonkeyPatch.context() as mp:
        patch_env(mp, changes)
        yield changes


@pytest.fixture(scope="module")
def moto(aws_env: dict[str, str | None]) -> Iterator[str]:
    with moto_thread() as endpoint:
        yield endpoint


def aws_cli(env: dict[str, str | None], *commands: list[str]) -> list[dict[str, str]]:
    """Run AWS CLI commands (awscli, the test dependency) side by side; their JSON outputs, in order."""
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "awscli", *args, "--output", "json"],
            env=apply_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    answers = []
    for run in runs:
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
        answers.append(json.loads(out))
    return answers


def test_aws_cli_get_certificate_on_the_reports_arns_gives_the_written_certificates(
    cli: Callable[..., CliResult], moto: str, aws_env: dict[str, str | None], tmp_path: Path
) -> None:
    ca = create_active_ca(moto, "eu-central-1", "pca-batch cli-view root")
    manifest, _ = write_aws_manifest(
        tmp_path, moto, [AwsEntry("cli-a", ca), AwsEntry("cli-b", ca)], region=None
    )
    result = cli("apply", manifest, "--report", tmp_path / "r.json", "--max-rate", "0")
    assert result.code == 0, result.err
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    assert [r["status"] for r in results] == ["issued", "issued"]

    seen = aws_cli(
        aws_env,
        *(
            [
                "acm-pca",
                "get-certificate",
                "--endpoint-url",
                moto,
                "--region",
                str(region_of(row["certificate_arn"])),
                "--certificate-authority-arn",
                row["certificate_authority_arn"],
                "--certificate-arn",
                row["certificate_arn"],
            ]
            for row in results
        ),
    )

    for row, answer in zip(results, seen, strict=True):
        certificate = (tmp_path / row["outputs"]["certificate"]).read_text()
        chain = (tmp_path / row["outputs"]["chain"]).read_text()
        assert answer["Certificate"].strip() == certificate.strip(), row["name"]
        assert answer["CertificateChain"].strip() == chain.strip(), row["name"]
