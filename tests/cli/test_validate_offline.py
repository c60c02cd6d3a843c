"""`validate --offline`: a manifest checked away from the environment of its run (a pre-commit hook
on a laptop, where the CI's variables are not set): an unset ${VAR} is no problem, its value is not
checked, and the output says which were not set; everything else is checked as ever."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.common import Cli, CsrFile

MANIFEST = """\
version: 1
backend: {type: aws, region: '${PCA_TEST_REGION_SURELY_UNSET}'}
defaults:
  CertificateAuthorityArn: ${PCA_TEST_ARN_SURELY_UNSET}
  SigningAlgorithm: SHA256WITHECDSA
  Validity: {Value: 30, Type: DAYS}
certificates:
  - name: web
    Csr: file://csr/web.csr
"""


def test_unset_variables_are_no_problem_offline(tmp_path: Path, cli: Cli, csr_file: CsrFile) -> None:
    csr_file("web")
    (tmp_path / "m.yaml").write_text(MANIFEST)
    online = cli("validate", tmp_path / "m.yaml")
    assert online.code == 2
    assert "the environment variable PCA_TEST_ARN_SURELY_UNSET is not set" in online.err
    assert "the environment variable PCA_TEST_REGION_SURELY_UNSET is not set" in online.err
    offline = cli("validate", "--offline", tmp_path / "m.yaml")
    assert offline.code == 0, offline.err
    assert offline.out.strip() == (
        f"{tmp_path / 'm.yaml'}: valid (1 entry); not checked, as not set: "
        "${PCA_TEST_ARN_SURELY_UNSET}, ${PCA_TEST_REGION_SURELY_UNSET}"
    )


def test_offline_still_finds_every_other_problem(tmp_path: Path, cli: Cli, csr_file: CsrFile) -> None:
    csr_file("web")
    text = MANIFEST + "    SigningAlgorithm: SHA256WITHRSAA\n    Csr: file://csr/missing.csr\n"
    (tmp_path / "m.yaml").write_text(text.replace("    Csr: file://csr/web.csr\n", ""))
    result = cli("validate", "--offline", tmp_path / "m.yaml")
    assert result.code == 2
    assert ": web: $.SigningAlgorithm: 'SHA256WITHRSAA' is not one of" in result.err
    assert ": web: $.Csr: " in result.err and "missing.csr" in result.err
    assert "environment variable" not in result.err
    assert "2 problems in 1 entry" in result.err


def test_a_set_variable_is_checked_offline(
    tmp_path: Path, cli: Cli, csr_file: CsrFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    csr_file("web")
    monkeypatch.setenv("PCA_TEST_ARN_SURELY_UNSET", "not-an-arn")
    (tmp_path / "m.yaml").write_text(MANIFEST)
    result = cli("validate", "--offline", tmp_path / "m.yaml")
    assert result.code == 2
    assert ": web: $.CertificateAuthorityArn: " in result.err
