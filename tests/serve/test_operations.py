"""`pca-batch serve` beside the rest of pca-batch: CRLs switched on later, audit reports in their
bucket, CAs that `pca-batch ca create` made, `apply` and `revoke` on the store it serves, and a
bug answered as InternalFailure without stopping the server."""

from __future__ import annotations

import csv
import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from pca_batch.serve import operations
from pca_batch.serve.buckets import AUDIT_FIELDS
from tests.support.common import Cli
from tests.support.moto_server import make_csr
from tests.support.serve_server import activate_root, client, serve_thread


@pytest.fixture
def served(aws_env: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with serve_thread(tmp_path / "store", log=None) as url:
        yield url, tmp_path / "store"


@pytest.fixture
def acm(served: tuple[str, Path]) -> Iterator[Any]:
    c = client(served[0])
    yield c
    c.close()


def issue(acm: Any, ca: str) -> x509.Certificate:
    arn = acm.issue_certificate(
        CertificateAuthorityArn=ca, Csr=make_csr("op.example")[0], SigningAlgorithm="SHA256WITHECDSA",
        Validity={"Value": 2, "Type": "DAYS"},
    )["CertificateArn"]  # fmt: skip
    pem = acm.get_certificate(CertificateAuthorityArn=ca, CertificateArn=arn)["Certificate"]
    return x509.load_pem_x509_certificate(pem.encode())


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as answer:
        data: bytes = answer.read()
    return data


def test_crls_switched_on_later_name_the_server_and_list_revocations(acm: Any, served: tuple[str, Path]) -> None:
    url, store = served
    ca = activate_root(acm, "later crl")
    before = issue(acm, ca)
    with pytest.raises(x509.ExtensionNotFound):
        before.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    crl = {"CrlConfiguration": {"Enabled": True, "ExpirationInDays": 2, "S3BucketName": "later",
                                "CustomPath": "pki/crls"}}  # fmt: skip
    acm.update_certificate_authority(CertificateAuthorityArn=ca, RevocationConfiguration=crl)
    assert acm.describe_certificate_authority(CertificateAuthorityArn=ca)["CertificateAuthority"][
        "RevocationConfiguration"
    ] == crl
    after = issue(acm, ca)
    point = after.extensions.get_extension_for_class(x509.CRLDistributionPoints).value[0].full_name
    ca_id = ca.rsplit("/", 1)[1]
    assert point is not None and point[0].value == f"{url}/later/pki/crls/{ca_id}.crl"
    acm.revoke_certificate(CertificateAuthorityArn=ca, CertificateSerial=format(before.serial_number, "x"),
                           RevocationReason="AFFILIATION_CHANGED")  # fmt: skip
    listed = x509.load_der_x509_crl(fetch(point[0].value))
    assert [r.serial_number for r in listed] == [before.serial_number]
    assert listed.next_update_utc is not None and (listed.next_update_utc - listed.last_update_utc).days == 2
    assert (store / "s3" / "later" / "pki" / "crls" / f"{ca_id}.crl").read_bytes() == fetch(point[0].value)


def test_an_audit_report_in_csv_lands_in_its_bucket(acm: Any, served: tuple[str, Path]) -> None:
    ca = activate_root(acm, "csv audit")
    issued = issue(acm, ca)
    report = acm.create_certificate_authority_audit_report(
        CertificateAuthorityArn=ca, S3BucketName="audits", AuditReportResponseFormat="CSV"
    )
    rows = list(csv.DictReader(io.StringIO((served[1] / "s3" / "audits" / report["S3Key"]).read_text())))
    assert report["S3Key"].endswith(".csv") and tuple(rows[0]) == AUDIT_FIELDS
    assert {r["subject"] for r in rows} == {"CN=csv audit", "CN=op.example"}  # its own certificate, and one issued
    serials = {r["serial"].replace(":", "") for r in rows}
    assert format(issued.serial_number, "032x") in serials
    assert acm.describe_certificate_authority_audit_report(
        CertificateAuthorityArn=ca, AuditReportId=report["AuditReportId"]
    )["AuditReportStatus"] == "SUCCESS"


def test_a_ca_that_ca_create_made_is_served(cli: Cli, served: tuple[str, Path], acm: Any) -> None:
    url, store = served
    made = cli("ca", "create", "--store", store, "--common-name", "Made By ca create", "--crl")
    assert made.code == 0, made.err
    ca = json.loads(made.out)["CertificateAuthorityArn"]
    described = acm.describe_certificate_authority(CertificateAuthorityArn=ca)["CertificateAuthority"]
    assert described["CertificateAuthorityConfiguration"]["Subject"] == {"CommonName": "Made By ca create"}
    assert described["RevocationConfiguration"]["CrlConfiguration"]["Enabled"] is True
    assert described["Status"] == "ACTIVE" and described["Type"] == "ROOT"
    csr = x509.load_pem_x509_csr(acm.get_certificate_authority_csr(CertificateAuthorityArn=ca)["Csr"].encode())
    assert csr.is_signature_valid
    cert = issue(acm, ca)
    acm.revoke_certificate(CertificateAuthorityArn=ca, CertificateSerial=format(cert.serial_number, "x"),
                           RevocationReason="SUPERSEDED")  # fmt: skip
    crl = x509.load_der_x509_crl(fetch(f"{url}/crl/{ca.rsplit('/', 1)[1]}.crl"))  # by its CA id, any folder
    assert [r.serial_number for r in crl] == [cert.serial_number]


def test_apply_and_revoke_on_the_served_store_show_through_the_api(
    cli: Cli, served: tuple[str, Path], acm: Any, tmp_path: Path, csr_file: Any
) -> None:
    url, store = served
    ca = activate_root(acm, "shared store", RevocationConfiguration={
        "CrlConfiguration": {"Enabled": True, "S3BucketName": "shared"}})  # fmt: skip
    csr_file("local")
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        f"version: 1\nbackend: {{type: local, store: {store}}}\ncertificates:\n"
        f"  - name: local\n    CertificateAuthorityArn: {ca}\n    SigningAlgorithm: SHA256WITHECDSA\n"
        "    Validity: {Value: 3, Type: DAYS}\n    Csr: file://csr/local.csr\n"
        "    output: {certificate: out/local.pem}\n"
    )
    applied = cli("apply", manifest, "--report", tmp_path / "r.json")
    assert applied.code == 0, applied.err
    arn = json.loads((tmp_path / "r.json").read_text())["results"][0]["certificate_arn"]
    served_pem = acm.get_certificate(CertificateAuthorityArn=ca, CertificateArn=arn)["Certificate"]
    assert served_pem == (tmp_path / "out" / "local.pem").read_text()
    point = f"{url}/shared/crl/{ca.rsplit('/', 1)[1]}.crl"
    assert list(x509.load_der_x509_crl(fetch(point))) == []
    revoked = cli("revoke", manifest, "local", "--reason", "KEY_COMPROMISE")  # another Store: as another process
    assert revoked.code == 0, revoked.err
    serial = x509.load_pem_x509_certificate(served_pem.encode()).serial_number
    assert [r.serial_number for r in x509.load_der_x509_crl(fetch(point))] == [serial]


def test_a_bug_is_internal_failure_and_the_server_goes_on(
    acm: Any, monkeypatch: pytest.MonkeyPatch, served: tuple[str, Path]
) -> None:
    def broken(*_: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setitem(operations.HANDLERS, "ListTags", broken)
    ca = activate_root(acm, "bug")
    with pytest.raises(acm.exceptions.ClientError) as failed:
        acm.list_tags(CertificateAuthorityArn=ca)
    assert failed.value.response["Error"]["Code"] == "InternalFailure"
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert acm.describe_certificate_authority(CertificateAuthorityArn=ca)["CertificateAuthority"]["Status"] == "ACTIVE"
    with pytest.raises(urllib.error.HTTPError) as missing:
        fetch(f"{served[0]}/crl/{ca.rsplit('/', 1)[1]}.crl")  # a CA without CRLs has none
    missing.value.close()
    assert missing.value.code == 404


def test_pca_batch_ca_sees_a_pending_ca_and_leaves_it_pending(cli: Cli, served: tuple[str, Path], acm: Any) -> None:
    store = served[1]
    pending = acm.create_certificate_authority(
        CertificateAuthorityConfiguration={"KeyAlgorithm": "EC_secp384r1", "SigningAlgorithm": "SHA384WITHECDSA",
                                           "Subject": {"CommonName": "Waiting"}},
        CertificateAuthorityType="SUBORDINATE",
    )["CertificateAuthorityArn"]  # fmt: skip
    listed = cli("ca", "list", "--store", store)
    assert listed.code == 0, listed.err
    (row,) = [ca for ca in json.loads(listed.out)["CertificateAuthorities"] if ca["Arn"] == pending]
    assert row["Status"] == "PENDING_CERTIFICATE" and row["Type"] == "SUBORDINATE" and "NotAfter" not in row
    assert row["CertificateAuthorityConfiguration"]["SigningAlgorithm"] == "SHA384WITHECDSA"
    for command in ("certificate", "enable"):
        refused = cli("ca", command, pending, "--store", store)
        assert refused.code == 1 and "PENDING_CERTIFICATE" in refused.err
    status = acm.describe_certificate_authority(CertificateAuthorityArn=pending)["CertificateAuthority"]["Status"]
    assert status == "PENDING_CERTIFICATE"
