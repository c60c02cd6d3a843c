"""boto3 against `pca-batch serve`: every one of the 23 operations answers exactly the members its
output shape in botocore's model allows, each of the right type (the raw JSON on the wire is
checked, before botocore's parser could drop or convert anything)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.model import Shape

from pca_batch.serve.shapes import service_model
from tests.support.moto_server import make_csr
from tests.support.serve_server import activate_root, client

CRL = {"CrlConfiguration": {"Enabled": True, "S3BucketName": "shapes-crl"}}


class Wire:
    """The raw JSON answer of each call a client makes, by operation."""

    def __init__(self, acm: Any) -> None:
        self.answers: dict[str, list[Any]] = {}
        acm.meta.events.register("after-call.acm-pca", self._seen)

    def _seen(self, http_response: Any, model: Any, **_: Any) -> None:
        if http_response.status_code == 200:
            body = http_response.content
            self.answers.setdefault(model.name, []).append(json.loads(body) if body else {})


def shape_problems(shape: Shape | None, value: Any, path: str = "$") -> list[str]:
    """Where ``value`` is not what ``shape`` allows: unknown or missing members, wrong types, enums."""
    if shape is None:
        return [] if value in ({}, None) else [f"{path}: an answer where the model has no output"]
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{path}: not an object"]
        members = shape.members  # type: ignore[attr-defined]
        found = [f"{path}.{k}: not in the output shape" for k in value if k not in members]
        found += [f"{path}.{k}: required, missing" for k in shape.required_members if k not in value]  # type: ignore[attr-defined]
        for name, item in value.items():
            if name in members:
                found += shape_problems(members[name], item, f"{path}.{name}")
        return found
    if kind == "list":
        if not isinstance(value, list):
            return [f"{path}: not a list"]
        return [p for i, item in enumerate(value) for p in shape_problems(shape.member, item, f"{path}[{i}]")]  # type: ignore[attr-defined]
    checks = {
        "string": lambda v: isinstance(v, str) and (not shape.enum or v in shape.enum),  # type: ignore[attr-defined]
        "blob": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "long": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "timestamp": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    }
    return [] if checks[kind](value) else [f"{path}: {value!r} is not a {kind} of shape {shape.name}"]


@pytest.fixture(scope="module")
def acm(serve_endpoint: str) -> Iterator[Any]:
    c = client(serve_endpoint)
    yield c
    c.close()


def call_every_operation(acm: Any) -> None:
    root = activate_root(acm, "shapes root", RevocationConfiguration=CRL, Tags=[{"Key": "team", "Value": "pki"}])
    issued = acm.issue_certificate(
        CertificateAuthorityArn=root, Csr=make_csr("shapes.example")[0], SigningAlgorithm="SHA256WITHECDSA",
        Validity={"Value": 5, "Type": "DAYS"}, IdempotencyToken="shapes",
    )["CertificateArn"]  # fmt: skip
    acm.get_certificate(CertificateAuthorityArn=root, CertificateArn=issued)
    acm.get_certificate_authority_certificate(CertificateAuthorityArn=root)
    acm.describe_certificate_authority(CertificateAuthorityArn=root)
    acm.list_certificate_authorities(MaxResults=1)
    acm.tag_certificate_authority(CertificateAuthorityArn=root, Tags=[{"Key": "env"}])
    acm.untag_certificate_authority(CertificateAuthorityArn=root, Tags=[{"Key": "env"}])
    acm.list_tags(CertificateAuthorityArn=root)
    acm.create_permission(CertificateAuthorityArn=root, Principal="acm.amazonaws.com", SourceAccount="123456789012",
                          Actions=["IssueCertificate", "GetCertificate", "ListPermissions"])  # fmt: skip
    acm.list_permissions(CertificateAuthorityArn=root)
    acm.delete_permission(CertificateAuthorityArn=root, Principal="acm.amazonaws.com", SourceAccount="123456789012")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "111122223333"},
              "Action": ["acm-pca:GetCertificate"], "Resource": root}]}  # fmt: skip
    acm.put_policy(ResourceArn=root, Policy=json.dumps(policy))
    acm.get_policy(ResourceArn=root)
    acm.delete_policy(ResourceArn=root)
    serial = issued.rsplit("/", 1)[1]
    acm.revoke_certificate(CertificateAuthorityArn=root, CertificateSerial=serial, RevocationReason="SUPERSEDED")
    report = acm.create_certificate_authority_audit_report(
        CertificateAuthorityArn=root, S3BucketName="shapes-audit", AuditReportResponseFormat="CSV"
    )
    acm.describe_certificate_authority_audit_report(CertificateAuthorityArn=root, AuditReportId=report["AuditReportId"])
    acm.update_certificate_authority(CertificateAuthorityArn=root, Status="DISABLED")
    acm.delete_certificate_authority(CertificateAuthorityArn=root, PermanentDeletionTimeInDays=30)
    acm.describe_certificate_authority(CertificateAuthorityArn=root)  # DELETED: with RestorableUntil
    acm.restore_certificate_authority(CertificateAuthorityArn=root)


def test_every_operation_answers_its_output_shape_exactly(acm: Any) -> None:
    wire = Wire(acm)
    call_every_operation(acm)
    model = service_model()
    assert set(wire.answers) == set(model.operation_names)  # all 23, each answered
    problems = {
        name: found
        for name, answers in wire.answers.items()
        for found in [[p for a in answers for p in shape_problems(model.operation_model(name).output_shape, a)]]
        if found
    }
    assert problems == {}
    described = [a["CertificateAuthority"] for a in wire.answers["DescribeCertificateAuthority"]]
    assert {"Serial", "NotBefore", "NotAfter", "RestorableUntil"} <= set(described[-1])
    assert described[-1]["Status"] == "DELETED"
    listed = wire.answers["ListCertificateAuthorities"][0]
    assert len(listed["CertificateAuthorities"]) == 1
    permission = wire.answers["ListPermissions"][0]["Permissions"][0]
    assert json.loads(permission["Policy"])["Statement"][0]["Principal"] == {"Service": "acm.amazonaws.com"}


def test_the_checker_finds_what_is_wrong() -> None:
    shape = service_model().operation_model("DescribeCertificateAuthority").output_shape
    good = {"CertificateAuthority": {"Arn": "a", "Status": "ACTIVE", "CreatedAt": 1.5}}
    assert shape_problems(shape, good) == []
    bad = {"CertificateAuthority": {"Arn": 3, "Status": "SLEEPING", "CreatedAt": "today", "Colour": "red"}}
    assert len(shape_problems(shape, bad)) == 4


def test_list_certificate_authorities_pages_through_every_ca(acm: Any) -> None:
    made = {activate_root(acm, f"page root {i}") for i in range(3)}
    pages = acm.get_paginator("list_certificate_authorities").paginate(PaginationConfig={"PageSize": 2})
    seen = [ca["Arn"] for page in pages for ca in page["CertificateAuthorities"]]
    assert made <= set(seen) and len(seen) == len(set(seen))
