"""One way to write a moment: RFC 3339, UTC, to the second."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from pca_batch import times


def test_rfc3339_is_utc_to_the_second() -> None:
    moment = datetime(2026, 11, 26, 22, 25, 22, 987654, tzinfo=UTC)
    assert times.rfc3339(moment) == "2026-11-26T22:25:22Z"
    assert times.rfc3339(moment.astimezone(timezone(timedelta(hours=2)))) == "2026-11-26T22:25:22Z"
    assert times.rfc3339(moment.replace(tzinfo=None)) == "2026-11-26T22:25:22Z"  # naive: taken as UTC


def test_audit_reports_write_aws_form() -> None:
    assert times.audit_time(0) == "1970-01-01T00:00:00+0000"
