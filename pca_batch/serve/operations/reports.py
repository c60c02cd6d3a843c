"""CreateCertificateAuthorityAuditReport and DescribeCertificateAuthorityAuditReport.

The report is written at once into its bucket (``audit-report/<CA id>/<report id>.json`` or
``.csv``), so its status is SUCCESS by the time the create call returns and the AWS CLI's
``wait audit-report-created`` ends at its first poll.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from pca_batch.backends.local import resources
from pca_batch.backends.local.authorities import status_at, utc
from pca_batch.errors import BackendError

if TYPE_CHECKING:
    from pca_batch.serve.service import Context, Service

_REPORTABLE = ("ACTIVE", "DISABLED", "EXPIRED")


def create(service: Service, params: dict[str, Any], context: Context) -> dict[str, Any]:
    row = service.authority(params["CertificateAuthorityArn"], context)
    now = service.now()
    status = status_at(row, now)
    if status not in _REPORTABLE:
        raise BackendError(
            "InvalidStateException", f"certificate authority {row.arn} is {status}: it has no audit report"
        )
    report_id = str(uuid.uuid4())
    bucket = params["S3BucketName"]
    key = service.buckets.audit_key(row.arn, report_id, params["AuditReportResponseFormat"])
    record = resources.AuditReport(report_id, row.arn, bucket, key, "CREATING", int(now.timestamp()))
    resources.add_audit_report(service.store, record)
    try:
        service.buckets.write_audit_report(service.store, row.arn, bucket, key)
    except (OSError, ValueError):
        resources.set_audit_report_status(service.store, report_id, "FAILED")
        raise
    resources.set_audit_report_status(service.store, report_id, "SUCCESS")
    return {"AuditReportId": report_id, "S3Key": key}


def describe(service: Service, params: dict[str, Any], context: Context) -> dict[str, Any]:
    row = service.authority(params["CertificateAuthorityArn"], context)
    record = resources.audit_report_record(service.store, row.arn, params["AuditReportId"])
    if record is None:
        raise BackendError("ResourceNotFoundException", f"{row.arn} has no audit report {params['AuditReportId']}")
    return {
        "AuditReportStatus": record.status,
        "S3BucketName": record.bucket,
        "S3Key": record.s3_key,
        "CreatedAt": utc(record.created_at),
    }
