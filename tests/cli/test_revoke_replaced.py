"""`revoke_replaced`: a renewal's predecessor is revoked once the new certificate is in place,
never before, exactly once, and a run stopped in between is finished by the next one. And a
certificate revoked for KEY_COMPROMISE is renewed for a new key, never the same one."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from rich.console import Console

from pca_batch.acmpca import RevocationReason
from pca_batch.backends.local.backend import LocalBackend
from pca_batch.errors import BackendError
from pca_batch.manifest.load import load_manifest
from pca_batch.model import ApplyOptions
from pca_batch.run.session import execute
from tests.support.common import CA_ARN, Cli, CsrFile, make_csr_pem
from tests.support.local_ca import openssl

MANIFEST = f"""\
version: 1
backend:
  type: local
  store: store
  authorities:
    - {{arn: {CA_ARN}, common_name: Replaced Test CA, crl: {{url: "http://crl.example/pki"}}}}
defaults:
  CertificateAuthorityArn: {CA_ARN}
  SigningAlgorithm: SHA256WITHECDSA
  Validity: {{Value: 7, Type: DAYS}}
  revoke_replaced: SUPERSEDED
certificates:
  - {{name: web, Csr: file://csr/web.csr, output: {{certificate: out/web.pem}}}}
  - {{name: api, Csr: file://csr/api.csr, output: {{certificate: out/api.pem}}, revoke_replaced: KEY_COMPROMISE}}
  - name: keyed
    key: {{algorithm: EC_prime256v1, subject: {{CommonName: keyed.example}}, rotate: never}}
    output: {{certificate: out/keyed.pem, private_key: out/keyed.key}}
"""


def journal(folder: Path) -> list[dict[str, Any]]:
    text = (folder / ".pca-batch" / "journal.jsonl").read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [r for r in lines if r["event"] != "key"]  # certificates and revocations (keys: tests/state)


def revoked(folder: Path) -> list[tuple[str, str, str]]:
    return sorted((r["name"], r["certificate_arn"].rsplit("/", 1)[1], r["reason"])
                  for r in journal(folder) if r["event"] == "revoked")


def serial_on_disk(path: Path) -> str:
    return format(x509.load_pem_x509_certificate(path.read_bytes()).serial_number, "032x")


@pytest.fixture
def issued(tmp_path: Path, csr_file: CsrFile, cli: Cli) -> Path:
    for name in ("web", "api"):
        csr_file(name, common_name=f"{name}.example", dns=(f"{name}.example",))
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    result = cli("apply", path)
    assert result.code == 0, result.err
    return path


class Watching(LocalBackend):
    """The local CA, noting which certificate each output file held when a revocation was asked
    for; ``refuse`` makes the first N revocations fail (non-retryable)."""

    def __init__(self, store: Path, outputs: Path, refuse: int = 0) -> None:
        super().__init__(store)
        self.outputs = outputs
        self.refuse = refuse
        self.seen: list[tuple[str, dict[str, str]]] = []

    def revoke_certificate(self, ca_arn: str, serial: str, reason: RevocationReason) -> None:
        self.seen.append((serial, {p.stem: serial_on_disk(p) for p in self.outputs.glob("*.pem")}))
        if self.refuse:
            self.refuse -= 1
            raise BackendError("InvalidStateException", "the CA is busy (scripted)")
        super().revoke_certificate(ca_arn, serial, reason)


def apply(manifest: Path, backend: LocalBackend | None = None, **options: Any) -> tuple[int, str]:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None, force_terminal=False)
    code = execute(load_manifest(str(manifest)), ApplyOptions(**options), console, backend=backend, env={})
    return code, out.getvalue()


def test_force_renews_then_revokes_each_replaced_certificate_after_its_successor_is_in_place(
    issued: Path, tmp_path: Path, cli: Cli
) -> None:
    folder = issued.parent
    before = {n: serial_on_disk(folder / "out" / f"{n}.pem") for n in ("web", "api", "keyed")}
    backend = Watching(tmp_path / "store", folder / "out")
    code, out = apply(issued, backend, force=True, report=tmp_path / "r.json")
    backend.close()
    assert code == 0, out
    after = {n: serial_on_disk(folder / "out" / f"{n}.pem") for n in ("web", "api", "keyed")}
    assert all(after[n] != before[n] for n in after)
    # when each old certificate was revoked, every file already held the new one
    assert sorted(s for s, _ in backend.seen) == sorted(before.values())
    assert all(files == after for _, files in backend.seen)
    assert revoked(folder) == sorted([("web", before["web"], "SUPERSEDED"), ("api", before["api"], "KEY_COMPROMISE"),
                                      ("keyed", before["keyed"], "SUPERSEDED")])
    rows = {r["name"]: r for r in json.loads((tmp_path / "r.json").read_text())["results"]}
    assert rows["api"]["status"] == "issued"
    assert rows["api"]["revoked_replaced"] == [{
        "certificate_arn": f"{CA_ARN}/certificate/{before['api']}", "serial": before["api"],
        "revocation_reason": "KEY_COMPROMISE",
    }]
    line = rf"^revoked\s+web\s.*serial {before['web']}  reason SUPERSEDED  replaced by serial {after['web']}"
    assert re.search(line, out, re.M)
    issued_lines = [r for r in journal(folder) if r["event"] == "issued" and r["name"] == "web"]
    assert issued_lines[-1]["replaces"] == f"{CA_ARN}/certificate/{before['web']}"
    # the CRL says so, and a re-run has nothing left to do
    crl = tmp_path / "ca.crl"
    assert cli("ca", "crl", "--store", tmp_path / "store", CA_ARN, "-o", crl).code == 0
    text = openssl("crl", "-inform", "DER", "-in", str(crl), "-noout", "-text").stdout
    assert text.count("Superseded") == 2 and text.count("Key Compromise") == 1
    again = cli("apply", issued)
    assert again.code == 0 and "revoked" not in again.out and len(revoked(folder)) == 3


def test_without_revoke_replaced_a_renewal_revokes_nothing(issued: Path, cli: Cli) -> None:
    plain = MANIFEST.replace("  revoke_replaced: SUPERSEDED\n", "").replace(", revoke_replaced: KEY_COMPROMISE", "")
    issued.write_text(plain)
    result = cli("apply", issued, "--force")
    assert result.code == 0 and not revoked(issued.parent)
    assert not [r for r in journal(issued.parent) if "replaces" in r]


def test_a_revocation_that_fails_after_delivery_fails_the_entry_and_the_next_run_finishes_it(
    issued: Path, tmp_path: Path, cli: Cli
) -> None:
    folder = issued.parent
    old = serial_on_disk(folder / "out" / "web.pem")
    issued.write_text(MANIFEST.replace("SHA256WITHECDSA", "SHA384WITHECDSA"))  # every entry renews
    backend = Watching(tmp_path / "store", folder / "out", refuse=3)
    code, out = apply(issued, backend, report=tmp_path / "r.json")
    backend.close()
    assert code == 1
    rows = {r["name"]: r for r in json.loads((tmp_path / "r.json").read_text())["results"]}
    assert rows["web"]["status"] == "failed" and rows["web"]["error"]["code"] == "InvalidStateException"
    assert "its new certificate is in place" in rows["web"]["error"]["message"]
    new = serial_on_disk(folder / "out" / "web.pem")
    assert new != old and not revoked(folder)
    plan = cli("apply", issued, "--plan", "--detailed-exitcode")
    assert plan.code == 2
    pending = rf"^- revoke \(the certificate\(s\) it replaced: serial {old} \(SUPERSEDED\)\) web"
    assert re.search(pending, plan.out, re.M)
    done = cli("apply", issued)
    assert done.code == 0, done.out + done.err
    assert ("web", old, "SUPERSEDED") in revoked(folder) and len(revoked(folder)) == 3
    assert serial_on_disk(folder / "out" / "web.pem") == new  # nothing issued again
    assert cli("apply", issued, "--plan", "--detailed-exitcode").code == 0


def test_key_compromise_renews_a_managed_key_with_a_new_key_even_with_rotate_never(issued: Path, cli: Cli) -> None:
    folder = issued.parent
    key_before = (folder / "out" / "keyed.key").read_bytes()
    assert cli("revoke", issued, "keyed", "--reason", "KEY_COMPROMISE").code == 0
    plan = cli("apply", issued, "--plan")
    assert re.search(r"^~ renew \(its certificate was revoked \(KEY_COMPROMISE\)\) keyed", plan.out, re.M), plan.out
    result = cli("apply", issued)
    assert result.code == 0, result.out + result.err
    assert (folder / "out" / "keyed.key").read_bytes() != key_before
    assert (folder / "out" / "keyed.key").stat().st_mode & 0o777 == 0o600


def test_key_compromise_will_not_certify_the_same_csr_again(issued: Path, cli: Cli, csr_file: CsrFile) -> None:
    folder = issued.parent
    old = serial_on_disk(folder / "out" / "api.pem")
    assert cli("revoke", issued, "api", "--reason", "KEY_COMPROMISE").code == 0
    plan = cli("apply", issued, "--plan")
    assert plan.code == 1  # the plan says so before anything happens
    assert re.search(r"^x refused \(KeyCompromised: its CSR is for the key of the certificate revoked for "
                     r"KEY_COMPROMISE: give it a CSR for a new key", plan.out, re.M), plan.out
    refused = cli("apply", issued)
    assert refused.code == 1
    assert re.search(r"^failed\s+api\s+KeyCompromised: its CSR is for the key of the certificate revoked", refused.out,
                     re.M)
    assert serial_on_disk(folder / "out" / "api.pem") == old
    (folder / "csr" / "api.csr").write_bytes(
        make_csr_pem(common_name="api.example", dns=("api.example",), key=ec.generate_private_key(ec.SECP256R1()))
    )
    renewed = cli("apply", issued)
    assert renewed.code == 0, renewed.out + renewed.err
    assert serial_on_disk(folder / "out" / "api.pem") != old


def test_a_revoked_certificate_is_renewed_and_never_recovered_from_the_journal(issued: Path, cli: Cli) -> None:
    folder = issued.parent
    old = serial_on_disk(folder / "out" / "web.pem")
    assert cli("revoke", issued, "web", "--reason", "AFFILIATION_CHANGED").code == 0
    (folder / "out" / "web.pem").unlink()  # the journal still holds the revoked certificate
    result = cli("apply", issued)
    assert result.code == 0 and re.search(r"^issued\s+web\s", result.out, re.M), result.out
    assert serial_on_disk(folder / "out" / "web.pem") != old


def test_a_misspelt_revoke_replaced_is_a_problem_at_its_line(issued: Path, cli: Cli) -> None:
    issued.write_text(MANIFEST.replace("revoke_replaced: KEY_COMPROMISE", "revoke_replaced: KEY_COMPROMISED"))
    result = cli("validate", issued)
    assert result.code == 2
    line = 1 + MANIFEST.splitlines().index(next(x for x in MANIFEST.splitlines() if "KEY_COMPROMISE" in x))
    assert re.search(rf"m\.yaml:{line}: api: \$\.revoke_replaced: .*KEY_COMPROMISED", result.err), result.err
