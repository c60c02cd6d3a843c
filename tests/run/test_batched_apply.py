"""`apply` on the local CA: the batched way (entries in chunks, signed in worker processes, one
journal write and one batch of files per chunk) against the one-by-one way (--concurrency 1),
on generated manifests and states: the same exit status, report, journal and files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pca_batch.run.journal import OtherRecord, read_events
from tests.support.common import Cli, make_csr_pem
from tests.support.local_ca import rsa_key

CA = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/0a0b0c0d-1111-2222-3333-777788889999"
_TIME = re.compile(r"\d{4,}-\d\d-\d\dT\d\d:\d\d:\d\dZ")  # in messages: the moment of each run
OUTPUTS = [("certificate",), ("certificate", "chain"), ("full_chain",), ("certificate", "chain", "full_chain")]


@st.composite
def entries(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(16, 32))  # 16 and more: the batched way (fewer go one by one anyway)
    return [
        {
            "name": f"e{i:02d}",
            "rsa": draw(st.booleans()),
            "outputs": draw(st.sampled_from(OUTPUTS)),
            "days": draw(st.sampled_from([30, 30, 90, 400000])),  # 400000 days: past the CA's NotAfter
            "algorithm": draw(st.sampled_from(["SHA256WITHECDSA", "SHA256WITHECDSA", "SHA384WITHECDSA"])),
        }
        for i in range(count)
    ]


def _csrs(items: list[dict[str, Any]]) -> dict[str, bytes]:
    """One CSR an entry, the same for both ways (a CSR of its own would be another token)."""
    return {item["name"]: make_csr_pem(f"{item['name']}.example", (f"{item['name']}.example",),
                                       key=rsa_key() if item["rsa"] else None) for item in items}


def _manifest(folder: Path, items: list[dict[str, Any]], csrs: dict[str, bytes]) -> Path:
    (folder / "csr").mkdir(parents=True, exist_ok=True)
    lines = ["version: 1", "backend:", "  type: local", "  store: store", "  authorities:",
             f"    - {{arn: {CA}, common_name: Batched Root}}", "defaults:",
             f"  CertificateAuthorityArn: {CA}", "certificates:"]
    for item in items:
        name = item["name"]
        (folder / "csr" / f"{name}.csr").write_bytes(csrs[name])
        outputs = ", ".join(f"{kind}: out/{name}.{kind}.pem" for kind in item["outputs"])
        lines += [f"  - name: {name}", f"    Csr: file://csr/{name}.csr", f"    SigningAlgorithm: {item['algorithm']}",
                  f"    Validity: {{Value: {item['days']}, Type: DAYS}}", f"    output: {{{outputs}}}"]
    path = folder / "m.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _certificate(path: Path) -> tuple[Any, ...]:
    """A certificate file's contents but what differs between two CAs and two moments."""
    text = path.read_text()
    certs = x509.load_pem_x509_certificates(text.encode())
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return tuple(
        (c.subject.rfc4514_string(), c.issuer.rfc4514_string(), c.not_valid_after_utc - c.not_valid_before_utc,
         c.signature_hash_algorithm.name if c.signature_hash_algorithm else None,
         c.public_key().public_bytes(*spki) if c.subject != c.issuer else b"",
         [(e.oid.dotted_string, e.critical) for e in c.extensions if e.oid != ExtensionOID.AUTHORITY_KEY_IDENTIFIER])
        for c in certs
    )


def _state(folder: Path, report: Path) -> tuple[Any, ...]:
    results = json.loads(report.read_text())["results"]
    summary = [(r["name"], r["status"], r["attempts"], r["error"] and r["error"]["code"],
                r["error"] and _TIME.sub("T", r["error"]["message"]), r["outputs"]) for r in results]
    events, damaged = read_events(folder / ".pca-batch" / "journal.jsonl")
    journal = sorted((e.event, e.name, getattr(e, "token", ""), e.ca_arn) for e in events
                     if not isinstance(e, OtherRecord))
    files = {str(p.relative_to(folder)): _certificate(p) for p in sorted((folder / "out").glob("*.pem"))}
    return summary, journal, damaged, files


def _run(cli: Cli, folder: Path, manifest: Path, concurrency: int, report: str) -> tuple[int, tuple[Any, ...]]:
    done = cli("apply", manifest, "--concurrency", str(concurrency), "--report", folder / report)
    assert done.code in (0, 1), done.err
    return done.code, _state(folder, folder / report)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=entries(), first=st.integers(0, 32), removed=st.sets(st.integers(0, 31), max_size=6))
def test_batched_apply_leaves_what_one_by_one_apply_leaves(
    tmp_path_factory: pytest.TempPathFactory, cli: Cli, items: list[dict[str, Any]], first: int, removed: set[int]
) -> None:
    """Two runs each way: the first on ``first`` entries only, then all of them after some files
    were removed (so entries come out issued, unchanged, recovered and failed)."""
    states = []
    csrs = _csrs(items)
    for concurrency in (1, 128):
        folder = tmp_path_factory.mktemp("apply")
        part = _run(cli, folder, _manifest(folder, items[:first], csrs), concurrency, "r1.json") if first else None
        for i in sorted(removed):
            for kind in ("certificate", "chain", "full_chain"):
                (folder / "out" / f"e{i:02d}.{kind}.pem").unlink(missing_ok=True)
        states.append((part, _run(cli, folder, _manifest(folder, items, csrs), concurrency, "r2.json")))
    assert states[0] == states[1]
