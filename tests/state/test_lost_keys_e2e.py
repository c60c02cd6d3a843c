"""A key lost with its runner, end to end over real HTTP (moto's S3 and acm-pca, the counting
fault proxy, which answers a token as AWS does): the first run makes a key, records it, gets its
certificate issued and is SIGKILLed before it records the ARN; a run in a fresh folder on the same
state (s3, or a file both runners share) asks the CA again with the recorded CSR and token, records
that certificate (its key lost), makes a new key and certificate, and revokes the lost key's one."""

from __future__ import annotations

import base64
import json
import signal
from pathlib import Path

import pytest
from cryptography import x509

from pca_batch.model import StateConfig
from pca_batch.run.journal import JournalRecord, KeyRecord, RevocationRecord
from pca_batch.state.base import State
from pca_batch.state.filestate import FileState
from pca_batch.state.s3state import S3State
from tests.state import test_s3_state_e2e as e2e
from tests.state.test_s3_state_e2e import BUCKET, Rig, finish, issued_at_ca, pca_batch, report, wait_for
from tests.support.fault_proxy import Faults
from tests.support.moto_server import create_active_ca, moto_revocations

pytestmark = pytest.mark.usefixtures("aws_env")
s3, fresh_state, s3_env, proxy, rig = e2e.s3, e2e.fresh_state, e2e.s3_env, e2e.proxy, e2e.rig  # the same rig

MANIFEST = """\
version: 1
backend: {{type: aws, endpoint_url: '{endpoint}', region: us-east-1}}
certificates:
  - name: web
    CertificateAuthorityArn: {ca}
    SigningAlgorithm: SHA256WITHRSA
    Validity: {{Value: 7, Type: DAYS}}
    key: {{algorithm: RSA_2048, subject: {{CommonName: web.example}}, dns_names: [web.example]}}
    revoke_replaced: SUPERSEDED
    output: {{certificate: out/web.pem, private_key: out/web.key}}
"""


def _state(kind: str, rig: Rig, shared: Path) -> tuple[list[str], State]:
    if kind == "s3":
        return ["--state", rig.state], S3State(StateConfig(type="s3", bucket=BUCKET, key="ci/certs.state"))
    return ["--state", f"file://{shared}"], FileState(shared)


def _stored(kind: str, rig: Rig, shared: Path) -> bytes:
    """Every byte the state holds: each object under the state's key, or the journal file and its archive."""
    if kind == "file":
        return b"".join(p.read_bytes() for p in shared.parent.rglob("*") if p.is_file())
    names = [o["Key"] for o in rig.s3.list_objects_v2(Bucket=BUCKET, Prefix="ci/").get("Contents", ())]
    return b"".join(rig.s3.get_object(Bucket=BUCKET, Key=n)["Body"].read() for n in names)


def _key_body(pem: bytes) -> list[bytes]:
    """Pieces of a private key that would show wherever its bytes were copied (PEM lines, raw DER)."""
    lines = [line for line in pem.splitlines() if line and not line.startswith(b"-----")]
    return lines[1:4] + [base64.b64decode(b"".join(lines))[40:80]]


@pytest.mark.parametrize("kind", ["s3", "file"])
def test_a_key_lost_with_its_runner_its_certificate_recorded_and_revoked(
    tmp_path: Path, rig: Rig, kind: str
) -> None:
    ca = create_active_ca(rig.moto, "us-east-1", f"lost key {kind}")
    shared = tmp_path / "shared" / "journal.jsonl"
    args, state = _state(kind, rig, shared)
    one, two = tmp_path / "one", tmp_path / "two"
    for folder in (one, two):
        folder.mkdir()
        (folder / "manifest.yaml").write_text(MANIFEST.format(endpoint=rig.proxy.endpoint, ca=ca))

    # the CA issues, then the proxy holds the answer: the run is killed with the certificate issued
    rig.proxy.faults = Faults(slow=1.0, slow_seconds=20, operations=frozenset({"IssueCertificate"}),
                              max_faults_per_key=1)
    first = pca_batch(rig.env, "apply", one / "manifest.yaml", *args, cwd=one)
    wait_for(lambda: sum(rig.proxy.snapshot()["issue_forwarded"].values()) >= 1 or first.poll() is not None,
             "the first run's IssueCertificate to reach the CA")
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL
    rig.proxy.faults = Faults()
    for held in state.locks():  # the killed run's s3 lock, as Terraform's (a file state's ended with it)
        state.unlock(held.id)
    lost_pem = (one / "out" / "web.key.pending").read_bytes()  # on the dead runner only
    [made] = [e for e in state.read().events if isinstance(e, KeyRecord)]
    assert not [e for e in state.read().events if isinstance(e, JournalRecord)]
    assert issued_at_ca(ca)["CN=web.example"] == 1

    code, text = finish(pca_batch(rig.env, "state", "list", two / "manifest.yaml", *args, "--json", cwd=two))
    assert code == 0, text
    assert [(r["entry"], r["status"], r["token"]) for r in json.loads(text)["certificates"]] == \
        [("web", "pending key", made.token)]
    code, text = finish(pca_batch(rig.env, "apply", two / "manifest.yaml", *args, "--plan", cwd=two))
    assert "the key made by an earlier run on another runner is not here: a new key and certificate" in text, text
    assert f"the certificate issued for the lost key (token {made.token}) is asked for again" in text

    code, text = finish(pca_batch(rig.env, "apply", two / "manifest.yaml", *args, "--report", tmp_path / "r.json",
                                  cwd=two))
    assert code == 0, text
    row = report(tmp_path / "r.json")["web"]
    events = state.read().events
    lost, new = [e for e in events if isinstance(e, JournalRecord)]
    assert (lost.token, lost.issued.key_lost) == (made.token, True)  # the first certificate, on record
    lost_serial = lost.certificate_arn.rsplit("/", 1)[1]
    assert row["status"] == "issued" and row["certificate_arn"] == new.certificate_arn
    assert f"the certificate issued for the lost key (serial {lost_serial}) is recorded as replaced" in row["reason"]
    assert f"(serial {lost_serial}) is recorded as replaced" in text
    assert new.issued.replaces == lost.certificate_arn and new.token != made.token
    assert [(r.certificate_arn, r.reason) for r in events if isinstance(r, RevocationRecord)] == \
        [(lost.certificate_arn, "SUPERSEDED")]
    assert int(lost_serial, 16) in {int(s.replace(":", ""), 16) for s in moto_revocations(ca)}

    # the token was answered from the CA's record: one certificate for the lost key, one for the new one
    assert rig.proxy.snapshot()["issue_forwarded"][made.token] == 1
    assert issued_at_ca(ca)["CN=web.example"] == 2
    cert = x509.load_pem_x509_certificate((two / "out" / "web.pem").read_bytes())
    assert f"{cert.serial_number:032x}" == new.certificate_arn.rsplit("/", 1)[1]
    assert (two / "out" / "web.key").stat().st_mode & 0o777 == 0o600 and not (two / "out" / "web.key.pending").exists()

    stored = _stored(kind, rig, shared)
    assert b"PRIVATE KEY" not in stored
    for piece in _key_body(lost_pem) + _key_body((two / "out" / "web.key").read_bytes()):
        assert piece not in stored
    listed = json.loads(finish(pca_batch(rig.env, "state", "list", two / "manifest.yaml", *args, "--json",
                                         cwd=two))[1])["certificates"]
    assert [(r["entry"], r["status"]) for r in listed] == [("web", "current")]
    state.close()
