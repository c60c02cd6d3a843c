"""Tags, permissions (for ACM) and resource policies of a CA: stored and answered as AWS does.

They change what AWS would allow other principals to do; this server has one set of credentials
and enforces none of them: it keeps them so that tooling that writes and reads them (Terraform,
RAM set-ups, scripts) sees what it wrote.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pca_batch.backends.local import resources
from pca_batch.backends.local.authorities import utc
from pca_batch.backends.local.store import AuthorityRow
from pca_batch.errors import BackendError
from pca_batch.serve.paging import page

if TYPE_CHECKING:
    from pca_batch.serve.service import Context, Service


def _usable(service: Service, arn: str, context: Context) -> AuthorityRow:
    row = service.authority(arn, context)
    if row.status == "DELETED":
        raise BackendError("InvalidStateException", f"certificate authority {arn} is DELETED")
    return row


def _tags(params: dict[str, Any]) -> list[resources.Tag]:
    return [resources.Tag(t["Key"], t.get("Value")) for t in params["Tags"]]


def tag(service: Service, params: dict[str, Any], context: Context) -> None:
    row = _usable(service, params["CertificateAuthorityArn"], context)
    resources.add_tags(service.store, row.arn, _tags(params))


def untag(service: Service, params: dict[str, Any], context: Context) -> None:
    row = _usable(service, params["CertificateAuthorityArn"], context)
    resources.remove_tags(service.store, row.arn, _tags(params))


def list_tags(service: Service, params: dict[str, Any], context: Context) -> dict[str, Any]:
    row = service.authority(params["CertificateAuthorityArn"], context)
    items, following = page(resources.tags(service.store, row.arn), params, limit=1000)
    tags = [{"Key": t.key, "Value": t.value} for t in items]
    return {"Tags": tags, "NextToken": following}


def create_permission(service: Service, params: dict[str, Any], context: Context) -> None:
    row = _usable(service, params["CertificateAuthorityArn"], context)
    permission = resources.Permission(
        ca_arn=row.arn,
        principal=params["Principal"],
        source_account=params.get("SourceAccount"),
        actions=tuple(dict.fromkeys(params["Actions"])),
        created_at=int(service.now().timestamp()),
    )
    resources.add_permission(service.store, permission)


def delete_permission(service: Service, params: dict[str, Any], context: Context) -> None:
    row = _usable(service, params["CertificateAuthorityArn"], context)
    resources.remove_permission(service.store, row.arn, params["Principal"], params.get("SourceAccount"))


def _permission_policy(permission: resources.Permission) -> str:
    """The policy a permission amounts to, as ListPermissions shows it."""
    statement: dict[str, Any] = {
        "Sid": f"{permission.principal}-permission",
        "Effect": "Allow",
        "Principal": {"Service": permission.principal},
        "Action": [f"acm-pca:{action}" for action in permission.actions],
        "Resource": permission.ca_arn,
    }
    if permission.source_account:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": permission.source_account}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def list_permissions(service: Service, params: dict[str, Any], context: Context) -> dict[str, Any]:
    row = service.authority(params["CertificateAuthorityArn"], context)
    items, following = page(resources.permissions(service.store, row.arn), params, limit=1000)
    listed = [
        {
            "CertificateAuthorityArn": p.ca_arn,
            "CreatedAt": utc(p.created_at),
            "Principal": p.principal,
            "SourceAccount": p.source_account,
            "Actions": list(p.actions),
            "Policy": _permission_policy(p),
        }
        for p in items
    ]
    return {"Permissions": listed, "NextToken": following}


def put_policy(service: Service, params: dict[str, Any], context: Context) -> None:
    row = _usable(service, params["ResourceArn"], context)
    resources.put_policy(service.store, row.arn, params["Policy"])


def get_policy(service: Service, params: dict[str, Any], context: Context) -> dict[str, Any]:
    row = service.authority(params["ResourceArn"], context)
    found = resources.policy(service.store, row.arn)
    if found is None:
        raise BackendError("ResourceNotFoundException", f"certificate authority {row.arn} has no policy")
    return {"Policy": found}


def delete_policy(service: Service, params: dict[str, Any], context: Context) -> None:
    row = _usable(service, params["ResourceArn"], context)
    resources.delete_policy(service.store, row.arn)
