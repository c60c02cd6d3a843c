"""How pca-batch writes a moment: RFC 3339 in UTC to the second (``2026-11-26T22:25:22Z``).

Reports, the journal and messages all use :func:`rfc3339`. The local CA's audit
reports use AWS's own form instead (:data:`AUDIT_TIME_FORMAT`).
"""

from __future__ import annotations

from datetime import UTC, datetime

RFC3339_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
AUDIT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S+0000"  # as AWS writes audit reports


def rfc3339(moment: datetime) -> str:
    """``moment`` in UTC, to the second: ``2026-11-26T22:25:22Z`` (a naive moment is taken as UTC)."""
    if moment.tzinfo is not None and moment.utcoffset():
        moment = moment.astimezone(UTC)
    return moment.strftime(RFC3339_FORMAT)


def utc_now() -> str:
    """The current moment as :func:`rfc3339` writes it."""
    return datetime.now(UTC).strftime(RFC3339_FORMAT)


def audit_time(seconds: int) -> str:
    """Unix seconds as AWS's audit reports write a moment."""
    return datetime.fromtimestamp(seconds, tz=UTC).strftime(AUDIT_TIME_FORMAT)
