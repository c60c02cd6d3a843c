"""load_manifest's records: built from accepted blocks only, CSR facts as plain values."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pca_batch.manifest.load import load_manifest
from pca_batch.model import DEFAULT_CRL_DAYS, DEFAULT_CRL_URL, BackendConfig, CrlConfig, CsrInfo, Manifest, RunSettings
from pca_batch.pki import csr as csrmod
from tests.support.common import CA_ARN, CORPUS

HEAD = f"""version: 1
defaults:
  CertificateAuthorityArn: {CA_ARN}
  SigningAlgorithm: SHA256WITHECDSA
  Validity: {{Value: 3, Type: DAYS}}
certificates:
  - name: a
    Csr: file://a.csr
"""


def _load(tmp_path: Path, body: str) -> tuple[list[tuple[BackendConfig, RunSettings]], Manifest]:
    (tmp_path / "a.csr").write_bytes((CORPUS / "csr" / "ec256.csr").read_bytes())
    (tmp_path / "m.yaml").write_text(body)
    heard: list[tuple[BackendConfig, RunSettings]] = []
    manifest = load_manifest(tmp_path / "m.yaml", on_backend=lambda b, s: heard.append((b, s)))
    return heard, manifest


def test_an_accepted_backend_and_settings_become_records_before_the_entries(tmp_path: Path) -> None:
    body = HEAD + f"""backend:
  store: ~/pca-store
  authorities:
    - {{arn: {CA_ARN}, common_name: root, validity_days: 30.0, crl: {{url: "http://crl.example/x", days: 2.0}}}}
    - {{arn: {CA_ARN}0, common_name: plain, crl: {{enabled: false, days: 3}}}}
    - {{arn: {CA_ARN}1, common_name: defaults, crl: {{}}}}
settings: {{concurrency: 8.0, max_rate: 2, max_attempts: 3}}
"""
    heard, manifest = _load(tmp_path, body)
    assert not manifest.all_problems()
    [(backend, settings)] = heard
    assert backend.store == Path("~/pca-store").expanduser()
    assert backend.authorities[0].validity_days == 30 and type(backend.authorities[0].validity_days) is int
    assert backend.authorities[0].line == 12
    assert backend.authorities[0].crl == CrlConfig(url="http://crl.example/x", days=2)
    assert backend.authorities[1].crl is None
    assert backend.authorities[2].crl == CrlConfig(url=DEFAULT_CRL_URL, days=DEFAULT_CRL_DAYS)
    assert settings == RunSettings(concurrency=8, max_rate=2.0, max_attempts=3)


@pytest.mark.parametrize(
    "block",
    [
        f"backend:\n  authorities:\n    - {{arn: {CA_ARN}, common_name: root, validity_days: abc}}\n",
        "backend:\n  store: 5\n",
        "backend: null\n",
        "settings: {concurrency: .inf}\n",
        "settings: {max_rate: .nan}\n",
        "settings: {throttle_timeout: soon}\n",
        "settings: {throttle_timeout: -1}\n",
        "settings: {throttle_timeout: .inf}\n",
    ],
)
def test_a_refused_block_is_a_problem_and_never_opens_a_backend(tmp_path: Path, block: str) -> None:
    heard, manifest = _load(tmp_path, HEAD + block)
    assert heard == []
    assert manifest.all_problems()
    assert [p.line for p in manifest.problems] in ([9], [10], [11])


def test_the_csrs_checked_while_loading_are_noted_for_the_local_ca(tmp_path: Path) -> None:
    _, manifest = _load(tmp_path, HEAD)
    request = manifest.entries[0].request
    assert request is not None
    pem = request["Csr"]
    assert csrmod.VERIFIED.holds(pem) and csrmod.VERIFIED.holds(pem.encode())
    assert not csrmod.VERIFIED.holds((CORPUS / "csr" / "altered.csr").read_bytes())


def test_what_a_csr_holds_is_a_plain_value_read_when_first_asked() -> None:
    assert dataclasses.is_dataclass(CsrInfo) and CsrInfo.__dataclass_params__.frozen  # type: ignore[attr-defined]
    data = (CORPUS / "csr" / "ec256.csr").read_bytes()
    checked = csrmod.inspect_csr(data)
    assert checked.key_algorithm == "EC_prime256v1"
    described = csrmod.describe_csr(checked.pem.encode())
    assert checked.info == described and isinstance(described, CsrInfo)
    assert (checked.subject, checked.sans, checked.public_key_sha256) == (
        described.subject,
        described.sans,
        described.public_key_sha256,
    )
    assert len(described.public_key_sha256) == 64


@pytest.mark.parametrize(("value", "seconds"), [("90s", 90.0), ("1h30m", 5400.0), ("90", 90.0), ("0", 0.0),
                                                ("2.5", 2.5), ('"15m"', 900.0)])
def test_the_throttle_timeout_is_read_as_seconds(tmp_path: Path, value: str, seconds: float) -> None:
    heard, manifest = _load(tmp_path, HEAD + f"settings: {{throttle_timeout: {value}}}\n")
    assert not manifest.all_problems()
    [(_backend, settings)] = heard
    assert settings.throttle_timeout == seconds


def test_a_throttle_timeout_that_is_no_duration_says_what_one_is(tmp_path: Path) -> None:
    _heard, manifest = _load(tmp_path, HEAD + "settings:\n  throttle_timeout: 15 minutes\n")
    [problem] = manifest.problems
    assert (problem.line, problem.path) == (10, "$.settings.throttle_timeout")
    assert problem.message == "'15 minutes' is not a duration such as 90s, 15m or 1h30m (or a number of seconds)"
