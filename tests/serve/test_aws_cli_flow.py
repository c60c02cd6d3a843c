"""The AWS CLI against a real `pca-batch serve` process, walking the AWS Private CA user guide:
a root CA (CSR, its own certificate, import), a subordinate CA signed by it, an end-entity
certificate, revocation, an audit report, the CRL over HTTP, disable, delete and restore. Every
certificate is checked with openssl; the revoked one fails ``-crl_check``."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.support.moto_server import apply_env, aws_test_env
from tests.support.serve_server import ServeProcess, serve_process

AWS = [sys.executable, "-m", "awscli"]  # the AWS CLI of the test environment (bin/aws runs the same)
CLI_ERROR = 255  # the AWS CLI (v1)'s exit status when the service answered an error
ROOT_CONFIG = {
    "KeyAlgorithm": "RSA_2048",
    "SigningAlgorithm": "SHA256WITHRSA",
    "Subject": {"Country": "US", "Organization": "Example Corp", "OrganizationalUnit": "Sales", "State": "WA",
                "Locality": "Seattle", "CommonName": "www.example.com"},
}  # fmt: skip
SUB_CONFIG = {
    "KeyAlgorithm": "EC_prime256v1",
    "SigningAlgorithm": "SHA256WITHECDSA",
    "Subject": {"Organization": "Example Corp", "CommonName": "Example Issuing CA"},
}
REVOKE_CONFIG = {"CrlConfiguration": {"Enabled": True, "ExpirationInDays": 7, "S3BucketName": "example-crl"}}


class AwsCli:
    def __init__(self, url: str, folder: Path) -> None:
        self.url = url
        self.folder = folder
        self.env = apply_env({**aws_test_env(folder / "aws"), "AWS_DEFAULT_REGION": "us-east-1"})

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*AWS, "acm-pca", *args, "--endpoint-url", self.url],
            env=self.env, cwd=self.folder, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    def json(self, *args: str) -> Any:
        done = self.run(*args, "--output", "json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    def text(self, *args: str) -> str:
        done = self.run(*args, "--output", "text")
        assert done.returncode == 0, done.stderr
        return done.stdout

    def ok(self, *args: str) -> None:
        done = self.run(*args)
        assert done.returncode == 0, done.stderr
        assert done.stdout == ""


def openssl(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    folder = tmp_path_factory.mktemp("serve")
    with serve_process(folder / "store", "--log", str(folder / "access.log")) as running:
        yield running
        code, out, err = running.stop()
        assert code == 0, err
        assert out == "pca-batch serve: stopped\n"  # nothing printed per request


def write_json(path: Path, value: Any) -> str:
    path.write_text(json.dumps(value))
    return f"file://{path.name}"


def issue_and_get(aws: AwsCli, ca: str, csr: str, *options: str) -> dict[str, str]:
    arn = aws.json("issue-certificate", "--certificate-authority-arn", ca, "--csr", f"fileb://{csr}", *options)
    certificate_arn = arn["CertificateArn"]
    aws.ok("wait", "certificate-issued", "--certificate-authority-arn", ca, "--certificate-arn", certificate_arn)
    got = aws.json("get-certificate", "--certificate-authority-arn", ca, "--certificate-arn", certificate_arn)
    return {"Arn": certificate_arn, **got}


def create_and_activate_root(aws: AwsCli) -> str:
    folder = aws.folder
    config = write_json(folder / "ca_config.json", ROOT_CONFIG)
    create = ("create-certificate-authority", "--certificate-authority-configuration", config,
              "--certificate-authority-type", "ROOT", "--idempotency-token", "01234567",
              "--tags", "Key=Name,Value=MyPCA")  # fmt: skip
    root = aws.json(*create)["CertificateAuthorityArn"]
    aws.ok("wait", "certificate-authority-csr-created", "--certificate-authority-arn", root)
    (folder / "ca.csr").write_text(aws.text("get-certificate-authority-csr", "--certificate-authority-arn", root))
    assert "verify OK" in openssl("req", "-in", "ca.csr", "-noout", "-verify", cwd=folder).stderr
    got = issue_and_get(aws, root, "ca.csr", "--signing-algorithm", "SHA256WITHRSA", "--template-arn",
                        "arn:aws:acm-pca:::template/RootCACertificate/V1",
                        "--validity", "Value=10,Type=YEARS")  # fmt: skip
    assert "CertificateChain" not in got  # a root's own certificate has no chain
    (folder / "root.pem").write_text(got["Certificate"])
    aws.ok("import-certificate-authority-certificate", "--certificate-authority-arn", root,
           "--certificate", "fileb://root.pem")  # fmt: skip
    described = aws.json("describe-certificate-authority", "--certificate-authority-arn", root)["CertificateAuthority"]
    assert described["Status"] == "ACTIVE" and described["Type"] == "ROOT"
    assert described["CertificateAuthorityConfiguration"] == ROOT_CONFIG
    assert openssl("verify", "-CAfile", "root.pem", "root.pem", cwd=folder).stdout.strip() == "root.pem: OK"
    return str(root)


def create_and_activate_subordinate(aws: AwsCli, root: str) -> str:
    folder = aws.folder
    sub = aws.json(
        "create-certificate-authority", "--certificate-authority-configuration",
        write_json(folder / "sub_config.json", SUB_CONFIG), "--revocation-configuration",
        write_json(folder / "revoke_config.json", REVOKE_CONFIG), "--certificate-authority-type", "SUBORDINATE",
    )["CertificateAuthorityArn"]  # fmt: skip
    aws.ok("wait", "certificate-authority-csr-created", "--certificate-authority-arn", sub)
    (folder / "sub.csr").write_text(aws.text("get-certificate-authority-csr", "--certificate-authority-arn", sub))
    got = issue_and_get(aws, root, "sub.csr", "--signing-algorithm", "SHA256WITHRSA", "--template-arn",
                        "arn:aws:acm-pca:::template/SubordinateCACertificate_PathLen0/V1",
                        "--validity", "Value=5,Type=YEARS")  # fmt: skip
    (folder / "sub.pem").write_text(got["Certificate"])
    (folder / "sub-chain.pem").write_text(got["CertificateChain"])
    assert got["CertificateChain"].strip() == (folder / "root.pem").read_text().strip()
    aws.ok("import-certificate-authority-certificate", "--certificate-authority-arn", sub,
           "--certificate", "fileb://sub.pem", "--certificate-chain", "fileb://sub-chain.pem")  # fmt: skip
    assert openssl("verify", "-CAfile", "root.pem", "sub.pem", cwd=folder).stdout.strip() == "sub.pem: OK"
    return str(sub)


def issue_leaf(aws: AwsCli, sub: str) -> dict[str, str]:
    folder = aws.folder
    made = openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                   "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=www.example.com",
                   "-addext", "subjectAltName=DNS:www.example.com", cwd=folder)  # fmt: skip
    assert made.returncode == 0, made.stderr
    options = ("--signing-algorithm", "SHA256WITHECDSA", "--validity", "Value=30,Type=DAYS",
               "--idempotency-token", "leaf-1")  # fmt: skip
    got = issue_and_get(aws, sub, "leaf.csr", *options)
    (folder / "leaf.pem").write_text(got["Certificate"])
    (folder / "leaf-chain.pem").write_text(got["CertificateChain"])
    cert = x509.load_pem_x509_certificate(got["Certificate"].encode())
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=30, hours=1)
    verified = openssl("verify", "-CAfile", "root.pem", "-untrusted", "leaf-chain.pem", "leaf.pem", cwd=folder)
    assert verified.stdout.strip() == "leaf.pem: OK", verified.stderr
    return got


def crl_url(certificate_pem: str) -> str:
    cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    url = points[0].full_name[0].value  # type: ignore[index]
    assert isinstance(url, str)
    return url


def test_the_aws_cli_walks_the_user_guide_flow(server: ServeProcess, tmp_path: Path) -> None:
    aws = AwsCli(server.url, tmp_path)
    root = create_and_activate_root(aws)
    sub = create_and_activate_subordinate(aws, root)
    leaf = issue_leaf(aws, sub)
    store = server.store
    sub_id = sub.rsplit("/", 1)[1]

    serial = openssl("x509", "-in", "leaf.pem", "-noout", "-serial", cwd=tmp_path).stdout.strip().split("=")[1]
    aws.ok("revoke-certificate", "--certificate-authority-arn", sub, "--certificate-serial", serial,
           "--revocation-reason", "KEY_COMPROMISE")  # fmt: skip

    report = aws.json("create-certificate-authority-audit-report", "--certificate-authority-arn", sub,
                      "--s3-bucket-name", "example-audit", "--audit-report-response-format", "JSON")  # fmt: skip
    aws.ok("wait", "audit-report-created", "--certificate-authority-arn", sub, "--audit-report-id",
           report["AuditReportId"])  # fmt: skip
    assert report["S3Key"] == f"audit-report/{sub_id}/{report['AuditReportId']}.json"
    entries = json.loads((store / "s3" / "example-audit" / report["S3Key"]).read_text())
    assert [(e["certificateArn"], e["revocationReason"]) for e in entries] == [(leaf["Arn"], "KEY_COMPROMISE")]

    # The CRL: where the certificate says, over HTTP from the server; and in the bucket.
    url = crl_url(leaf["Certificate"])
    assert url == f"{server.url}/example-crl/crl/{sub_id}.crl"
    with urllib.request.urlopen(url, timeout=30) as answer:
        der = answer.read()
    assert der == (store / "s3" / "example-crl" / "crl" / f"{sub_id}.crl").read_bytes()
    crl = x509.load_der_x509_crl(der)
    assert [r.serial_number for r in crl] == [int(serial, 16)]
    (tmp_path / "crl.der").write_bytes(der)
    assert openssl("crl", "-inform", "DER", "-in", "crl.der", "-out", "crl.pem", cwd=tmp_path).returncode == 0
    checked = openssl("verify", "-crl_check", "-CAfile", "root.pem", "-untrusted", "leaf-chain.pem",
                      "-CRLfile", "crl.pem", "leaf.pem", cwd=tmp_path)  # fmt: skip
    assert checked.returncode != 0 and "certificate revoked" in checked.stdout + checked.stderr
    downloaded = openssl("verify", "-crl_check", "-crl_download", "-CAfile", "root.pem", "-untrusted",
                         "leaf-chain.pem", "leaf.pem", cwd=tmp_path)  # fmt: skip
    assert downloaded.returncode != 0 and "certificate revoked" in downloaded.stdout + downloaded.stderr

    # Disable, delete (restorable for 7 days), restore, enable.
    aws.ok("update-certificate-authority", "--certificate-authority-arn", sub, "--status", "DISABLED")
    refused = aws.run("issue-certificate", "--certificate-authority-arn", sub, "--csr", "fileb://leaf.csr",
                      "--signing-algorithm", "SHA256WITHECDSA", "--validity", "Value=30,Type=DAYS")  # fmt: skip
    assert refused.returncode == CLI_ERROR and "InvalidStateException" in refused.stderr
    aws.ok("delete-certificate-authority", "--certificate-authority-arn", sub, "--permanent-deletion-time-in-days", "7")
    deleted = aws.json("describe-certificate-authority", "--certificate-authority-arn", sub)["CertificateAuthority"]
    assert deleted["Status"] == "DELETED"
    until = datetime.fromtimestamp(deleted["RestorableUntil"], UTC)  # the AWS CLI v1 prints epoch seconds
    assert abs(until - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=5)
    aws.ok("restore-certificate-authority", "--certificate-authority-arn", sub)
    restored = aws.json("describe-certificate-authority", "--certificate-authority-arn", sub)["CertificateAuthority"]
    assert restored["Status"] == "DISABLED" and "RestorableUntil" not in restored
    aws.ok("update-certificate-authority", "--certificate-authority-arn", sub, "--status", "ACTIVE")
    aws.json("issue-certificate", "--certificate-authority-arn", sub, "--csr", "fileb://leaf.csr",
             "--signing-algorithm", "SHA256WITHECDSA", "--validity", "Value=1,Type=DAYS")  # fmt: skip
    listed = aws.json("list-certificate-authorities")["CertificateAuthorities"]
    assert {(ca["Arn"], ca["Status"]) for ca in listed} == {(root, "ACTIVE"), (sub, "ACTIVE")}
