"""The 23 operations of acm-pca, each a function ``(service, checked input, context) -> output``.

One module per group: :mod:`.certificates` (issue, get, revoke), :mod:`.authorities` (the CA
lifecycle), :mod:`.access` (tags, permissions, policies), :mod:`.reports` (audit reports).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pca_batch.serve.operations import access, authorities, certificates, reports

if TYPE_CHECKING:
    from pca_batch.serve.service import Context, Service

Handler = Callable[["Service", dict[str, Any], "Context"], "dict[str, Any] | None"]

HANDLERS: dict[str, Handler] = {
    "CreateCertificateAuthority": authorities.create,
    "CreateCertificateAuthorityAuditReport": reports.create,
    "CreatePermission": access.create_permission,
    "DeleteCertificateAuthority": authorities.delete,
    "DeletePermission": access.delete_permission,
    "DeletePolicy": access.delete_policy,
    "DescribeCertificateAuthority": authorities.describe,
    "DescribeCertificateAuthorityAuditReport": reports.describe,
    "GetCertificate": certificates.get_certificate,
    "GetCertificateAuthorityCertificate": authorities.get_ca_certificate,
    "GetCertificateAuthorityCsr": authorities.get_csr,
    "GetPolicy": access.get_policy,
    "ImportCertificateAuthorityCertificate": authorities.import_certificate,
    "IssueCertificate": certificates.issue_certificate,
    "ListCertificateAuthorities": authorities.list_authorities,
    "ListPermissions": access.list_permissions,
    "ListTags": access.list_tags,
    "PutPolicy": access.put_policy,
    "RestoreCertificateAuthority": authorities.restore,
    "RevokeCertificate": certificates.revoke_certificate,
    "TagCertificateAuthority": access.tag,
    "UntagCertificateAuthority": access.untag,
    "UpdateCertificateAuthority": authorities.update,
}
