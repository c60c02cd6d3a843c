"""`state import`, `apply --adopt` and `--max-issue` with the aws backend, over real HTTP against
moto's server through the fault proxy, which counts every call.

The certificates to take under management are issued the way people issue them without
pca-batch: the AWS CLI (`aws acm-pca issue-certificate`, then `get-certificate` into a file, in a
shell loop). moto is made to answer as AWS does where it matters here: certificate ARNs end in
the serial (``serial_certificate_arns``), an unknown certificate is ResourceNotFoundException
(``aws_not_found``), a certificate has the Validity and SigningAlgorithm asked for
(``honour_validity``: adoption checks both) and a CA has the usage mode it was created with
(``set_usage_mode``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.support.common import Cli
from tests.support.fault_proxy import FaultProxy
from tests.support.local_ca import openssl_verify
from tests.support.moto_server import (
    AwsEntry,
    aws_not_found,
    create_active_ca,
    honour_validity,
    serial_certificate_arns,
    set_usage_mode,
    write_aws_manifest,
)

AWS = [sys.executable, "-m", "awscli"]
SIGNING = "SHA256WITHRSA"
DAYS = 30


@pytest.fixture(scope="module", autouse=True)
def aws_shaped(moto: str) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        serial_certificate_arns(mp)
        aws_not_found(mp)
        honour_validity(mp)
        yield


@pytest.fixture(scope="module")
def cas(moto: str) -> tuple[str, str]:
    """Two general-purpose CAs (30-day certificates pass the preflight)."""
    arns = (create_active_ca(moto, "us-east-1", "state import CA one"),
            create_active_ca(moto, "us-east-1", "state import CA two"))
    for arn in arns:
        set_usage_mode(arn, "GENERAL_PURPOSE")
    return arns


def entry(name: str, ca: str) -> AwsEntry:
    return AwsEntry(name, ca, signing_algorithm=SIGNING, validity_days=DAYS)


def aws_cli(folder: Path, endpoint: str, *args: str) -> str:
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    done = subprocess.run([*AWS, "acm-pca", *args, "--endpoint-url", endpoint, "--output", "text"],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def issue_with_cli(folder: Path, endpoint: str, ca: str, csr: Path) -> str:
    return aws_cli(folder, endpoint, "issue-certificate", "--certificate-authority-arn", ca,
                   "--csr", f"fileb://{csr}", "--signing-algorithm", SIGNING,
                   "--validity", f"Value={DAYS},Type=DAYS", "--query", "CertificateArn")


def shell_loop(folder: Path, endpoint: str, jobs: list[tuple[str, str, str]]) -> None:
    """A shell loop of `aws acm-pca issue-certificate` + `get-certificate > out/NAME.pem`,
    one (name, CA ARN, CSR file) a line."""
    (folder / "out").mkdir(exist_ok=True)
    script = folder / "issue.sh"
    script.write_text(
        'set -eu\n'
        f'aws() {{ {" ".join(AWS)} "$@" --endpoint-url {endpoint} --output text; }}\n'
        'while read -r name ca csr; do\n'
        f'  arn=$(aws acm-pca issue-certificate --certificate-authority-arn "$ca" --csr "fileb://$csr" '
        f'--signing-algorithm {SIGNING} --validity Value={DAYS},Type=DAYS --query CertificateArn)\n'
        '  aws acm-pca get-certificate --certificate-authority-arn "$ca" --certificate-arn "$arn" '
        '--query Certificate > "out/$name.pem"\n'
        'done < jobs.txt\n'
    )
    (folder / "jobs.txt").write_text("".join(f"{n} {ca} {csr}\n" for n, ca, csr in jobs))
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    done = subprocess.run(["bash", str(script)], cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def journal(folder: Path) -> list[dict[str, Any]]:
    path = folder / ".pca-batch" / "journal.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    return [line for line in lines if line["event"] != "key"]  # a new key's record, before its certificate


def calls(proxy: FaultProxy) -> dict[str, int]:
    return dict(proxy.snapshot()["calls"])


def flat(text: str) -> str:
    return " ".join(text.split())


def test_state_import_of_a_certificate_the_aws_cli_issued(cli: Cli, moto: str, cas: tuple[str, str],
                                                          tmp_path: Path) -> None:
    ca, other_ca = cas
    with FaultProxy(moto) as proxy:
        manifest, _ = write_aws_manifest(tmp_path, proxy.endpoint, [entry("web", ca), entry("api", ca)])
        arn = issue_with_cli(tmp_path, proxy.endpoint, ca, tmp_path / "csr" / "web.csr")
        assert arn.startswith(f"{ca}/certificate/")
        proxy.reset_stats()

        done = cli("state", "import", manifest, "web", arn)
        assert done.code == 0, done.err
        assert calls(proxy) == {"GetCertificate": 1}
        assert "the next apply: unchanged" in flat(done.out)
        [line] = journal(tmp_path)
        assert (line["name"], line["certificate_arn"], line["manifest"]) == ("web", arn, "manifest.yaml")
        leaf = (tmp_path / "out" / "web.pem").read_text()
        assert x509.load_pem_x509_certificate(leaf.encode()).serial_number == int(arn.rsplit("/", 1)[1], 16)
        verified = openssl_verify(tmp_path, leaf, (tmp_path / "out" / "web.chain.pem").read_text())
        assert verified.returncode == 0, verified.stderr

        # the next apply: web makes no call at all (api is issued: one IssueCertificate, one GetCertificate)
        proxy.reset_stats()
        applied = cli("apply", manifest, "--max-rate", "0")
        assert applied.code == 0, applied.err
        assert sum(proxy.snapshot()["issue_forwarded"].values()) == 1
        assert calls(proxy).get("GetCertificate") == 1
        assert any(line.startswith("unchanged") and " web " in line for line in applied.out.splitlines())
        proxy.reset_stats()
        assert cli("apply", manifest).code == 0
        assert calls(proxy) == {}

        # bad inputs: a message, exit 2, nothing recorded, no traceback
        wrong_key = issue_with_cli(tmp_path, proxy.endpoint, ca, tmp_path / "csr" / "api.csr")
        of_other_ca = issue_with_cli(tmp_path, proxy.endpoint, other_ca, tmp_path / "csr" / "web.csr")
        missing = f"{ca}/certificate/{'ab' * 16}"
        cases = {
            ("nope", arn): "no entry named 'nope' in",
            ("web", "arn:aws:acm-pca:us-east-1:123456789012:certificate/xyz"): "is not a certificate ARN",
            ("web", of_other_ca): f"the certificate is of the CA {other_ca}, entry web is issued by {ca}",
            ("web", missing): f"the CA {ca} has no certificate {missing} (GetCertificate answered "
                              "ResourceNotFoundException)",
            ("web", wrong_key): "the certificate's public key (SHA-256",
        }
        lines_before = len(journal(tmp_path))
        for (name, given), expected in cases.items():
            result = cli("state", "import", manifest, name, given)
            assert result.code == 2, (name, given, result.err)
            assert expected in flat(result.err)
            assert "Traceback" not in result.err
        assert "the certificate's subject CN=api.example differs from the entry's CN=web.example" in flat(
            cli("state", "import", manifest, "web", wrong_key).err)
        assert len(journal(tmp_path)) == lines_before


def test_adopt_of_files_a_shell_loop_wrote(cli: Cli, moto: str, cas: tuple[str, str], tmp_path: Path) -> None:
    ca, other_ca = cas
    names = ["a", "b", "c", "other-key", "other-ca"]
    with FaultProxy(moto) as proxy:
        manifest, _ = write_aws_manifest(tmp_path, proxy.endpoint, [entry(n, ca) for n in names])
        spare, _ = write_aws_manifest(tmp_path / "spare", proxy.endpoint, [entry("spare", ca)])
        shell_loop(tmp_path, proxy.endpoint, [
            *((n, ca, f"csr/{n}.csr") for n in ("a", "b", "c")),
            ("other-key", ca, str(spare.parent / "csr" / "spare.csr")),  # a file for another key
            ("other-ca", other_ca, "csr/other-ca.csr"),  # the entry's key, another CA
        ])
        loop_files = {n: (tmp_path / "out" / f"{n}.pem").read_bytes() for n in names}
        proxy.reset_stats()

        plan = cli("apply", manifest, "--plan", "--adopt")
        assert plan.code == 0, plan.err
        marks = {re.search(r" (\S+) ca=", line).group(1): line.split(" (")[0]  # type: ignore[union-attr]
                 for line in plan.out.splitlines()[:5]}
        assert marks == {"a": "= adopt", "b": "= adopt", "c": "= adopt", "other-key": "~ renew",
                         "other-ca": "~ renew"}
        text = flat(plan.out)
        assert "3 to adopt (recorded, not renewed); to issue: 2 from" in text
        assert "the certificate's public key (SHA-256" in text
        assert f"the certificate's issuer CN=state import CA two,O=pca-batch tests is not the entry's CA {ca}" in text
        assert calls(proxy).get("GetCertificateAuthorityCertificate") == 1  # once per CA
        assert "IssueCertificate" not in calls(proxy)
        assert journal(tmp_path) == []

        proxy.reset_stats()
        applied = cli("apply", manifest, "--adopt", "--max-rate", "0")
        assert applied.code == 0, applied.err
        assert calls(proxy).get("GetCertificateAuthorityCertificate") == 1
        assert sum(proxy.snapshot()["issue_forwarded"].values()) == 2  # other-key and other-ca only
        recorded = {r["name"]: r["certificate_arn"] for r in journal(tmp_path)}
        assert set(recorded) == set(names)
        for name in ("a", "b", "c"):
            leaf = (tmp_path / "out" / f"{name}.pem").read_bytes()
            assert leaf == loop_files[name]
            serial = x509.load_pem_x509_certificate(leaf).serial_number
            assert recorded[name] == f"{ca}/certificate/{serial:032x}"
            verified = openssl_verify(tmp_path, leaf.decode(), (tmp_path / "out" / f"{name}.chain.pem").read_text())
            assert verified.returncode == 0, verified.stderr
        for name in ("other-key", "other-ca"):
            renewed = x509.load_pem_x509_certificate((tmp_path / "out" / f"{name}.pem").read_bytes())
            assert (tmp_path / "out" / f"{name}.pem").read_bytes() != loop_files[name]
            assert renewed.issuer.rfc4514_string() == "CN=state import CA one,O=pca-batch tests"

        proxy.reset_stats()
        again = cli("apply", manifest)
        assert again.code == 0 and "5 entries, 5 unchanged" in again.out
        assert calls(proxy) == {}  # no IssueCertificate, no GetCertificate: nothing at all


def test_max_issue_5_on_10_new_entries_makes_no_issue_call(cli: Cli, moto: str, cas: tuple[str, str],
                                                           tmp_path: Path) -> None:
    ca, _ = cas
    with FaultProxy(moto) as proxy:
        manifest, _ = write_aws_manifest(tmp_path, proxy.endpoint, [entry(f"n{i}", ca) for i in range(10)])
        proxy.reset_stats()
        plan = cli("apply", manifest, "--plan", "--max-issue", "5")
        assert plan.code == 1
        assert f"to issue: 10 from {ca} (general purpose)" in flat(plan.out)
        result = cli("apply", manifest, "--max-issue", "5")
        assert result.code == 1
        assert "refusing to run: 10 certificates would be issued, more than --max-issue 5 allows: 10 new " \
               "certificates (never issued)" in flat(result.err)
        assert "IssueCertificate" not in calls(proxy) and "GetCertificate" not in calls(proxy)
        assert journal(tmp_path) == [] and not (tmp_path / "out").exists()
