"""`pca-batch ca ...` end to end through ``pca_batch.cli.main``: what it prints, the
store it leaves, and its exit statuses."""

from __future__ import annotations

import argparse
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from rich.console import Console

from pca_batch.backends.local.backend import LocalBackend
from pca_batch.cli import ca as ca_cli
from pca_batch.errors import BackendError
from tests.support.local_ca import load, openssl, request, split_pems

ARN_RE = re.compile(r"arn:aws:acm-pca:([a-z0-9-]+):(\d{12}):certificate-authority/[0-9a-f-]{36}")
AUDIT_FIELDS = {
    "awsAccountId",
    "certificateArn",
    "serial",
    "subject",
    "notBefore",
    "notAfter",
    "issuedAt",
    "revokedAt",
    "revocationReason",
    "templateArn",
}


@dataclass
class Ran:
    code: int
    out: str
    err: str


@pytest.fixture
def ca(cli: Callable[..., object], capsys: pytest.CaptureFixture[str]) -> Callable[..., Ran]:
    """Run ``pca-batch ca ARGS`` through cli.main; out is what the command printed."""

    def run(*argv: str | Path) -> Ran:
        capsys.readouterr()
        result = cli("ca", *argv)
        captured = capsys.readouterr()
        ran = Ran(result.code, captured.out + result.out, captured.err + result.err)  # type: ignore[attr-defined]
        assert "PRIVATE KEY" not in ran.out + ran.err
        return ran

    return run


def create(ca: Callable[..., Ran], store: Path, *args: str) -> str:
    ran = ca("create", "--store", store, *args)
    assert ran.code == 0, ran.err
    assert list(json.loads(ran.out)) == ["CertificateAuthorityArn"]
    arn = json.loads(ran.out)["CertificateAuthorityArn"]
    assert ARN_RE.fullmatch(arn), arn
    return str(arn)


def listed(ca: Callable[..., Ran], store: Path) -> dict[str, dict[str, object]]:
    ran = ca("list", "--store", store)
    assert ran.code == 0, ran.err
    return {item["Arn"]: item for item in json.loads(ran.out)["CertificateAuthorities"]}


def test_create_root_and_subordinate_then_list(ca: Callable[..., Ran], tmp_path: Path) -> None:
    store = tmp_path / "store"
    root = create(
        ca, store, "--common-name", "CLI Root", "--region", "eu-central-1", "--account", "111122223333"
    )
    assert ARN_RE.fullmatch(root).groups() == ("eu-central-1", "111122223333")  # type: ignore[union-attr]
    sub = create(ca, store, "--common-name", "CLI Sub", "--parent", root, "--validity-days", "30")
    assert ARN_RE.fullmatch(sub).groups() == ("eu-central-1", "111122223333")  # type: ignore[union-attr]
    cas = listed(ca, store)
    assert cas[root]["Type"] == "ROOT" and cas[sub]["Type"] == "SUBORDINATE"
    assert cas[sub]["ParentArn"] == root
    assert cas[root]["Status"] == cas[sub]["Status"] == "ACTIVE"
    assert cas[sub]["CertificateAuthorityConfiguration"] == {
        "KeyAlgorithm": "EC_prime256v1",
        "SigningAlgorithm": "SHA256WITHECDSA",
        "Subject": {"CommonName": "CLI Sub"},
    }
    not_after = datetime.fromisoformat(str(cas[sub]["NotAfter"]))
    assert abs(not_after - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=5)
    sub_cert = load(ca("certificate", sub, "--store", store, "--pem").out)
    root_cert = load(ca("certificate", "--store", store, "--certificate-authority-arn", root, "--pem").out)
    assert sub_cert.issuer == root_cert.subject and isinstance(
        sub_cert.public_key(), ec.EllipticCurvePublicKey
    )
    sub_cert.verify_directly_issued_by(root_cert)


def test_key_algorithm_and_usage_mode(ca: Callable[..., Ran], tmp_path: Path) -> None:
    store = tmp_path / "store"
    rsa_ca = create(ca, store, "--common-name", "RSA", "--key-algorithm", "RSA_2048")
    short = create(
        ca, store, "--common-name", "Short", "--parent", rsa_ca, "--usage-mode", "SHORT_LIVED_CERTIFICATE"
    )
    cas = listed(ca, store)
    assert cas[rsa_ca]["CertificateAuthorityConfiguration"]["KeyAlgorithm"] == "RSA_2048"  # type: ignore[index]
    assert cas[short]["UsageMode"] == "SHORT_LIVED_CERTIFICATE"
    key = load(ca("certificate", rsa_ca, "--store", store, "--pem").out).public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    child = ca("create", "--store", store, "--common-name", "Below short", "--parent", short)
    assert child.code == 1 and "InvalidArgsException" in child.err


def test_disable_and_enable(ca: Callable[..., Ran], tmp_path: Path) -> None:
    store = tmp_path / "store"
    arn = create(ca, store, "--common-name", "Toggle")
    assert ca("disable", "--store", store, "--certificate-authority-arn", arn).code == 0
    assert listed(ca, store)[arn]["Status"] == "DISABLED"
    backend = LocalBackend(store)
    try:
        with pytest.raises(BackendError) as info:
            backend.issue_certificate(request(arn))
        assert info.value.code == "InvalidStateException"
        assert ca("enable", "--store", store, "--certificate-authority-arn", arn).code == 0
        assert listed(ca, store)[arn]["Status"] == "ACTIVE"
        backend.issue_certificate(request(arn))
    finally:
        backend.close()


def test_audit_report_lists_every_issued_certificate(ca: Callable[..., Ran], tmp_path: Path) -> None:
    store = tmp_path / "store"
    root = create(ca, store, "--common-name", "Audited")
    sub = create(ca, store, "--common-name", "Audited Sub", "--parent", root)
    backend = LocalBackend(store)
    try:
        issued = [backend.issue_certificate(request(sub)) for _ in range(3)]
        leaf = load(backend.get_certificate(sub, issued[0]).certificate)
    finally:
        backend.close()
    ran = ca("audit-report", "--store", store, "--certificate-authority-arn", sub)
    assert ran.code == 0, ran.err
    report = json.loads(ran.out)
    assert [entry["certificateArn"] for entry in report] == issued  # oldest first
    first = report[0]
    assert set(first) == AUDIT_FIELDS
    assert first["awsAccountId"] == "123456789012"
    assert first["serial"] == ":".join(re.findall("..", format(leaf.serial_number, "032x")))
    assert first["subject"] == "CN=svc.example"
    assert first["templateArn"] == "arn:aws:acm-pca:::template/EndEntityCertificate/V1"
    assert first["revokedAt"] is None and first["revocationReason"] is None
    for field in ("notBefore", "notAfter", "issuedAt"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000", first[field]), first[field]
    assert first["notAfter"] == leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%S+0000")
    # The root's report holds its own certificate and the subordinate's.
    root_report = json.loads(ca("audit-report", "--store", store, "--certificate-authority-arn", root).out)
    assert [e["templateArn"].split("/")[1] for e in root_report] == [
        "RootCACertificate",
        "SubordinateCACertificate_PathLen3",
    ]


def test_certificate_is_the_root_of_issued_chains(ca: Callable[..., Ran], tmp_path: Path) -> None:
    store = tmp_path / "store"
    root = create(ca, store, "--common-name", "Anchor")
    backend = LocalBackend(store)
    try:
        chain = backend.get_certificate(root, backend.issue_certificate(request(root))).chain
    finally:
        backend.close()
    assert json.loads(ca("certificate", root, "--store", store).out) == {"Certificate": split_pems(chain)[-1]}


def test_store_defaults_to_dot_pca_batch_in_the_current_folder(
    ca: Callable[..., Ran], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ran = ca("create", "--common-name", "Here")
    assert ran.code == 0, ran.err
    assert (tmp_path / ".pca-batch" / "pca-batch.db").is_file()
    assert list(listed(ca, Path(".pca-batch"))) == [json.loads(ran.out)["CertificateAuthorityArn"]]


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["create", "--store", "{s}"], 2, "--common-name"),
        (["create", "--store", "{s}", "--common-name", "X", "--key-algorithm", "DSA_1024"], 2, "DSA_1024"),
        (["create", "--store", "{s}", "--common-name", "X", "--validity-days", "0"], 2, "validity-days"),
        (["create", "--store", "{s}", "--common-name", "X", "--account", "abc"], 2, "account"),
        (
            [
                "create",
                "--store",
                "{s}",
                "--common-name",
                "X",
                "--parent",
                "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/nope",
            ],
            1,
            "ResourceNotFoundException",
        ),
        (
            [
                "certificate",
                "--store",
                "{s}",
                "--certificate-authority-arn",
                "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/nope",
            ],
            1,
            "ResourceNotFoundException",
        ),
        (
            ["disable", "--store", "{s}", "--certificate-authority-arn", "not-an-arn"],
            1,
            "InvalidArnException",
        ),
        (["audit-report", "--store", "{s}"], 2, "the CA's ARN is needed"),
        (["certificate", "{a}", "--store", "{s}", "--ca-arn", "{a}x"], 2, "two different CA ARNs"),
        (["enable", "{a}x", "--store", "{s}", "--certificate-authority-arn", "{a}"], 2, "two different CA ARNs"),
        (["list", "{a}", "--store", "{s}"], 2, "unrecognized arguments"),
        ([], 2, "sub-command"),
    ],
    ids=[
        "no-cn",
        "key-algorithm",
        "validity",
        "account",
        "unknown-parent",
        "unknown-ca",
        "bad-arn",
        "no-arn",
        "two-arns",
        "two-arns-long",
        "list-takes-no-arn",
        "bare",
    ],
)
def test_errors_and_exit_statuses(
    ca: Callable[..., Ran], tmp_path: Path, argv: list[str], code: int, message: str
) -> None:
    store = tmp_path / "store"
    arn = create(ca, store, "--common-name", "Exists")
    ran = ca(*[a.replace("{s}", str(store)).replace("{a}", arn) for a in argv])
    assert ran.code == code
    assert message in ran.err
    assert ran.out == ""


def test_register_works_on_a_plain_argparse_parser(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="mini")
    ca_cli.register(parser.add_subparsers(dest="command"))

    def run(*argv: str) -> str:
        out = io.StringIO()
        console = Console(file=out, width=100, color_system=None)
        args = parser.parse_args(list(argv))
        assert args.handler(args, console, console) == 0
        return out.getvalue()

    arn = json.loads(run("ca", "create", "--store", str(tmp_path / "s"), "--common-name", "Mini"))
    listed = json.loads(run("ca", "list", "--store", str(tmp_path / "s")))
    assert [c["Arn"] for c in listed["CertificateAuthorities"]] == [arn["CertificateAuthorityArn"]]


def test_certificate_prints_json_as_the_aws_cli_or_pem_or_a_file(ca: Callable[..., Ran], tmp_path: Path) -> None:
    store = tmp_path / "store"
    root = create(ca, store, "--common-name", "Json Root")
    sub = create(ca, store, "--common-name", "Json Sub", "--parent", root)
    # as `aws acm-pca get-certificate-authority-certificate`: a root has no CertificateChain
    root_json = json.loads(ca("certificate", root, "--store", store).out)
    assert list(root_json) == ["Certificate"]
    ran = ca("certificate", sub, "--store", store)
    assert ran.code == 0, ran.err
    sub_json = json.loads(ran.out)
    assert sub_json == {"Certificate": sub_json["Certificate"], "CertificateChain": root_json["Certificate"]}
    load(sub_json["Certificate"]).verify_directly_issued_by(load(root_json["Certificate"]))
    # the ARN as an option, positional or both (when they agree): the same answer
    for argv in (["--ca-arn", sub], ["--certificate-authority-arn", sub], [sub, "--ca-arn", sub]):
        assert json.loads(ca("certificate", *argv, "--store", store).out) == sub_json
    # --pem: the CA's certificate alone, as PEM
    assert ca("certificate", sub, "--store", store, "--pem").out == sub_json["Certificate"]
    # -o FILE: the PEM in a file (what is printed does not change), which openssl verifies
    (tmp_path / "root.pem").write_text(root_json["Certificate"])
    ran = ca("certificate", sub, "--store", store, "-o", tmp_path / "out" / "sub.pem")
    assert ran.code == 0 and json.loads(ran.out) == sub_json
    assert (tmp_path / "out" / "sub.pem").read_text() == sub_json["Certificate"]
    done = openssl("verify", "-CAfile", str(tmp_path / "root.pem"), str(tmp_path / "out" / "sub.pem"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_create_prints_its_arn_and_writes_its_certificate_on_request(ca: Callable[..., Ran], tmp_path: Path) -> None:
    store = tmp_path / "store"
    ran = ca("create", "--store", store, "--common-name", "Filed Root", "-o", tmp_path / "root.pem")
    assert ran.code == 0, ran.err
    arn = json.loads(ran.out)["CertificateAuthorityArn"]
    assert json.loads(ca("certificate", arn, "--store", store).out) == {
        "Certificate": (tmp_path / "root.pem").read_text()
    }
    pem = ca("create", "--store", store, "--common-name", "Printed", "--parent", arn, "--pem")
    assert pem.code == 0, pem.err
    assert load(pem.out).subject.rfc4514_string() == "CN=Printed"
    assert len(listed(ca, store)) == 2


def test_enable_and_disable_print_the_new_status(ca: Callable[..., Ran], tmp_path: Path) -> None:
    store = tmp_path / "store"
    arn = create(ca, store, "--common-name", "Switch")
    ran = ca("disable", arn, "--store", store)
    assert ran.code == 0, ran.err
    assert json.loads(ran.out) == {"CertificateAuthorityArn": arn, "Status": "DISABLED"}
    assert listed(ca, store)[arn]["Status"] == "DISABLED"
    ran = ca("enable", "--store", store, "--ca-arn", arn)
    assert json.loads(ran.out) == {"CertificateAuthorityArn": arn, "Status": "ACTIVE"}
    assert listed(ca, store)[arn]["Status"] == "ACTIVE"
    report = json.loads(ca("audit-report", arn, "--store", store).out)
    assert [e["templateArn"].split("/")[1] for e in report] == ["RootCACertificate"]


def test_help_explains_the_convention(ca: Callable[..., Ran]) -> None:
    ran = ca("--help")
    assert ran.code == 0
    text = " ".join(ran.out.split())
    for said in ("ARN", "JSON", "--pem", "-o FILE"):
        assert said in text, said
    certificate = " ".join(ca("certificate", "--help").out.split())
    assert "CertificateChain" in certificate and "--pem" in certificate and "-o FILE" in certificate
