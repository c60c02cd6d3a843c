"""`apply --plan` and `validate` through main(): they write nothing but the report asked for."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.support.common import CA_ARN, Cli, CsrFile

OTHER_CA = CA_ARN.replace("11111111-", "99999999-")

MANIFEST = f"""\
version: 1
backend:
  type: local
  store: store
  authorities:
    - {{arn: {CA_ARN}, common_name: Plan Test CA}}
defaults:
  CertificateAuthorityArn: {CA_ARN}
  SigningAlgorithm: SHA256WITHECDSA
  Validity: {{Value: 7, Type: DAYS}}
certificates:
  - name: declared
    Csr: file://csr/a.csr
    output: {{certificate: out/declared.pem}}
  - name: undeclared
    Csr: file://csr/a.csr
    CertificateAuthorityArn: {OTHER_CA}
"""


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def digests(folder: Path) -> dict[str, str]:
    """What every file holds, by digest: the store's key files are never shown."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")
            if p.is_file()}


@pytest.fixture
def manifest(tmp_path: Path, csr_file: CsrFile) -> Path:
    csr_file("a")
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    return path


@pytest.mark.parametrize("store_exists", [False, True], ids=["no-store-folder", "empty-store-folder"])
def test_plan_writes_nothing_but_its_report(manifest: Path, tmp_path: Path, cli: Cli, store_exists: bool) -> None:
    if store_exists:
        (tmp_path / "store").mkdir()
    before = tree(tmp_path)
    result = cli("apply", manifest, "--plan")
    assert result.code == 0, result.err
    assert tree(tmp_path) == before
    assert "+ issue declared" in result.out and "+ issue undeclared" in result.out

    result = cli("apply", manifest, "--plan", "--report", tmp_path / "r.json")
    assert result.code == 0, result.err
    assert tree(tmp_path) == before | {"r.json"}
    rows = {r["name"]: r["status"] for r in json.loads((tmp_path / "r.json").read_text())["results"]}
    assert rows == {"declared": "planned", "undeclared": "planned"}


def test_plan_on_an_existing_store_changes_no_file_of_it(manifest: Path, tmp_path: Path, cli: Cli) -> None:
    assert cli("apply", manifest).code == 1  # the undeclared CA's entry fails; the store now exists
    store = tmp_path / "store"
    before = digests(store)
    result = cli("apply", manifest, "--plan")
    assert result.code == 1  # apply would fail the undeclared CA's entry: the plan says so
    assert "= unchanged (valid until" in result.out
    assert "ResourceNotFoundException" in result.out
    assert digests(store) == before


def test_validate_writes_nothing(manifest: Path, tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "store").mkdir()
    before = tree(tmp_path)
    result = cli("validate", manifest)
    assert result.code == 0, result.err
    assert tree(tmp_path) == before
