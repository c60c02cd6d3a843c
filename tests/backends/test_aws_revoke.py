"""`pca-batch revoke` with the aws backend, over real HTTP against moto's server through the fault proxy;
and the AWS CLI's `acm-pca revoke-certificate` request beside pca-batch's.

moto is made to behave as AWS does in two ways: its certificate ARNs end in the certificate's
serial (``serial_certificate_arns``; moto's end in a random UUID), and a second RevokeCertificate of
a certificate is answered RequestAlreadyProcessedException (the fault proxy does that). moto's own
record of what it revoked (``moto_revocations``) shows each serial exactly as it was sent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError
from cryptography import x509

from tests.support.common import Cli
from tests.support.fault_proxy import FaultProxy, Faults, planned_faults, revoke_key
from tests.support.local_ca import openssl_text
from tests.support.moto_server import (
    AwsEntry,
    apply_env,
    aws_test_env,
    moto_revocations,
    serial_certificate_arns,
    write_aws_manifest,
)

REVOKE = "RevokeCertificate"
ONLY_REVOKE = frozenset({REVOKE})


@pytest.fixture(scope="module", autouse=True)
def aws_shaped_arns(moto: str) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        serial_certificate_arns(mp)
        yield




# -- helpers ------------------------------------------------------------------


def issue(cli: Cli, folder: Path, endpoint: str, ca_arn: str, names: Iterable[str]) -> Path:
    """`pca-batch apply` of one entry per name at ``endpoint``; the manifest's path."""
    manifest, _ = write_aws_manifest(folder, endpoint, [AwsEntry(n, ca_arn) for n in names])
    result = cli("apply", manifest, "--max-rate", "0")
    assert result.code == 0, result.err
    return manifest


def journal(manifest: Path) -> list[dict[str, str]]:
    text = (manifest.parent / ".pca-batch" / "journal.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def revoked_lines(manifest: Path) -> list[dict[str, str]]:
    return [line for line in journal(manifest) if line["event"] == "revoked"]


def certificate(folder: Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((folder / "out" / f"{name}.pem").read_bytes())


def colon_hex(serial: int) -> str:
    """A serial as `openssl x509 -text` and the AWS CLI's example write it: its bytes, lowercase hex, colons."""
    return ":".join(f"{b:02x}" for b in serial.to_bytes((serial.bit_length() + 7) // 8, "big"))


def read_report(path: Path) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in json.loads(path.read_text())["results"]}


def request_as_sent(ca_arn: str, serial: int, reason: str) -> dict[str, Any]:
    """What the proxy should have seen of a RevokeCertificate: botocore's JSON 1.1 call."""
    return {
        "target": "ACMPrivateCA.RevokeCertificate",
        "content_type": "application/x-amz-json-1.1",
        "body": {"CertificateAuthorityArn": ca_arn, "CertificateSerial": colon_hex(serial), "RevocationReason": reason},
    }


def seeded(base: Faults, keys: list[str], wanted: set[str]) -> Faults:
    """``base`` with the first seed whose faults, for these certificates' RevokeCertificate calls,
    include every kind in ``wanted`` and leave at least one certificate without any. moto draws
    serials at random, so no fixed seed could promise that; the faults each key meets are then
    fixed (planned_faults says which) whatever the thread timing."""
    for seed in range(10_000):
        faults = replace(base, seed=seed)
        plans = [planned_faults(faults, REVOKE, key) for key in keys]
        if wanted <= {kind for plan in plans for kind in plan} and not all(plans):
            return faults
    raise AssertionError(f"no seed below 10000 gives {wanted}")


def answered_already_processed(plan: list[str]) -> int:
    """How many calls of a certificate the proxy answers RequestAlreadyProcessedException, when
    its calls meet ``plan`` and then one goes through: those that pass the proxy's own answers
    (throttling, 500) after the first that moto answered."""
    passed = [i for i, kind in enumerate([*plan, None]) if kind not in ("throttle", "server_error")]
    return len(passed) - 1


# -- through faults -----------------------------------------------------------


def test_revoke_through_throttling_and_dropped_answers_reaches_moto_once_per_certificate_as_asked(
    cli: Cli, moto: str, ca_east: str, tmp_path: Path
) -> None:
    names = [f"rv-{i}" for i in range(6)]
    targets = names[:4]
    with FaultProxy(moto) as proxy:
        manifest = issue(cli, tmp_path, proxy.endpoint, ca_east, names)
        serials = {n: certificate(tmp_path, n).serial_number for n in names}
        issued = {line["name"]: line["certificate_arn"] for line in journal(manifest) if line["event"] == "issued"}
        keys = {n: revoke_key(ca_east, colon_hex(serials[n])) for n in names}
        assert issued == keys  # the ARN ends in the serial, as on AWS
        faults = seeded(
            Faults(throttle=0.3, server_error=0.1, drop=0.35, max_faults_per_key=2, operations=ONLY_REVOKE),
            [keys[n] for n in targets],
            {"throttle", "drop"},
        )
        plans = {n: planned_faults(faults, REVOKE, keys[n]) for n in targets}
        proxy.faults = faults
        proxy.reset_stats()

        result = cli("revoke", manifest, *targets, "--reason", "KEY_COMPROMISE", "--report", tmp_path / "r.json")
        stats = proxy.snapshot()
        journal_after = (tmp_path / ".pca-batch" / "journal.jsonl").read_bytes()
        again = cli("revoke", manifest, *targets, "--reason", "KEY_COMPROMISE", "--report", tmp_path / "again.json")
        stats_again = proxy.snapshot()

    assert result.code == 0, result.out + result.err
    report = read_report(tmp_path / "r.json")
    assert {n: (r["status"], r["serial"], r["revocation_reason"], r["error"]) for n, r in report.items()} == {
        n: ("revoked", format(serials[n], "032x"), "KEY_COMPROMISE", None) for n in targets
    }
    assert {n: r["attempts"] for n, r in report.items()} == {n: len(plans[n]) + 1 for n in targets}
    for name in targets:
        assert re.search(rf"^revoked\s+{name}\s.*reason KEY_COMPROMISE", result.out, re.M), result.out

    # moto revoked exactly the targets, each with its serial as colon hex and the reason asked ...
    revoked = moto_revocations(ca_east)
    assert {n: revoked[colon_hex(s)]["revocation_reason"] for n, s in serials.items() if colon_hex(s) in revoked} == (
        dict.fromkeys(targets, "KEY_COMPROMISE")
    )
    # ... each reached it once, however often pca-batch asked: a retry after a lost answer was
    # answered RequestAlreadyProcessedException by the proxy, and pca-batch took that as done.
    wanted = {keys[n]: request_as_sent(ca_east, serials[n], "KEY_COMPROMISE") for n in targets}
    assert stats["revoke_forwarded"] == dict.fromkeys(wanted, 1)
    assert stats["revoke_last_forwarded"] == wanted
    assert stats["revoke_calls"] == {keys[n]: len(plans[n]) + 1 for n in targets}
    expected_already = {keys[n]: answered_already_processed(plans[n]) for n in targets}
    assert stats["revoke_already_processed"] == {k: v for k, v in expected_already.items() if v}
    assert any(expected_already.values())
    assert {"throttle", "drop"} <= set(stats["injected"])
    assert sum(stats["injected"].values()) == sum(len(p) for p in plans.values())

    # one durable `revoked` line per certificate
    assert sorted((r["name"], r["certificate_arn"], r["ca_arn"], r["reason"]) for r in revoked_lines(manifest)) == [
        (n, keys[n], ca_east, "KEY_COMPROMISE") for n in targets
    ]

    # a second run: already revoked, no call at all, no new journal line
    assert again.code == 0, again.out + again.err
    for name in targets:
        assert re.search(rf"^revoked\s+{name}\s.*already revoked", again.out, re.M), again.out
    assert {n: (r["status"], r["serial"]) for n, r in read_report(tmp_path / "again.json").items()} == {
        n: ("revoked", format(serials[n], "032x")) for n in targets
    }
    assert stats_again == stats
    assert (tmp_path / ".pca-batch" / "journal.jsonl").read_bytes() == journal_after


@dataclass(frozen=True)
class Outlasting:
    """Faults on every RevokeCertificate call, the error they end in, and whether the call reached moto."""

    faults: Faults
    code: str
    reached_moto: bool
    # throttles spend no attempt: the give-up path is the throttle budget's, here none at all
    options: tuple[str, ...] = ()
    calls: int = 2


EVERY_CALL = Faults(slow_seconds=0.8, max_faults_per_key=None, operations=ONLY_REVOKE)


@pytest.mark.usefixtures("quick_timeouts")
@pytest.mark.parametrize(
    "case",
    [
        Outlasting(replace(EVERY_CALL, throttle=1.0), "ThrottlingException", reached_moto=False,
                   options=("--throttle-timeout", "0"), calls=1),
        Outlasting(replace(EVERY_CALL, server_error=1.0), "InternalFailure", reached_moto=False),
        Outlasting(replace(EVERY_CALL, drop=1.0), "ConnectionError", reached_moto=True),  # answer lost
        Outlasting(replace(EVERY_CALL, slow=1.0), "ReadTimeout", reached_moto=True),  # answer too late
    ],
    ids=["throttle", "server_error", "drop", "slow"],
)
def test_faults_outlasting_max_attempts_fail_the_name_and_a_later_run_revokes_it_once(
    cli: Cli, moto: str, ca_east: str, tmp_path: Path, case: Outlasting
) -> None:
    with FaultProxy(moto) as proxy:
        manifest = issue(cli, tmp_path, proxy.endpoint, ca_east, ["doomed", "spared"])
        serial = certificate(tmp_path, "doomed").serial_number
        key = revoke_key(ca_east, colon_hex(serial))
        proxy.faults = case.faults
        proxy.reset_stats()
        failed = cli("revoke", manifest, "doomed", "--reason", "SUPERSEDED", "--max-attempts", "2",
                     *case.options, "--report", tmp_path / "failed.json")  # fmt: skip
        stats = proxy.snapshot()
        in_moto = moto_revocations(ca_east)
        journal_failed = revoked_lines(manifest)
        proxy.faults = Faults()
        later = cli("revoke", manifest, "doomed", "--reason", "SUPERSEDED", "--report", tmp_path / "later.json")
        stats_later = proxy.snapshot()

    assert failed.code == 1, failed.out + failed.err
    row = read_report(tmp_path / "failed.json")["doomed"]
    assert (row["status"], row["error"]["code"], row["attempts"]) == ("failed", case.code, case.calls)
    assert "Traceback" not in failed.out + failed.err
    assert journal_failed == []
    assert stats["revoke_calls"] == {key: case.calls}
    assert stats["revoke_forwarded"] == ({key: 1} if case.reached_moto else {})
    assert (colon_hex(serial) in in_moto) is case.reached_moto  # a lost answer: the revocation did happen

    assert later.code == 0, later.out + later.err
    row = read_report(tmp_path / "later.json")["doomed"]
    assert (row["status"], row["revocation_reason"], row["error"]) == ("revoked", "SUPERSEDED", None)
    assert stats_later["revoke_forwarded"] == {key: 1}  # once in all, in whichever run reached moto
    assert stats_later["revoke_already_processed"].get(key, 0) == (case.calls if case.reached_moto else 0)
    assert moto_revocations(ca_east)[colon_hex(serial)]["revocation_reason"] == "SUPERSEDED"
    assert [(r["name"], r["reason"]) for r in revoked_lines(manifest)] == [("doomed", "SUPERSEDED")]
    spared = certificate(tmp_path, "spared").serial_number
    assert colon_hex(spared) not in moto_revocations(ca_east)


def test_throttles_spend_no_attempt_and_the_learned_rate_is_reported(
    cli: Cli, moto: str, ca_east: str, tmp_path: Path
) -> None:
    with FaultProxy(moto) as proxy:
        manifest = issue(cli, tmp_path, proxy.endpoint, ca_east, ["doomed"])
        serial = certificate(tmp_path, "doomed").serial_number
        key = revoke_key(ca_east, colon_hex(serial))
        proxy.faults = Faults(throttle=1.0, max_faults_per_key=3, operations=ONLY_REVOKE)
        proxy.reset_stats()
        done = cli("revoke", manifest, "doomed", "--max-attempts", "1", "--report", tmp_path / "r.json")
        stats = proxy.snapshot()

    assert done.code == 0, done.out + done.err
    assert stats["revoke_calls"] == {key: 4} and stats["revoke_forwarded"] == {key: 1}  # 3 throttles, then done
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["results"][0]["status"] == "revoked" and data["results"][0]["attempts"] == 4
    (rate,) = data["summary"]["rates"]
    assert (rate["operation"], rate["region"], rate["calls"], rate["throttles"]) == (
        "RevokeCertificate", "us-east-1", 4, 3)
    assert re.search(r"RevokeCertificate: settled at \d+\.\d/s after 3 throttle\(s\) in 4 calls", done.out), done.out


# -- the AWS CLI's request shape ----------------------------------------------


def aws_command() -> list[str]:
    """The `aws` program of the interpreter running the tests (awscli, a test dependency)."""
    program = shutil.which("aws", path=str(Path(sys.executable).parent))
    return [program] if program else [sys.executable, "-m", "awscli"]


def serial_from_openssl(pem: str) -> str:
    """The serial as the AWS docs say to copy it: from `openssl x509 -text`."""
    match = re.search(r"Serial Number:\s*\n\s*([0-9a-f:]+)\s*\n", openssl_text(pem))
    assert match is not None
    return match.group(1)


def test_the_aws_cli_and_pca_batch_send_the_same_revoke_certificate_request(
    cli: Cli, moto: str, ca_east: str, tmp_path: Path
) -> None:
    with FaultProxy(moto) as proxy:
        manifest = issue(cli, tmp_path, proxy.endpoint, ca_east, ["shape"])
        pem = (tmp_path / "out" / "shape.pem").read_text()
        serial = serial_from_openssl(pem)
        assert serial == colon_hex(certificate(tmp_path, "shape").serial_number)
        key = revoke_key(ca_east, serial)
        env = apply_env({**aws_test_env(tmp_path / "aws-cli"), "AWS_DEFAULT_REGION": "us-east-1",
                         "AWS_MAX_ATTEMPTS": "1"})  # fmt: skip
        by_aws_cli = subprocess.run(
            [*aws_command(), "acm-pca", "revoke-certificate", "--certificate-authority-arn", ca_east,
             "--certificate-serial", serial, "--revocation-reason", "KEY_COMPROMISE",
             "--endpoint-url", proxy.endpoint],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        after_aws_cli = proxy.snapshot()
        by_pca_batch = cli("revoke", manifest, "shape", "--reason", "KEY_COMPROMISE", "--report", tmp_path / "r.json")
        after_pca_batch = proxy.snapshot()

    assert by_aws_cli.returncode == 0, by_aws_cli.stderr
    aws_cli_sent = after_aws_cli["revoke_last_received"][key]
    assert aws_cli_sent == request_as_sent(ca_east, certificate(tmp_path, "shape").serial_number, "KEY_COMPROMISE")
    assert after_aws_cli["revoke_forwarded"] == {key: 1}
    assert moto_revocations(ca_east)[serial]["revocation_reason"] == "KEY_COMPROMISE"

    # pca-batch asks for the same certificate in the very same words; the CA says it is done
    # already (the AWS CLI revoked it), which pca-batch records as revoked.
    assert by_pca_batch.code == 0, by_pca_batch.out + by_pca_batch.err
    assert after_pca_batch["revoke_calls"] == {key: 2}
    assert after_pca_batch["revoke_last_received"][key] == aws_cli_sent
    assert after_pca_batch["revoke_forwarded"] == {key: 1}
    assert after_pca_batch["revoke_already_processed"] == {key: 1}
    assert read_report(tmp_path / "r.json")["shape"]["status"] == "revoked"
    assert [(r["name"], r["reason"]) for r in revoked_lines(manifest)] == [("shape", "KEY_COMPROMISE")]


# -- the proxy itself: AWS's answer to a second revoke, and faults known in advance ---------


@pytest.fixture
def client_via(aws_env: Path) -> Iterator[Any]:
    """Plain boto3 clients (dummy credentials, botocore's own retries off) for an endpoint; closed afterwards."""
    clients: list[Any] = []

    def make(endpoint: str) -> Any:
        config = Config(retries={"total_max_attempts": 1}, read_timeout=5, connect_timeout=5)
        client = boto3.session.Session().client(
            "acm-pca", region_name="us-east-1", endpoint_url=endpoint, config=config
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_the_proxy_answers_a_second_revoke_of_a_certificate_already_processed_without_reaching_moto(
    moto: str, ca_east: str, client_via: Any
) -> None:
    serial = "7a:0b:3c:4d:5e:6f:70:81:92:a3:b4:c5:d6:e7:f8:09"
    key = revoke_key(ca_east, serial)
    assert key == f"{ca_east}/certificate/7a0b3c4d5e6f708192a3b4c5d6e7f809"
    with FaultProxy(moto) as proxy:
        client = client_via(proxy.endpoint)
        client.revoke_certificate(
            CertificateAuthorityArn=ca_east, CertificateSerial=serial, RevocationReason="SUPERSEDED"
        )
        with pytest.raises(ClientError) as info:  # the same certificate, its serial written otherwise
            client.revoke_certificate(
                CertificateAuthorityArn=ca_east, CertificateSerial=serial.replace(":", "").upper(),
                RevocationReason="KEY_COMPROMISE",
            )  # fmt: skip
        stats = proxy.snapshot()

    answer = info.value.response
    assert answer["Error"]["Code"] == "RequestAlreadyProcessedException"
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert answer["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/x-amz-json-1.1"
    assert moto_revocations(ca_east)[serial]["revocation_reason"] == "SUPERSEDED"  # moto saw the first only
    assert (stats["calls"], stats["forwarded"]) == ({REVOKE: 2}, {REVOKE: 1})
    assert stats["revoke_calls"] == {key: 2}
    assert stats["revoke_forwarded"] == {key: 1}
    assert stats["revoke_already_processed"] == {key: 1}
    assert stats["revoke_last_forwarded"][key]["body"]["CertificateSerial"] == serial
    assert stats["revoke_last_received"][key]["body"]["CertificateSerial"] == "7A0B3C4D5E6F708192A3B4C5D6E7F809"
    assert stats["issue_calls"] == {} and stats["deduplicated"] == 0


def test_the_faults_revoke_calls_meet_are_the_planned_ones(moto: str, ca_east: str, client_via: Any) -> None:
    serials = [f"0a:0b:0c:{i:02x}" for i in range(8)]
    # the CA's ARN (drawn by moto) is part of each call's key: a fixed seed could plan no server_error
    faults = seeded(Faults(throttle=0.3, server_error=0.2, drop=0.3, max_faults_per_key=3, operations=ONLY_REVOKE),
                    [revoke_key(ca_east, s) for s in serials], {"throttle", "server_error", "drop"})
    met: dict[str, list[str]] = {}
    with FaultProxy(moto, faults) as proxy:
        client = client_via(proxy.endpoint)
        for serial in serials:
            met[serial] = []
            while True:
                try:
                    client.revoke_certificate(
                        CertificateAuthorityArn=ca_east, CertificateSerial=serial, RevocationReason="UNSPECIFIED"
                    )
                    break
                except ClientError as exc:
                    code = exc.response["Error"]["Code"]
                    if code == "RequestAlreadyProcessedException":
                        break
                    met[serial].append({"ThrottlingException": "throttle", "InternalFailure": "server_error"}[code])
                except ConnectionClosedError:
                    met[serial].append("drop")
        stats = proxy.snapshot()

    assert met == {s: planned_faults(faults, REVOKE, revoke_key(ca_east, s)) for s in serials}
    assert {"throttle", "server_error", "drop"} <= {kind for kinds in met.values() for kind in kinds}
    assert stats["revoke_forwarded"] == {revoke_key(ca_east, s): 1 for s in serials}
    assert set(moto_revocations(ca_east)) >= set(serials)
