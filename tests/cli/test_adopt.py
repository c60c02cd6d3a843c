"""`apply --adopt` on the local CA: certificate files the state has no record of (written by a
script that called IssueCertificate and GetCertificate itself) are checked and recorded instead
of renewed, when they chain to the entry's CA and carry its key, subject, SANs, signing
algorithm and lifetime; any other file is renewed as without --adopt, and the plan says why."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pca_batch.backends import open_backend
from pca_batch.backends.base import CertificateBundle
from pca_batch.backends.local.backend import LocalBackend
from pca_batch.manifest.load import load_manifest
from pca_batch.pki import keys
from pca_batch.plan import adopt, converge
from pca_batch.plan.renewal import IssuedIndex
from tests.support.common import CA_ARN, OTHER_ARN, Cli, make_csr_pem, two_ca_head
from tests.support.local_ca import openssl_verify

HEAD = two_ca_head("Adopt")
KEYS = {n: ec.generate_private_key(ec.SECP256R1()) for n in ("a", "b", "c", "d", "e", "f")}


def flat(text: str) -> str:
    return " ".join(text.split())


def csr_entry(name: str, extra: str = "") -> str:
    return (f"  - {{name: {name}, Csr: file://csr/{name}.csr{extra}, "
            f"output: {{certificate: out/{name}.pem, chain: out/{name}.chain.pem, "
            f"full_chain: out/{name}.full.pem}}}}\n")


def write(folder: Path, names: list[str], extra: dict[str, str] | None = None, *, key_entry: bool = False) -> Path:
    (folder / "csr").mkdir(parents=True, exist_ok=True)
    body = HEAD
    for name in names:
        (folder / "csr" / f"{name}.csr").write_bytes(make_csr_pem(f"{name}.example", (f"{name}.example",),
                                                                  key=KEYS[name]))
        body += csr_entry(name, (extra or {}).get(name, ""))
    if key_entry:
        body += ("  - {name: k, key: {algorithm: EC_prime256v1, subject: {CommonName: k.example}, "
                 "dns_names: [k.example]}, output: {certificate: out/k.pem, private_key: out/k.key}}\n")
    path = folder / "m.yaml"
    path.write_text(body)
    return path


def shell_loop(folder: Path, name: str, *, csr: bytes | None = None, ca: str = CA_ARN, days: int = 30,
               algorithm: str = "SHA256WITHECDSA") -> str:
    """What `aws acm-pca issue-certificate` + `get-certificate > out/NAME.pem` does: the leaf only."""
    backend = open_backend(load_manifest(str(folder / "m.yaml")).backend)
    try:
        arn = backend.issue_certificate({
            "CertificateAuthorityArn": ca, "SigningAlgorithm": algorithm, "Validity": {"Value": days, "Type": "DAYS"},
            "Csr": csr if csr is not None else (folder / "csr" / f"{name}.csr").read_bytes(),
        })
        pem = backend.get_certificate(ca, arn).certificate
    finally:
        backend.close()
    out = folder / "out" / f"{name}.pem"
    out.parent.mkdir(exist_ok=True)
    out.write_text(pem)
    return arn


def issued_lines(folder: Path) -> list[dict[str, Any]]:
    path = folder / ".pca-batch" / "journal.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    return [line for line in lines if line["event"] != "key"]  # a new key's record, before its certificate


def test_files_a_shell_loop_wrote_are_adopted_and_the_next_apply_makes_no_call(tmp_path: Path, cli: Cli) -> None:
    manifest = write(tmp_path, ["a", "b"])
    arns = {n: shell_loop(tmp_path, n) for n in ("a", "b")}
    leaves = {n: (tmp_path / "out" / f"{n}.pem").read_bytes() for n in ("a", "b")}

    plan = cli("apply", manifest, "--plan", "--adopt")
    assert plan.code == 0, plan.err
    assert [line.split(" (")[0] for line in plan.out.splitlines()[:2]] == ["= adopt", "= adopt"]
    assert flat(plan.out).endswith("Plan: 2 entries, 2 planned; 2 to adopt (recorded, not renewed)")
    assert issued_lines(tmp_path) == []  # the plan records nothing

    applied = cli("apply", manifest, "--adopt")
    assert applied.code == 0, applied.err
    assert "2 entries, 2 unchanged" in applied.out
    assert sum(line.endswith("adopted") for line in applied.out.splitlines()) == 2
    assert {r["name"]: r["certificate_arn"] for r in issued_lines(tmp_path)} == arns
    for name in ("a", "b"):
        assert (tmp_path / "out" / f"{name}.pem").read_bytes() == leaves[name]  # left as it was
        chain = (tmp_path / "out" / f"{name}.chain.pem").read_text()
        full = (tmp_path / "out" / f"{name}.full.pem").read_text()
        assert full == leaves[name].decode() + chain
        verified = openssl_verify(tmp_path, leaves[name].decode(), chain)
        assert verified.returncode == 0, verified.stderr

    again = cli("apply", manifest)  # no --adopt needed any more: they are in the state
    assert again.code == 0 and "2 entries, 2 unchanged" in again.out
    assert len(issued_lines(tmp_path)) == 2
    assert flat(cli("apply", manifest, "--plan").out).endswith("Plan: 2 entries, 2 unchanged")


@pytest.mark.parametrize(
    ("loop", "why"),
    [
        ({"csr": make_csr_pem("a.example", ("a.example",))}, "the certificate's public key (SHA-256"),
        ({"ca": OTHER_ARN}, "the certificate's issuer CN=Adopt Other CA"),
        ({"algorithm": "SHA384WITHECDSA"}, "the certificate is signed with SHA384WITHECDSA, the entry asks for "
                                           "SHA256WITHECDSA"),
        ({"days": 10}, "the certificate's lifetime (10.04 days"),
        ({"csr": make_csr_pem("x.example", ("a.example",), key=KEYS["a"])},
         "the certificate's subject CN=x.example differs from the entry's CN=a.example"),
    ],
    ids=["another-key", "another-ca", "another-algorithm", "another-lifetime", "another-subject"],
)
def test_a_file_that_does_not_fit_is_renewed_and_the_plan_says_why(
    tmp_path: Path, cli: Cli, loop: dict[str, Any], why: str
) -> None:
    manifest = write(tmp_path, ["a"])
    shell_loop(tmp_path, "a", **loop)
    before = (tmp_path / "out" / "a.pem").read_bytes()
    plan = cli("apply", manifest, "--plan", "--adopt")
    assert plan.code == 0
    assert flat(plan.out).startswith("~ renew (the journal has no record of issuing this certificate; not adopted: ")
    assert why in flat(plan.out)
    assert "to adopt" not in plan.out and "to issue: 1 from" in flat(plan.out)
    applied = cli("apply", manifest, "--adopt")
    assert applied.code == 0, applied.err
    assert "1 issued" in applied.out
    assert (tmp_path / "out" / "a.pem").read_bytes() != before
    [line] = issued_lines(tmp_path)
    issued = x509.load_pem_x509_certificate((tmp_path / "out" / "a.pem").read_bytes())
    assert line["certificate_arn"].endswith(format(issued.serial_number, "032x"))


def test_without_adopt_the_files_are_renewed_as_before(tmp_path: Path, cli: Cli) -> None:
    manifest = write(tmp_path, ["a"])
    arn = shell_loop(tmp_path, "a")
    assert cli("apply", manifest).code == 0
    [line] = issued_lines(tmp_path)
    assert line["certificate_arn"] != arn


def test_a_file_due_for_renewal_is_renewed_not_adopted(tmp_path: Path, cli: Cli) -> None:
    manifest = write(tmp_path, ["a"], {"a": ", renew_before: 40d"})
    shell_loop(tmp_path, "a")
    plan = cli("apply", manifest, "--plan", "--adopt")
    assert "not adopted: it is due for renewal" in flat(plan.out)


def test_an_entry_whose_key_pca_batch_keeps_is_adopted(tmp_path: Path, cli: Cli) -> None:
    manifest = write(tmp_path, [], key_entry=True)
    spec = keys.KeySpec(subject=(("CommonName", "k.example"),), dns_names=("k.example",))
    key = keys.generate("EC_prime256v1")
    keys.save(tmp_path / "out" / "k.key", key, None)
    shell_loop(tmp_path, "k", csr=keys.build_csr(spec, key).encode("ascii"))
    applied = cli("apply", manifest, "--adopt")
    assert applied.code == 0 and "1 unchanged" in applied.out
    assert flat(cli("apply", manifest, "--plan").out).endswith("Plan: 1 entries, 1 unchanged")


def test_adopt_plans_offline_without_judging(tmp_path: Path, cli: Cli) -> None:
    manifest = write(tmp_path, ["a"])
    shell_loop(tmp_path, "a")
    plan = cli("apply", manifest, "--plan", "--adopt", "--offline")
    assert "not adopted: --offline: not checked against the CA certificate" in flat(plan.out)


# -- the CA certificate is asked for once per CA, and the cache changes no verdict ----------------


class Counting:
    """The local backend, counting GetCertificateAuthorityCertificate calls."""

    def __init__(self, inner: LocalBackend) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def get_certificate_authority_certificate(self, ca_arn: str) -> CertificateBundle:
        self.calls[ca_arn] += 1
        return self.inner.get_certificate_authority_certificate(ca_arn)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Uncached(adopt.CaCertificates):
    """The slow path: every candidate asks again."""

    def get(self, ca_arn: str) -> tuple[x509.Certificate, str]:
        self._known.clear()
        return super().get(ca_arn)


VARIANTS = ("fits", "other-key", "other-ca", "other-days")


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(VARIANTS), min_size=1, max_size=6))
def test_ca_certificates_are_fetched_once_per_ca_and_the_cache_changes_no_verdict(
    tmp_path_factory: pytest.TempPathFactory, variants: list[str]
) -> None:
    folder = tmp_path_factory.mktemp("adopt")
    names = ["a", "b", "c", "d", "e", "f"][: len(variants)]
    manifest = write(folder, names)
    for name, variant in zip(names, variants, strict=True):
        loops: dict[str, dict[str, Any]] = {
            "other-key": {"csr": make_csr_pem(f"{name}.example", (f"{name}.example",))},
            "other-ca": {"ca": OTHER_ARN}, "other-days": {"days": 3},
        }
        loop = loops.get(variant, {})
        shell_loop(folder, name, **loop)
    loaded = load_manifest(str(manifest))
    index = IssuedIndex.load(folder / ".pca-batch" / "journal.jsonl")
    steps = converge.decide_all(list(loaded.entries), index, now=datetime.now(UTC), force=False)
    backend = Counting(LocalBackend(folder / "store", read_only=True))
    try:
        now = datetime.now(UTC)
        fast = adopt.judge(steps, adopt.CaCertificates(backend, 1), folder, now=now)  # type: ignore[arg-type]
        assert backend.calls == Counter({CA_ARN: 1})
        slow = adopt.judge(steps, Uncached(backend, 1), folder, now=now)  # type: ignore[arg-type]
    finally:
        backend.inner.close()
    assert [(j.step.entry.name, j.differences) for j in fast] == [(j.step.entry.name, j.differences) for j in slow]
    assert [j.adoptable for j in fast] == [v == "fits" for v in variants]


def test_adopted_entries_do_not_count_against_max_issue(tmp_path: Path, cli: Cli) -> None:
    manifest = write(tmp_path, ["a", "b", "c"])
    shell_loop(tmp_path, "a")
    shell_loop(tmp_path, "b")
    shell_loop(tmp_path, "c", csr=make_csr_pem("c.example", ("c.example",)))  # another key: renewed
    refused = cli("apply", manifest, "--adopt", "--max-issue", "0")
    assert refused.code == 1
    assert "1 certificate would be issued, more than --max-issue 0 allows: 1 renewal: the state at" in flat(refused.err)
    assert [r["name"] for r in issued_lines(tmp_path)] == ["a", "b"]  # adopted (recorded) before the guard
    assert cli("apply", manifest, "--max-issue", "1").code == 0
    assert [r["name"] for r in issued_lines(tmp_path)] == ["a", "b", "c"]
