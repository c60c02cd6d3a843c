"""What AWS Private CA keeps beside a CA, for `pca-batch serve`: its tags, the permissions it
grants ACM, its resource policy and the audit reports made of it. Stored in the CA's store
(schema 4); each change is one write transaction.

Rules as AWS states them: at most 50 tags a CA, keys starting ``aws:`` are AWS's own
(InvalidTagException); one permission per principal and source account
(PermissionAlreadyExistsException); DeletePolicy of a CA without a policy succeeds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pca_batch.backends.local.store import Store
from pca_batch.errors import BackendError

MAX_TAGS = 50


@dataclass(frozen=True)
class Tag:
    key: str
    value: str | None = None


def tags(store: Store, ca_arn: str) -> list[Tag]:
    rows = store.connection().execute(
        "SELECT key, value FROM tags WHERE ca_arn = ? ORDER BY position, key", (ca_arn,)
    ).fetchall()
    return [Tag(key, value) for key, value in rows]


def check_tags(given: Iterable[Tag]) -> None:
    for tag in given:
        if tag.key.lower().startswith("aws:"):
            raise BackendError("InvalidTagException", f"the tag key {tag.key!r} starts with aws:, which AWS reserves")


def add_tags(store: Store, ca_arn: str, given: Sequence[Tag]) -> None:
    """TagCertificateAuthority: add the tags, replacing the value of a key already there."""
    check_tags(given)
    with store.write() as tx:
        present = {r[0] for r in tx.execute("SELECT key FROM tags WHERE ca_arn = ?", (ca_arn,))}
        new_keys = {t.key for t in given} - present
        if len(present) + len(new_keys) > MAX_TAGS:
            raise BackendError(
                "TooManyTagsException",
                f"a CA has at most {MAX_TAGS} tags; this would make it {len(present) + len(new_keys)}",
            )
        position = tx.execute("SELECT COALESCE(MAX(position), 0) FROM tags WHERE ca_arn = ?", (ca_arn,)).fetchone()[0]
        for tag in given:
            position += 1
            tx.execute(
                "INSERT INTO tags (ca_arn, key, value, position) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (ca_arn, key) DO UPDATE SET value = excluded.value",
                (ca_arn, tag.key, tag.value, position),
            )


def remove_tags(store: Store, ca_arn: str, given: Sequence[Tag]) -> None:
    """UntagCertificateAuthority: remove each key (only with that value, when a value is given)."""
    check_tags(given)
    with store.write() as tx:
        for tag in given:
            if tag.value is None:
                tx.execute("DELETE FROM tags WHERE ca_arn = ? AND key = ?", (ca_arn, tag.key))
            else:
                tx.execute(
                    "DELETE FROM tags WHERE ca_arn = ? AND key = ? AND value IS ?", (ca_arn, tag.key, tag.value)
                )


@dataclass(frozen=True)
class Permission:
    ca_arn: str
    principal: str
    source_account: str | None
    actions: tuple[str, ...]
    created_at: int


def permissions(store: Store, ca_arn: str) -> list[Permission]:
    rows = store.connection().execute(
        "SELECT principal, source_account, actions, created_at FROM permissions WHERE ca_arn = ? "
        "ORDER BY created_at, rowid",
        (ca_arn,),
    ).fetchall()
    return [Permission(ca_arn, p, s or None, tuple(json.loads(a)), c) for p, s, a, c in rows]


def add_permission(store: Store, permission: Permission) -> None:
    with store.write() as tx:
        try:
            tx.execute(
                "INSERT INTO permissions (ca_arn, principal, source_account, actions, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    permission.ca_arn,
                    permission.principal,
                    permission.source_account or "",
                    json.dumps(list(permission.actions)),
                    permission.created_at,
                ),
            )
        except Exception as exc:  # sqlite3.IntegrityError: that principal has a permission already
            if "UNIQUE" not in str(exc):
                raise
            raise BackendError(
                "PermissionAlreadyExistsException",
                f"{permission.principal} already has a permission on {permission.ca_arn}",
            ) from None


def remove_permission(store: Store, ca_arn: str, principal: str, source_account: str | None) -> None:
    with store.write() as tx:
        cursor = tx.execute(
            "DELETE FROM permissions WHERE ca_arn = ? AND principal = ? AND source_account = ?",
            (ca_arn, principal, source_account or ""),
        )
    if cursor.rowcount == 0:
        raise BackendError("ResourceNotFoundException", f"{principal} has no permission on {ca_arn}")


def policy(store: Store, ca_arn: str) -> str | None:
    found = store.connection().execute("SELECT policy FROM policies WHERE ca_arn = ?", (ca_arn,)).fetchone()
    return None if found is None else str(found[0])


def check_policy(text: str) -> Mapping[str, Any]:
    """A resource policy must be an IAM policy document: a JSON object with a Statement."""
    try:
        document = json.loads(text)
    except ValueError:
        raise BackendError("InvalidPolicyException", "the policy is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("Statement"), list | dict):
        raise BackendError("InvalidPolicyException", "the policy is not an IAM policy document (no Statement)")
    statements = document["Statement"] if isinstance(document["Statement"], list) else [document["Statement"]]
    for i, statement in enumerate(statements):
        if not isinstance(statement, dict) or statement.get("Effect") not in ("Allow", "Deny"):
            raise BackendError("InvalidPolicyException", f"the policy's statement {i + 1} has no Effect Allow or Deny")
    return document


def put_policy(store: Store, ca_arn: str, text: str) -> None:
    check_policy(text)
    with store.write() as tx:
        tx.execute(
            "INSERT INTO policies (ca_arn, policy) VALUES (?, ?) "
            "ON CONFLICT (ca_arn) DO UPDATE SET policy = excluded.policy",
            (ca_arn, text),
        )


def delete_policy(store: Store, ca_arn: str) -> None:
    with store.write() as tx:
        tx.execute("DELETE FROM policies WHERE ca_arn = ?", (ca_arn,))


@dataclass(frozen=True)
class AuditReport:
    id: str
    ca_arn: str
    bucket: str
    s3_key: str
    status: str  # CREATING | SUCCESS | FAILED
    created_at: int


def add_audit_report(store: Store, report: AuditReport) -> None:
    with store.write() as tx:
        tx.execute(
            "INSERT INTO audit_reports (id, ca_arn, bucket, s3_key, status, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (report.id, report.ca_arn, report.bucket, report.s3_key, report.status, report.created_at),
        )


def set_audit_report_status(store: Store, report_id: str, status: str) -> None:
    with store.write() as tx:
        tx.execute("UPDATE audit_reports SET status = ? WHERE id = ?", (status, report_id))


def audit_report_record(store: Store, ca_arn: str, report_id: str) -> AuditReport | None:
    found = store.connection().execute(
        "SELECT id, ca_arn, bucket, s3_key, status, created_at FROM audit_reports WHERE id = ? AND ca_arn = ?",
        (report_id, ca_arn),
    ).fetchone()
    return None if found is None else AuditReport(*found)
