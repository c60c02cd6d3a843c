"""`pca-batch state import MANIFEST NAME CERTIFICATE_ARN` on the local CA: a certificate issued
outside pca-batch (here: straight through the local backend, as a script would) is checked,
recorded and written, and the next apply makes no call for it; every bad input is a message
naming what is wrong, exit 2, and nothing recorded or written."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pca_batch.backends.local.backend import LocalBackend
from pca_batch.pki import keys
from tests.support.common import CA_ARN, OTHER_ARN, Cli, make_csr_pem, two_ca_head
from tests.support.local_ca import openssl_verify

HEAD = two_ca_head("Import") + """\
  - name: web
    Csr: file://csr/web.csr
    output: {certificate: out/web.pem, chain: out/web.chain.pem, full_chain: out/web.full.pem}
  - name: api
    key: {algorithm: EC_prime256v1, subject: {CommonName: api.example}, dns_names: [api.example]}
    output: {certificate: out/api.pem, private_key: out/api.key}
"""
WEB_KEY = ec.generate_private_key(ec.SECP256R1())


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def manifest(tmp_path: Path, cli: Cli) -> Path:
    (tmp_path / "csr").mkdir()
    (tmp_path / "csr" / "web.csr").write_bytes(make_csr_pem("web.example", ("web.example",), key=WEB_KEY))
    path = tmp_path / "m.yaml"
    path.write_text(HEAD)
    assert cli("apply", path, "--plan").code == 0  # valid; creates nothing
    return path


def issue_elsewhere(folder: Path, csr: bytes, ca: str = CA_ARN, days: int = 30) -> str:
    """IssueCertificate + nothing else: what a shell loop does (the store and CAs made here)."""
    from pca_batch.backends import open_backend
    from pca_batch.manifest.load import load_manifest

    backend = open_backend(load_manifest(str(folder / "m.yaml")).backend)
    try:
        return backend.issue_certificate({
            "CertificateAuthorityArn": ca, "Csr": csr, "SigningAlgorithm": "SHA256WITHECDSA",
            "Validity": {"Value": days, "Type": "DAYS"},
        })
    finally:
        backend.close()


def journal(folder: Path) -> list[dict[str, object]]:
    path = folder / ".pca-batch" / "journal.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [line for line in lines if line["event"] != "key"]  # a new key's record, before its certificate


def test_import_records_writes_and_the_next_apply_makes_no_call(manifest: Path, cli: Cli, tmp_path: Path) -> None:
    arn = issue_elsewhere(tmp_path, (tmp_path / "csr" / "web.csr").read_bytes())
    result = cli("state", "import", manifest, "web", arn)
    assert result.code == 0, result.err
    out = flat(result.out)
    assert f"imported web: serial {arn.rsplit('/', 1)[1]}" in out
    assert "wrote out/web.pem, out/web.chain.pem, out/web.full.pem" in out
    assert "the next apply: unchanged" in out
    [line] = journal(tmp_path)
    assert line["event"] == "issued" and line["name"] == "web" and line["certificate_arn"] == arn
    assert line["manifest"] == "m.yaml"
    assert line["outputs"] == {"certificate": "out/web.pem", "chain": "out/web.chain.pem",
                               "full_chain": "out/web.full.pem"}
    backend = LocalBackend(tmp_path / "store")
    try:
        bundle = backend.get_certificate(CA_ARN, arn)
    finally:
        backend.close()
    leaf = (tmp_path / "out" / "web.pem").read_text()
    assert leaf.strip() == bundle.certificate.strip()
    assert (tmp_path / "out" / "web.full.pem").read_text() == leaf + (tmp_path / "out" / "web.chain.pem").read_text()
    verified = openssl_verify(tmp_path, leaf, (tmp_path / "out" / "web.chain.pem").read_text())
    assert verified.returncode == 0, verified.stderr

    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
    plan = cli("apply", manifest, "--plan")
    assert flat(plan.out).startswith("= unchanged (valid until ") and " web serial=" in plan.out
    applied = cli("apply", manifest)
    assert applied.code == 0
    assert "unchanged" in applied.out.splitlines()[0] and " web " in applied.out.splitlines()[0]
    assert [r["name"] for r in journal(tmp_path)] == ["web", "api"]  # api issued; web made no call
    assert all(p.stat().st_mtime_ns == t for p, t in before.items() if p.name.startswith("web"))

    again = cli("state", "import", manifest, "web", arn)  # a second import records nothing more
    assert again.code == 0 and "recorded already" in flat(again.out)
    assert [r["name"] for r in journal(tmp_path)] == ["web", "api"]


def test_import_for_an_entry_whose_key_pca_batch_keeps(manifest: Path, cli: Cli, tmp_path: Path) -> None:
    spec = keys.KeySpec(subject=(("CommonName", "api.example"),), dns_names=("api.example",))
    key = keys.generate("EC_prime256v1")
    keys.save(tmp_path / "out" / "api.key", key, None)
    arn = issue_elsewhere(tmp_path, keys.build_csr(spec, key).encode("ascii"))
    result = cli("state", "import", manifest, "api", arn)
    assert result.code == 0, result.err
    assert "the next apply: unchanged" in flat(result.out)
    assert stat.S_IMODE(os.stat(tmp_path / "out" / "api.key").st_mode) == 0o600
    plan = cli("apply", manifest, "--plan")
    assert any(line.startswith("= unchanged") and " api " in line for line in plan.out.splitlines())


def test_a_key_entry_without_its_key_cannot_be_imported(manifest: Path, cli: Cli, tmp_path: Path) -> None:
    arn = issue_elsewhere(tmp_path, make_csr_pem("api.example", ("api.example",)))
    result = cli("state", "import", manifest, "api", arn)
    assert result.code == 2
    assert "its private key out/api.key does not exist" in flat(result.err)
    assert journal(tmp_path) == [] and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("csr", "expected"),
    [
        (make_csr_pem("other.example", ("web.example",), key=WEB_KEY),
         "the certificate's subject CN=other.example differs from the entry's CN=web.example"),
        (make_csr_pem("web.example", ("web.example", "www.example"), key=WEB_KEY),
         "the certificate's SANs DNS:web.example, DNS:www.example differ from the entry's DNS:web.example"),
        (make_csr_pem("web.example", ("web.example",), key=ec.generate_private_key(ec.SECP256R1())),
         "the certificate's public key (SHA-256"),
    ],
    ids=["subject", "sans", "key"],
)
def test_a_certificate_that_differs_is_refused_naming_the_difference(
    manifest: Path, cli: Cli, tmp_path: Path, csr: bytes, expected: str
) -> None:
    arn = issue_elsewhere(tmp_path, csr)
    result = cli("state", "import", manifest, "web", arn)
    assert result.code == 2
    assert "nothing recorded" in result.err and f"does not fit entry web of {manifest}" in flat(result.err)
    assert expected in flat(result.err)
    assert "Traceback" not in result.err
    assert journal(tmp_path) == [] and not (tmp_path / "out").exists()


def test_bad_inputs_are_clear_messages_with_exit_2_and_nothing_recorded(
    manifest: Path, cli: Cli, tmp_path: Path
) -> None:
    csr = (tmp_path / "csr" / "web.csr").read_bytes()
    arn = issue_elsewhere(tmp_path, csr)
    other = issue_elsewhere(tmp_path, csr, ca=OTHER_ARN)
    missing = f"{CA_ARN}/certificate/{'0' * 31}1"
    cases = {
        ("wbe", arn): "no entry named 'wbe' in",
        ("web", "arn:aws:acm-pca:us-east-1:1:certificate/abc"): "is not a certificate ARN",
        ("web", other): f"the certificate is of the CA {OTHER_ARN}, entry web is issued by {CA_ARN}",
        ("web", missing): f"the CA {CA_ARN} has no certificate {missing} (GetCertificate answered "
                          "ResourceNotFoundException)",
    }
    for (name, given), expected in cases.items():
        result = cli("state", "import", manifest, name, given)
        assert result.code == 2, (name, given, result.err)
        assert expected in flat(result.err), result.err
        assert "Traceback" not in result.err and result.out == ""
    assert "did you mean 'web'?" in flat(cli("state", "import", manifest, "wbe", arn).err)
    assert journal(tmp_path) == [] and not (tmp_path / "out").exists()
    assert cli("state").code == 2
    assert cli("state", "import", manifest).code == 2


def test_a_certificate_recorded_for_another_entry_is_refused(manifest: Path, cli: Cli, tmp_path: Path) -> None:
    arn = issue_elsewhere(tmp_path, (tmp_path / "csr" / "web.csr").read_bytes())
    assert cli("state", "import", manifest, "web", arn).code == 0
    (tmp_path / "m.yaml").write_text(HEAD.replace("  - name: web\n", "  - name: web2\n"))
    result = cli("state", "import", manifest, "web2", arn)
    assert result.code == 2 and "is recorded already for entry web" in flat(result.err)
    assert len(journal(tmp_path)) == 1
