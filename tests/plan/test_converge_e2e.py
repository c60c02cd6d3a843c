"""The declarative lifecycle end to end with the aws backend: botocore -> the fault proxy (which
counts every call) -> a real moto server, all on 127.0.0.1 with dummy credentials.

- key entries get a key, a CSR and a certificate for that key, with the subject and SANs asked for;
- a second apply of an unchanged manifest makes no call at all, IssueCertificate and
  GetCertificate included; --force reissues with tokens the proxy (deduplicating as AWS does)
  has not seen, so new certificates come back;
- no private key shows in any output: stdout and stderr of apply and plan, error messages,
  the JSON report, the JUnit file, the GitHub step summary and the journal.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pca_batch import schema
from pca_batch.pki import keys
from tests.support.common import Cli, CliResult, make_csr_pem
from tests.support.fault_proxy import FaultProxy
from tests.support.moto_server import (
    SIGNING_ALGORITHM,
    AwsEntry,
    create_active_ca,
    moto_thread,
    serial_certificate_arns,
    write_aws_manifest,
)

PASS_VAR = "PB_E2E_KEY_PASSPHRASE"


@pytest.fixture(scope="module")
def moto(aws_env: Path) -> Iterator[str]:
    """moto, except that a certificate ARN ends in the certificate's serial number in hex, as on
    AWS (moto draws a random id): pca-batch knows a certificate on disk by that serial."""
    with pytest.MonkeyPatch.context() as mp:
        serial_certificate_arns(mp)
        with moto_thread() as endpoint:
            yield endpoint


@pytest.fixture(scope="module")
def ca(moto: str) -> str:
    return create_active_ca(moto, "us-east-1", "pca-batch converge root")


@pytest.fixture
def proxy(moto: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto) as p:
        yield p


def spki(obj: Any) -> bytes:
    return obj.public_key().public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_manifest(folder: Path, endpoint: str, ca: str, entries: str) -> Path:
    path = folder / "m.yaml"
    path.write_text(f"""\
version: 1
backend: {{type: aws, endpoint_url: '{endpoint}', region: us-east-1}}
defaults:
  CertificateAuthorityArn: {ca}
  SigningAlgorithm: {SIGNING_ALGORITHM}
  Validity: {{Value: 7, Type: DAYS}}
certificates:
{entries}""")
    return path


def entries(folder: Path) -> str:
    """A key entry with every kind of SAN and an encrypted key, a plain key entry and a CSR entry."""
    (folder / "csr").mkdir(exist_ok=True)
    (folder / "csr" / "c.csr").write_bytes(make_csr_pem("c.example", ("c.example",)))
    return f"""\
  - name: full
    key:
      subject: {{CommonName: full.example, Organization: Example Org, OrganizationalUnit: Ops}}
      dns_names: [full.example, www.full.example]
      ip_addresses: [192.0.2.10, "2001:db8::10"]
      uris: ["spiffe://example.org/full"]
      emails: [pki@example.org]
      passphrase_env: {PASS_VAR}
    output: {{certificate: out/full.pem, chain: out/full.chain.pem, full_chain: out/full.full.pem,
              private_key: out/full.key}}
  - name: plain
    key: {{algorithm: EC_secp384r1, dns_names: [plain.example]}}
    output: {{certificate: out/plain.pem, private_key: out/plain.key}}
  - name: c
    Csr: file://csr/c.csr
    output: {{certificate: out/c.pem}}
"""


def report_of(path: Path) -> dict[str, dict[str, Any]]:
    data = json.loads(path.read_text())
    schema.validator(schema.REPORT).validate(data)
    return {r["name"]: r for r in data["results"]}


def journal(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / ".pca-batch" / "journal.jsonl").read_text().splitlines()]


def delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, int]:
    """Calls per operation that reached the proxy between two snapshots."""
    return {op: n - before["calls"].get(op, 0) for op, n in after["calls"].items()
            if n - before["calls"].get(op, 0)}


def test_key_entries_are_issued_then_left_alone_without_a_single_call(
    cli: Cli, proxy: FaultProxy, ca: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASS_VAR, "e2e passphrase")
    path = write_manifest(tmp_path, proxy.endpoint, ca, entries(tmp_path))

    first = cli("apply", path, "--report", tmp_path / "r1.json", "--max-rate", "0")
    after_first = proxy.snapshot()

    assert first.code == 0, first.out + first.err
    r1 = report_of(tmp_path / "r1.json")
    assert {n: r["status"] for n, r in r1.items()} == {"full": "issued", "plain": "issued", "c": "issued"}
    assert after_first["calls"]["IssueCertificate"] == 3 and after_first["calls"]["GetCertificate"] == 3
    out = tmp_path / "out"
    # the key: PKCS#8 PEM, 0600, encrypted with the passphrase; the certificate is for it
    data = (out / "full.key").read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert (out / "full.key").stat().st_mode & 0o777 == 0o600
    with pytest.raises(keys.KeyError_):
        keys.load(out / "full.key", None)
    full_key = keys.load(out / "full.key", b"e2e passphrase")
    cert = x509.load_pem_x509_certificate((out / "full.pem").read_bytes())
    assert spki(cert) == spki(full_key)
    assert cert.subject.rfc4514_string() == "CN=full.example,OU=Ops,O=Example Org"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["full.example", "www.full.example"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["192.0.2.10", "2001:db8::10"]
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://example.org/full"]
    assert san.get_values_for_type(x509.RFC822Name) == ["pki@example.org"]
    chain = x509.load_pem_x509_certificate((out / "full.chain.pem").read_bytes())
    cert.verify_directly_issued_by(chain)
    assert r1["full"]["certificate_arn"] == f"{ca}/certificate/{cert.serial_number:032x}"
    plain = (out / "plain.key").read_bytes()
    assert plain.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert (out / "plain.key").stat().st_mode & 0o777 == 0o600
    plain_key = keys.load(out / "plain.key", None)
    assert isinstance(plain_key, ec.EllipticCurvePrivateKey) and plain_key.curve.name == "secp384r1"
    assert spki(x509.load_pem_x509_certificate((out / "plain.pem").read_bytes())) == spki(plain_key)
    assert not list(out.glob("*.pending"))
    files = {p.name: p.read_bytes() for p in out.iterdir()}

    plan = cli("apply", path, "--plan", "--detailed-exitcode")
    second = cli("apply", path, "--report", tmp_path / "r2.json", "--max-rate", "0")
    after_second = proxy.snapshot()

    assert plan.code == 0, plan.out + plan.err
    assert second.code == 0, second.out + second.err
    r2 = report_of(tmp_path / "r2.json")
    assert {n: r["status"] for n, r in r2.items()} == dict.fromkeys(r1, "unchanged")
    assert {n: (r["serial"], r["certificate_arn"], r["idempotency_token"]) for n, r in r2.items()} == {
        n: (r["serial"], r["certificate_arn"], r["idempotency_token"]) for n, r in r1.items()}
    assert delta(after_second, after_first) == {}  # no IssueCertificate, no GetCertificate, nothing at all
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files
    lines = journal(tmp_path)
    assert [line["event"] for line in lines].count("issued") == 3
    # each new key's existence, recorded before its IssueCertificate under the token the report names
    made = {line["name"]: line for line in lines if line["event"] == "key"}
    assert {n: m["token"] for n, m in made.items()} == {n: r1[n]["idempotency_token"] for n in ("full", "plain")}
    assert made["full"]["spki_sha256"] == hashlib.sha256(spki(full_key)).hexdigest()
    text = (tmp_path / ".pca-batch" / "journal.jsonl").read_text()
    assert "PRIVATE KEY" not in text and "e2e passphrase" not in text


def test_force_reissues_with_new_tokens_then_settles(
    cli: Cli, proxy: FaultProxy, ca: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within AWS's five-minute window the token that issued a certificate would hand back that
    very certificate (the proxy deduplicates as AWS does): --force must send other tokens."""
    monkeypatch.setenv(PASS_VAR, "e2e passphrase")
    path = write_manifest(tmp_path, proxy.endpoint, ca, entries(tmp_path))
    assert cli("apply", path, "--report", tmp_path / "r1.json", "--max-rate", "0").code == 0
    before = proxy.snapshot()
    r1 = report_of(tmp_path / "r1.json")

    forced = cli("apply", path, "--force", "--report", tmp_path / "r2.json", "--max-rate", "0")
    after_force = proxy.snapshot()
    settled = cli("apply", path, "--report", tmp_path / "r3.json", "--max-rate", "0")
    after_settled = proxy.snapshot()

    assert forced.code == 0, forced.out + forced.err
    r2 = report_of(tmp_path / "r2.json")
    assert {r["status"] for r in r2.values()} == {"issued"}
    assert delta(after_force, before) == {"DescribeCertificateAuthority": 1, "IssueCertificate": 3,
                                          "GetCertificate": 3}
    assert after_force["deduplicated"] == before["deduplicated"] == 0  # no token was sent twice
    for name in r1:
        assert r2[name]["idempotency_token"] != r1[name]["idempotency_token"]
        assert r2[name]["serial"] != r1[name]["serial"]
        assert after_force["issue_forwarded"][r2[name]["idempotency_token"]] == 1
    lines = [line for line in journal(tmp_path) if line["event"] == "issued"]
    # the journal: three issuances, then three renewals, each under the token the report names
    assert [line["token"] for line in lines[:3]] == tokens_in_report(r1, lines[:3])
    assert [line["token"] for line in lines[3:]] == tokens_in_report(r2, lines[3:])
    assert settled.code == 0
    assert {r["status"] for r in report_of(tmp_path / "r3.json").values()} == {"unchanged"}
    assert delta(after_settled, after_force) == {}


def tokens_in_report(report: dict[str, dict[str, Any]], lines: list[dict[str, Any]]) -> list[str]:
    """The tokens the report gives for the certificates of these journal lines."""
    tokens = {r["certificate_arn"]: r["idempotency_token"] for r in report.values()}
    return [tokens[line["certificate_arn"]] for line in lines]


# -- no private key in any output ------------------------------------------------------------------


def leak_markers(key: Any, pem_files: list[bytes]) -> set[str]:
    """What a leaked key would look like: the base64 lines of its PEM forms (as written, unencrypted
    PKCS#8, traditional) and its private number in decimal and hex."""
    forms = list(pem_files) + [
        key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
        for fmt in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL)
    ]
    markers = {line for pem in forms for line in pem.decode().splitlines()
               if line and not line.startswith("-----")}
    number = key.private_numbers().private_value
    return markers | {str(number), format(number, "x")}


def test_no_private_key_shows_in_any_output(
    cli: Cli, proxy: FaultProxy, ca: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASS_VAR, "first passphrase")
    summary = tmp_path / "github-summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    body = entries(tmp_path).replace("      passphrase_env:", "      rotate: never\n      passphrase_env:")
    path = write_manifest(tmp_path, proxy.endpoint, ca, body)
    outputs: dict[str, str] = {}
    out = tmp_path / "out"
    seen_keys: dict[bytes, bytes | None] = {}  # every key file any run left: its bytes -> passphrase

    def run(label: str, *args: str) -> CliResult:
        result = cli("apply", path, *args, "--report", tmp_path / f"{label}.json",
                     "--junit", tmp_path / f"{label}.xml", "--max-rate", "0")
        outputs[f"{label} stdout"], outputs[f"{label} stderr"] = result.out, result.err
        for name, secret in (("full", b"first passphrase"), ("plain", None)):
            if (out / f"{name}.key").exists():
                seen_keys[(out / f"{name}.key").read_bytes()] = secret
        return result

    assert run("plan-1", "--plan").code == 0
    assert run("apply-1").code == 0
    assert run("apply-force", "--force").code == 0  # renewals too: new keys (plain), kept key (full)
    # the passphrase changes: the kept key cannot be read; the entry fails with a message
    monkeypatch.setenv(PASS_VAR, "another passphrase")
    assert run("plan-2", "--plan").code == 0
    failed = run("apply-2", "--force")
    assert failed.code == 1
    row = report_of(tmp_path / "apply-2.json")["full"]
    assert (row["status"], row["error"]["code"]) == ("failed", "PrivateKeyError")
    assert "wrong passphrase" in row["error"]["message"]
    monkeypatch.delenv(PASS_VAR)
    assert run("apply-3", "--force").code == 1  # and with no passphrase at all

    assert len(seen_keys) == 5  # full: one key, kept (rotate: never); plain: one per issue and forced renewal
    markers: set[str] = set()
    for data, secret in seen_keys.items():
        holder = tmp_path / "k.tmp"
        holder.write_bytes(data)
        markers |= leak_markers(keys.load(holder, secret), [data])
        holder.unlink()
    files = [p for p in tmp_path.glob("*.json")] + [p for p in tmp_path.glob("*.xml")]
    files += [summary, tmp_path / ".pca-batch" / "journal.jsonl"]
    for f in files:
        outputs[f.name] = f.read_text()
    assert len(files) >= 12 and all(outputs[f.name] for f in files)
    # the markers would find a key: they are in the key files themselves
    assert all(any(m in data.decode() for m in markers) for data in seen_keys)
    leaks = {(where, m) for where, text in outputs.items() for m in markers if m in text}
    assert leaks == set()
    # nothing PEM in the journal but the CSRs of the new keys' records (public: what the CA got)
    for line in outputs["journal.jsonl"].splitlines():
        record = json.loads(line)
        if record["event"] == "key":
            assert record["csr"].startswith("-----BEGIN CERTIFICATE REQUEST-----")
            line = line.replace(json.dumps(record["csr"])[1:-1], "")
        assert "-----BEGIN" not in line and "PRIVATE" not in line


def test_the_preflight_describe_is_made_only_for_entries_sure_to_need_their_ca(
    cli: Cli, moto: str, ca: str, tmp_path: Path, foreseen: list[str]
) -> None:
    # The CAs are described while the manifest is read, but only for entries whose
    # certificate is not there yet: an unchanged re-run still makes no call at all.
    entries = [AwsEntry(f"again-{i}", ca) for i in range(3)]
    runs = []
    with FaultProxy(moto) as proxy:
        manifest, _ = write_aws_manifest(tmp_path, proxy.endpoint, entries)
        for i in range(3):
            if i == 2:
                (tmp_path / "out" / "again-1.pem").unlink()  # its ARN is in the journal: fetched, not issued
            before = Counter(proxy.snapshot()["calls"])
            result = cli("apply", manifest, "--max-rate", "0")
            runs.append((result.code, list(foreseen), Counter(proxy.snapshot()["calls"]) - before))
            foreseen.clear()

    assert runs == [
        (0, [ca], Counter({"DescribeCertificateAuthority": 1, "IssueCertificate": 3, "GetCertificate": 3})),
        (0, [], Counter()),
        (0, [ca], Counter({"DescribeCertificateAuthority": 1, "GetCertificate": 1})),
    ]
