"""`pca-batch revoke` end to end on the local CA with CRLs: the journal, the CA, the CRL
(openssl, lint_crl), the audit report and the JSON report agree; names are checked first."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support.common import CA_ARN, Cli, CsrFile
from tests.support.local_ca import openssl

MANIFEST = f"""\
version: 1
backend:
  type: local
  store: store
  authorities:
    - {{arn: {CA_ARN}, common_name: Revoke Test CA, crl: {{url: "http://crl.example/pki", days: 2}}}}
defaults:
  CertificateAuthorityArn: {CA_ARN}
  SigningAlgorithm: SHA256WITHECDSA
  Validity: {{Value: 7, Type: DAYS}}
certificates:
""" + "".join(
    f"  - {{name: {n}, Csr: file://csr/{n}.csr, output: {{certificate: out/{n}.pem, full_chain: out/{n}-full.pem}}}}\n"
    for n in ("web", "api", "db", "queue")
)


@pytest.fixture
def issued(tmp_path: Path, csr_file: CsrFile, cli: Cli) -> Path:
    for name in ("web", "api", "db", "queue"):
        csr_file(name, common_name=f"{name}.example", dns=(f"{name}.example",))
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    result = cli("apply", path)
    assert result.code == 0, result.err
    return path


def journal_lines(manifest: Path) -> list[dict[str, str]]:
    text = (manifest.parent / ".pca-batch" / "journal.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def serial_of(manifest: Path, name: str) -> str:
    [line] = [r for r in journal_lines(manifest) if r["event"] == "issued" and r["name"] == name]
    return line["certificate_arn"].rsplit("/", 1)[1]


def test_revoke_two_entries_then_the_crl_and_openssl_agree(issued: Path, cli: Cli, tmp_path: Path) -> None:
    report = tmp_path / "revoked.json"
    result = cli("revoke", issued, "web", "db", "--reason", "KEY_COMPROMISE", "--report", report)
    assert result.code == 0, result.err
    assert re.search(r"^revoked\s+web\s.*reason KEY_COMPROMISE", result.out, re.M)

    data = json.loads(report.read_text())
    assert data["summary"]["revoked"] == 2 and data["summary"]["total"] == 2
    rows = {r["name"]: r for r in data["results"]}
    assert {n: (r["status"], r["serial"], r["revocation_reason"]) for n, r in rows.items()} == {
        n: ("revoked", serial_of(issued, n), "KEY_COMPROMISE") for n in ("web", "db")
    }
    revoked_lines = [r for r in journal_lines(issued) if r["event"] == "revoked"]
    assert sorted((r["name"], r["reason"]) for r in revoked_lines) == [
        ("db", "KEY_COMPROMISE"),
        ("web", "KEY_COMPROMISE"),
    ]

    audit = json.loads(cli("ca", "audit-report", "--store", tmp_path / "store", CA_ARN).out)
    reasons = {row["serial"].replace(":", ""): row["revocationReason"] for row in audit}
    assert {s for s, why in reasons.items() if why} == {serial_of(issued, n) for n in ("web", "db")}

    crl = tmp_path / "ca.crl"
    assert cli("ca", "crl", "--store", tmp_path / "store", CA_ARN, "-o", crl).code == 0
    text = openssl("crl", "-inform", "DER", "-in", str(crl), "-noout", "-text").stdout
    listed = {int(s, 16) for s in re.findall(r"Serial Number: ([0-9A-F]+)", text)}
    assert listed == {int(serial_of(issued, n), 16) for n in ("web", "db")}
    assert text.count("Key Compromise") == 2
    pem_crl = tmp_path / "ca-crl.pem"
    assert cli("ca", "crl", "--store", tmp_path / "store", CA_ARN, "--pem", "-o", pem_crl).code == 0
    out = issued.parent / "out"
    for name in ("web", "api", "db", "queue"):
        full = (out / f"{name}-full.pem").read_text()
        root = full[full.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----\n") :]
        (tmp_path / "root.pem").write_text(root)
        verdict = openssl("verify", "-crl_check", "-CAfile", str(tmp_path / "root.pem"), "-CRLfile", str(pem_crl),
                          str(out / f"{name}.pem"))
        if name in ("web", "db"):
            assert verdict.returncode != 0 and "certificate revoked" in verdict.stdout + verdict.stderr
        else:
            assert verdict.returncode == 0, verdict.stdout + verdict.stderr


def test_a_second_revoke_says_already_revoked_and_records_nothing(issued: Path, cli: Cli) -> None:
    assert cli("revoke", issued, "api", "--reason", "SUPERSEDED").code == 0
    before = journal_lines(issued)
    again = cli("revoke", issued, "api", "--reason", "KEY_COMPROMISE")
    assert again.code == 0, again.err
    assert "already revoked" in again.out and "reason SUPERSEDED" in again.out
    assert journal_lines(issued) == before


def test_a_revocation_the_journal_lost_is_recorded_on_the_next_run_not_repeated(
    issued: Path, cli: Cli, tmp_path: Path
) -> None:
    """As after a crash between RevokeCertificate and the journal line: the CA says it is done."""
    assert cli("revoke", issued, "queue", "--reason", "PRIVILEGE_WITHDRAWN").code == 0
    journal = issued.parent / ".pca-batch" / "journal.jsonl"
    journal.write_text("".join(line + "\n" for line in journal.read_text().splitlines() if '"revoked"' not in line))
    again = cli("revoke", issued, "queue", "--reason", "UNSPECIFIED")
    assert again.code == 0, again.err
    [line] = [r for r in journal_lines(issued) if r["event"] == "revoked"]
    assert line["name"] == "queue"
    audit = json.loads(cli("ca", "audit-report", "--store", tmp_path / "store", CA_ARN).out)
    assert [row["revocationReason"] for row in audit if row["revocationReason"]] == ["PRIVILEGE_WITHDRAWN"]


def test_unknown_names_or_names_never_issued_revoke_nothing(issued: Path, cli: Cli, tmp_path: Path) -> None:
    with_unknown = cli("revoke", issued, "web", "wbe-typo", "apii")
    assert with_unknown.code == 2
    assert "apii: no entry of that name" in with_unknown.err and "did you mean 'api'?" in with_unknown.err
    text = issued.read_text() + "  - {name: later, Csr: file://csr/web.csr}\n"
    issued.write_text(text)
    never = cli("revoke", issued, "web", "later")
    assert never.code == 2 and "later: no certificate on record" in never.err
    assert not [r for r in journal_lines(issued) if r["event"] == "revoked"]
    audit = json.loads(cli("ca", "audit-report", "--store", tmp_path / "store", CA_ARN).out)
    assert not [row for row in audit if row["revokedAt"]]


def test_a_misspelt_reason_is_a_usage_error_with_a_suggestion(issued: Path, cli: Cli) -> None:
    result = cli("revoke", issued, "web", "--reason", "key-compromise")
    assert result.code == 2 and "did you mean 'KEY_COMPROMISE'?" in result.err
    result = cli("revoke", issued, "web", "--reason", "SUPERSEEDED")
    assert result.code == 2 and "did you mean 'SUPERSEDED'?" in result.err
    assert not [r for r in journal_lines(issued) if r["event"] == "revoked"]


def test_the_default_reason_is_unspecified_and_the_crl_gives_it_no_reason_code(
    issued: Path, cli: Cli, tmp_path: Path
) -> None:
    result = cli("revoke", issued, "db")
    assert result.code == 0 and "reason UNSPECIFIED" in result.out
    crl = tmp_path / "ca.crl"
    assert cli("ca", "crl", "--store", tmp_path / "store", CA_ARN, "-o", crl).code == 0
    text = openssl("crl", "-inform", "DER", "-in", str(crl), "-noout", "-text").stdout
    assert serial_of(issued, "db").upper().lstrip("0") in text and "CRL Reason Code" not in text


def test_certificates_of_a_manifest_ca_with_crl_name_its_distribution_point(issued: Path) -> None:
    text = openssl("x509", "-noout", "-text", "-in", str(issued.parent / "out" / "web.pem")).stdout
    assert f"URI:http://crl.example/pki/{CA_ARN.rsplit('/', 1)[1]}.crl" in text
