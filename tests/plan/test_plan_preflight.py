"""`apply --plan` runs apply's read-only preflight (unless --offline) and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.common import CA_ARN, Cli, CsrFile

MANIFEST = f"""\
version: 1
backend:
  type: local
  authorities:
    - {{arn: {CA_ARN}, common_name: Plan Test CA, validity_days: 30}}
defaults:
  CertificateAuthorityArn: {CA_ARN}
  SigningAlgorithm: SHA256WITHECDSA
certificates:
  - name: short
    Csr: file://csr/a.csr
    Validity: {{Value: 7, Type: DAYS}}
    output: {{certificate: out/short.pem}}
  - name: too-long
    Csr: file://csr/a.csr
    Validity: {{Value: 2, Type: YEARS}}
  - name: wrong-family
    Csr: file://csr/a.csr
    SigningAlgorithm: SHA256WITHRSA
    Validity: {{Value: 1, Type: DAYS}}
"""


def test_plan_on_a_fresh_store_creates_nothing(tmp_path: Path, csr_file: CsrFile, cli: Cli) -> None:
    csr_file("a")
    (tmp_path / "m.yaml").write_text(MANIFEST)
    result = cli("apply", tmp_path / "m.yaml", "--plan")
    assert result.code == 0, result.err
    assert not (tmp_path / ".pca-batch").exists() and not (tmp_path / "out").exists()


def test_plan_shows_what_the_ca_would_refuse(tmp_path: Path, csr_file: CsrFile, cli: Cli) -> None:
    csr_file("a")
    (tmp_path / "m.yaml").write_text(MANIFEST)
    # apply creates the CA; the two bad entries fail preflight without a call
    result = cli("apply", tmp_path / "m.yaml", "--report", tmp_path / "apply.json")
    assert result.code == 1
    statuses = {r["name"]: (r["status"], (r["error"] or {}).get("code"), r["attempts"])
                for r in json.loads((tmp_path / "apply.json").read_text())["results"]}
    assert statuses == {
        "short": ("issued", None, 1),
        "too-long": ("failed", "InvalidArgsException", 0),
        "wrong-family": ("failed", "InvalidArgsException", 0),
    }

    result = cli("apply", tmp_path / "m.yaml", "--plan", "--report", tmp_path / "plan.json")
    assert result.code == 1
    assert "x refused (InvalidArgsException: preflight: NotAfter" in result.out
    assert "SigningAlgorithm SHA256WITHRSA is for RSA keys" in result.out
    assert "= unchanged" in result.out
    rows = {r["name"]: r for r in json.loads((tmp_path / "plan.json").read_text())["results"]}
    assert rows["too-long"]["status"] == "planned" and rows["too-long"]["error"]["code"] == "InvalidArgsException"
    assert rows["short"]["status"] == "unchanged"

    offline = cli("apply", tmp_path / "m.yaml", "--plan", "--offline")
    assert offline.code == 0 and "refused" not in offline.out
