"""The README's example manifest is a manifest pca-batch accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.common import CA_ARN, REPO, Cli, make_csr_pem


def test_readme_manifest_example_validates(tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## A manifest") :]
    example = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert example, "the README has no manifest example"
    (tmp_path / "csr").mkdir()
    (tmp_path / "csr" / "payments-api.csr").write_bytes(make_csr_pem("payments-api.example", ("payments-api.example",)))
    (tmp_path / "requests").mkdir()
    (tmp_path / "requests" / "orders.json").write_text(
        '{"Csr": "file://csr/payments-api.csr", "TemplateArn": "arn:aws:acm-pca:::template/EndEntityCertificate/V1"}'
    )
    (tmp_path / "m.yaml").write_text(example.group(1))
    monkeypatch.setenv("PCA_CA_ARN", CA_ARN)
    result = cli("validate", tmp_path / "m.yaml")
    assert result.code == 0, result.err
    assert "valid (3 entries)" in result.out
