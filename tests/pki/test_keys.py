"""Keys and CSRs made from a manifest's ``key:`` block: the files, the CSR, pending keys,
and how the loader reports a bad block (FILE:LINE: ENTRY: $.path)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from pca_batch.pki import keys
from pca_batch.pki.keys import KeySpec
from tests.support.common import Cli, CsrFile

CA = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/0a0b0c0d-1111-2222-3333-444455556666"
PASS_VAR = "PB_TEST_KEY_PASSPHRASE"

FULL_SPEC = {
    "algorithm": "EC_prime256v1",
    "subject": {"CommonName": "web.example", "Organization": "Example Org", "Country": "NL"},
    "dns_names": ["web.example", "www.example"],
    "ip_addresses": ["10.0.0.1", "2001:db8::1"],
    "uris": ["spiffe://example/web"],
    "emails": ["ops@example.com"],
}


def spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def pem_body_lines(pem: bytes) -> list[str]:
    """The base64 lines of a PEM block (what a leaked key would show)."""
    return [line for line in pem.decode().splitlines() if line and not line.startswith("-----")]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def sans_of(cert: x509.Certificate | x509.CertificateSigningRequest) -> dict[str, list[str]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {
        "dns": san.get_values_for_type(x509.DNSName),
        "ip": [str(a) for a in san.get_values_for_type(x509.IPAddress)],
        "uri": san.get_values_for_type(x509.UniformResourceIdentifier),
        "email": san.get_values_for_type(x509.RFC822Name),
    }


# -- keys.py on its own -------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["EC_prime256v1", "EC_secp384r1", "EC_secp521r1", "RSA_2048"])
def test_a_generated_key_is_of_the_algorithm_asked_for_and_its_csr_verifies(algorithm: str) -> None:
    spec = KeySpec.from_manifest({**FULL_SPEC, "algorithm": algorithm})
    key = keys.generate(algorithm)
    assert keys.algorithm_of(key) == algorithm
    assert isinstance(key, rsa.RSAPrivateKey if algorithm.startswith("RSA") else ec.EllipticCurvePrivateKey)

    csr = x509.load_pem_x509_csr(keys.build_csr(spec, key).encode())

    assert csr.is_signature_valid
    assert spki(csr.public_key()) == spki(key.public_key())


def test_the_csr_carries_the_subject_and_every_kind_of_san() -> None:
    spec = KeySpec.from_manifest(FULL_SPEC)
    key = keys.generate(spec.algorithm)

    csr = x509.load_pem_x509_csr(keys.build_csr(spec, key).encode())

    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "web.example"
    assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Example Org"
    assert csr.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "NL"
    assert sans_of(csr) == {
        "dns": ["web.example", "www.example"],
        "ip": ["10.0.0.1", "2001:db8::1"],
        "uri": ["spiffe://example/web"],
        "email": ["ops@example.com"],
    }
    # what the loader shows, and what a certificate on disk is compared with, in one text form
    assert spec.name().rfc4514_string() == csr.subject.rfc4514_string()
    assert spec.sans_text() == (
        "DNS:web.example", "DNS:www.example", "IP:10.0.0.1", "IP:2001:db8::1",
        "URI:spiffe://example/web", "email:ops@example.com",
    )


def test_a_key_is_saved_as_pkcs8_pem_with_mode_0600(tmp_path: Path) -> None:
    key = keys.generate("EC_prime256v1")
    path = tmp_path / "deep" / "folder" / "k.pem"

    keys.save(path, key, None)

    data = path.read_bytes()
    assert data.startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, not "EC PRIVATE KEY"
    assert mode_of(path) == 0o600
    assert spki(keys.load(path, None).public_key()) == spki(key.public_key())
    assert [p.name for p in path.parent.iterdir()] == ["k.pem"]  # no temporary file left


def test_an_encrypted_key_loads_only_with_its_passphrase_and_no_message_shows_it(tmp_path: Path) -> None:
    key = keys.generate("EC_prime256v1")
    path = tmp_path / "k.pem"

    keys.save(path, key, b"correct horse")

    data = path.read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert mode_of(path) == 0o600
    assert spki(keys.load(path, b"correct horse").public_key()) == spki(key.public_key())
    with pytest.raises(TypeError):  # cryptography itself: encrypted, no password
        serialization.load_pem_private_key(data, password=None)
    messages = []
    for secret in (None, b"wrong"):
        with pytest.raises(keys.KeyError_) as failed:
            keys.load(path, secret)
        messages.append(str(failed.value))
    assert "encrypted and no passphrase was given" in messages[0]
    assert "wrong passphrase" in messages[1]
    plain = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    for line in pem_body_lines(data) + pem_body_lines(plain):
        assert all(line not in m for m in messages)


def test_a_passphrase_variable_that_is_not_set_is_named_not_guessed() -> None:
    spec = KeySpec.from_manifest({"subject": {"CommonName": "x"}, "passphrase_env": PASS_VAR})
    with pytest.raises(keys.KeyError_, match=PASS_VAR):
        keys.passphrase(spec, {})
    assert keys.passphrase(spec, {PASS_VAR: "pw"}) == b"pw"
    assert keys.passphrase(KeySpec.from_manifest({"subject": {"CommonName": "x"}}), {}) is None


def test_a_new_key_is_pending_before_anything_is_sent_and_moved_in_afterwards(tmp_path: Path) -> None:
    spec = KeySpec.from_manifest({"subject": {"CommonName": "x"}})
    final = tmp_path / "out" / "x.key"

    key, new = keys.key_for_issue(spec, final, {})

    pending = keys.pending_path(final)
    assert new and pending.name == "x.key.pending" and not final.exists()
    assert mode_of(pending) == 0o600
    # an interrupted run left it: the next one takes the very same key, not a new one
    again, new_again = keys.key_for_issue(spec, final, {})
    assert new_again and spki(again.public_key()) == spki(key.public_key())

    keys.install_pending(final)

    assert not pending.exists() and mode_of(final) == 0o600
    assert spki(keys.load(final, None).public_key()) == spki(key.public_key())
    keys.install_pending(final)  # nothing pending: nothing happens
    assert spki(keys.load(final, None).public_key()) == spki(key.public_key())


def test_rotate_never_keeps_the_key_and_always_makes_a_new_one(tmp_path: Path) -> None:
    final = tmp_path / "x.key"
    old = keys.generate("EC_prime256v1")
    keys.save(final, old, None)
    before = final.read_bytes()

    kept, new = keys.key_for_issue(KeySpec.from_manifest({"subject": {"CommonName": "x"}, "rotate": "never"}),
                                   final, {})
    assert not new and spki(kept.public_key()) == spki(old.public_key())
    assert not keys.pending_path(final).exists()
    keys.install_pending(final)
    assert final.read_bytes() == before

    fresh, new = keys.key_for_issue(KeySpec.from_manifest({"subject": {"CommonName": "x"}}), final, {})
    assert new and spki(fresh.public_key()) != spki(old.public_key())
    assert final.read_bytes() == before  # the old key stays until the new certificate is written


def test_a_key_of_another_algorithm_is_neither_kept_nor_reused(tmp_path: Path) -> None:
    final = tmp_path / "x.key"
    keys.save(final, keys.generate("EC_prime256v1"), None)
    keys.save(keys.pending_path(final), keys.generate("EC_prime256v1"), None)
    spec = KeySpec.from_manifest(
        {"algorithm": "EC_secp384r1", "subject": {"CommonName": "x"}, "rotate": "never"}
    )

    key, new = keys.key_for_issue(spec, final, {})

    assert new and keys.algorithm_of(key) == "EC_secp384r1"
    assert keys.algorithm_of(keys.load(keys.pending_path(final), None)) == "EC_secp384r1"
    keys.pending_path(final).unlink()
    # rotate: never with the existing key of the old algorithm: a new key all the same
    key, new = keys.key_for_issue(spec, final, {})
    assert new and keys.algorithm_of(key) == "EC_secp384r1"


def test_the_spec_of_an_invalid_block_is_built_without_raising() -> None:
    """The loader builds a spec for blocks it reports as invalid; that must never crash it."""
    spec = KeySpec.from_manifest({
        "subject": {"CommonName": "", "Country": "USA", "Organization": "Org"},
        "dns_names": "not-a-list",
        "ip_addresses": ["10.0.0.1", "300.1.1.1"],
        "uris": None,
        "passphrase_env": 5,
    })
    assert spec.dns_names == () and spec.uris == () and spec.passphrase_env is None
    assert spec.sans_text() == ("IP:10.0.0.1", "IP:300.1.1.1")
    assert spec.name().rfc4514_string() == "O=Org"  # the refused Country is left out of what is shown
    with pytest.raises(keys.KeyError_, match="Country"):
        keys.build_csr(spec, keys.generate("EC_prime256v1"))  # but never left out of a CSR
    assert KeySpec.from_manifest({"subject": ["CommonName"]}).subject == ()


def test_ip_addresses_are_compared_in_the_form_x509_writes_them() -> None:
    spec = KeySpec.from_manifest({"ip_addresses": ["2001:DB8:0:0::1"]})
    csr = x509.load_pem_x509_csr(keys.build_csr(spec, keys.generate("EC_prime256v1")).encode())
    assert spec.sans_text() == ("IP:2001:db8::1",) == tuple(f"IP:{a}" for a in sans_of(csr)["ip"])


# -- the loader: a bad `key:` block, located -------------------------------------------------


def write(folder: Path, body: str) -> Path:
    path = folder / "m.yaml"
    path.write_text(body)
    return path


HEAD = f"""\
version: 1
defaults:
  CertificateAuthorityArn: {CA}
  SigningAlgorithm: SHA256WITHECDSA
  Validity: {{Value: 30, Type: DAYS}}
certificates:
"""


def test_validate_locates_every_problem_of_a_key_block(cli: Cli, tmp_path: Path, csr_file: CsrFile) -> None:
    csr_file("both")
    path = write(tmp_path, HEAD + """\
  - name: both
    Csr: file://csr/both.csr
    key: {subject: {CommonName: both.example}}
    output: {certificate: out/both.pem, private_key: out/both.key}
  - name: no-key-file
    key: {subject: {CommonName: b.example}}
    output: {certificate: out/b.pem}
  - name: no-cert-file
    key: {subject: {CommonName: c.example}}
    output: {private_key: out/c.key}
  - name: bad-ip
    key:
      subject: {CommonName: d.example}
      ip_addresses: [10.0.0.1, 300.1.1.1]
    output: {certificate: out/d.pem, private_key: out/d.key}
  - name: nameless
    key: {algorithm: EC_prime256v1}
    output: {certificate: out/e.pem, private_key: out/e.key}
  - name: fine
    key: {subject: {CommonName: f.example}}
    output: {certificate: out/f.pem, private_key: out/f.key}
""")

    result = cli("validate", path)

    assert result.code == 2
    assert result.err.splitlines() == [
        f"{path}:9: both: $.key: give either Csr or key, not both",
        f"{path}:12: no-key-file: $.output: an entry with `key` needs output.private_key",
        f"{path}:15: no-cert-file: $.output: an entry with `key` needs output.certificate",
        f"{path}:20: bad-ip: $.key.ip_addresses[1]: '300.1.1.1' is not an IP address",
        f"{path}:23: nameless: $.key: the key needs a subject or at least one subject alternative name",
        "5 problems in 5 entries",
    ]


def test_schema_problems_of_a_key_block_are_located_and_nothing_crashes(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + """\
  - name: country
    key: {subject: {CommonName: a.example, Country: USA}}
    output: {certificate: out/a.pem, private_key: out/a.key}
  - name: algorithm
    key: {algorithm: DSA_1024, subject: {CommonName: b.example}}
    output: {certificate: out/b.pem, private_key: out/b.key}
  - name: rotate
    key: {subject: {CommonName: c.example}, rotate: sometimes}
    output: {certificate: out/c.pem, private_key: out/c.key}
""")

    result = cli("validate", path)

    assert result.code == 2, result.err
    lines = result.err.splitlines()
    assert (f"{path}:8: country: $.key.subject.Country: "
            "'USA' does not match the pattern ^(?:[A-Za-z]{2})$") in lines
    for start in (f"{path}:11: algorithm: $.key.algorithm: 'DSA_1024' is not one of",
                  f"{path}:14: rotate: $.key.rotate: 'sometimes' is not one of"):
        assert any(line.startswith(start) for line in lines), start
    assert "internal error" not in result.err


def test_apply_refuses_an_invalid_key_entry_and_writes_no_key(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, HEAD.replace("version: 1\n", f"""version: 1
backend:
  type: local
  store: store
  authorities:
    - {{arn: {CA}, common_name: Keys Root}}
""") + """\
  - name: bad-ip
    key: {subject: {CommonName: d.example}, ip_addresses: [300.1.1.1]}
    output: {certificate: out/d.pem, private_key: out/d.key}
""")

    result = cli("apply", path, "--report", tmp_path / "r.json")

    assert result.code == 2
    assert f"{path}:13: bad-ip: $.key.ip_addresses[0]: '300.1.1.1' is not an IP address" in result.err
    assert not (tmp_path / "out").exists()
    assert json.loads((tmp_path / "r.json").read_text())["results"][0]["status"] == "invalid"


# -- apply with the local CA: the files a key entry gets ------------------------------------------


def test_apply_makes_the_key_and_a_certificate_for_it(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASS_VAR, "open sesame")
    path = write(tmp_path, f"""\
version: 1
backend:
  type: local
  store: store
  authorities:
    - {{arn: {CA}, common_name: Keys Root}}
defaults:
  CertificateAuthorityArn: {CA}
  SigningAlgorithm: SHA256WITHECDSA
  Validity: {{Value: 30, Type: DAYS}}
certificates:
  - name: web
    key:
      algorithm: EC_secp384r1
      subject: {{CommonName: web.example, Organization: Example Org, Country: NL}}
      dns_names: [web.example, www.example]
      ip_addresses: [10.0.0.1, "2001:db8::1"]
      uris: ["spiffe://example/web"]
      emails: [ops@example.com]
      passphrase_env: {PASS_VAR}
    output: {{certificate: out/web.pem, chain: out/web.chain.pem, private_key: out/web.key}}
  - name: rsa
    key: {{algorithm: RSA_2048, dns_names: [rsa.example]}}
    output: {{certificate: out/rsa.pem, private_key: out/rsa.key}}
""")

    result = cli("apply", path, "--report", tmp_path / "r.json")

    assert result.code == 0, result.err
    report = {r["name"]: r for r in json.loads((tmp_path / "r.json").read_text())["results"]}
    assert {n: r["status"] for n, r in report.items()} == {"web": "issued", "rsa": "issued"}
    assert report["web"]["outputs"]["private_key"] == "out/web.key"
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "rsa.key", "rsa.pem", "web.chain.pem", "web.key", "web.pem"]

    web_key = (out / "web.key").read_bytes()
    assert web_key.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") and mode_of(out / "web.key") == 0o600
    with pytest.raises(keys.KeyError_):
        keys.load(out / "web.key", None)
    key = keys.load(out / "web.key", b"open sesame")
    assert keys.algorithm_of(key) == "EC_secp384r1"
    cert = x509.load_pem_x509_certificate((out / "web.pem").read_bytes())
    assert spki(cert.public_key()) == spki(key.public_key())
    assert cert.subject.rfc4514_string() == "CN=web.example,O=Example Org,C=NL"
    assert sans_of(cert) == {
        "dns": ["web.example", "www.example"],
        "ip": ["10.0.0.1", "2001:db8::1"],
        "uri": ["spiffe://example/web"],
        "email": ["ops@example.com"],
    }
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate((out / "web.chain.pem").read_bytes()))
    assert report["web"]["serial"] == format(cert.serial_number, "032x")

    rsa_key = (out / "rsa.key").read_bytes()
    assert rsa_key.startswith(b"-----BEGIN PRIVATE KEY-----") and mode_of(out / "rsa.key") == 0o600
    rsa_cert = x509.load_pem_x509_certificate((out / "rsa.pem").read_bytes())
    assert spki(rsa_cert.public_key()) == spki(keys.load(out / "rsa.key", None).public_key())
    assert keys.algorithm_of(keys.load(out / "rsa.key", None)) == "RSA_2048"
    assert not list(out.glob("*.pending"))

    again = cli("apply", path, "--report", tmp_path / "r2.json")
    assert again.code == 0, again.err
    assert {r["status"] for r in json.loads((tmp_path / "r2.json").read_text())["results"]} == {"unchanged"}
    assert (out / "web.key").read_bytes() == web_key and (out / "rsa.key").read_bytes() == rsa_key


def test_a_passphrase_variable_not_set_fails_the_entry_with_its_name(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASS_VAR, raising=False)
    path = write(tmp_path, f"""\
version: 1
backend:
  type: local
  store: store
  authorities:
    - {{arn: {CA}, common_name: Keys Root}}
defaults:
  CertificateAuthorityArn: {CA}
  SigningAlgorithm: SHA256WITHECDSA
  Validity: {{Value: 30, Type: DAYS}}
certificates:
  - name: locked
    key: {{subject: {{CommonName: locked.example}}, passphrase_env: {PASS_VAR}}}
    output: {{certificate: out/locked.pem, private_key: out/locked.key}}
""")

    result = cli("apply", path, "--report", tmp_path / "r.json")

    assert result.code == 1
    row = json.loads((tmp_path / "r.json").read_text())["results"][0]
    assert (row["status"], row["error"]["code"]) == ("failed", "PrivateKeyError")
    assert PASS_VAR in row["error"]["message"]
    assert not (tmp_path / "out" / "locked.pem").exists() and not (tmp_path / "out" / "locked.key").exists()
    assert not os.path.exists(tmp_path / "out" / "locked.key.pending")
