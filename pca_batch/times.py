"""How pca-batch writes a moment: RFC 3339 in UTC to the second (``2026-11-26T22:25:22Z``); and reads a duration.

Reports, the journal and messages all use :func:`rfc3339`. The local CA's audit
reports use AWS's own form instead (:data:`AUDIT_TIME_FORMAT`).
"""

from __future__ import annotations

import re
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


# How long: 90 (seconds), 90s, 15m, 1h, 1h30m, 2.5s. The manifest schema's settings.throttle_timeout
# has the same pattern (a test keeps them equal).
DURATION_PATTERN = r"^(?:([0-9]+(?:\.[0-9]+)?)h)?(?:([0-9]+(?:\.[0-9]+)?)m)?(?:([0-9]+(?:\.[0-9]+)?)s?)?$"
_DURATION = re.compile(DURATION_PATTERN)


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``1h30m``, ``2.5s``; ValueError for anything else."""
    m = _DURATION.fullmatch(text.strip())
    if not text.strip() or m is None or not any(m.groups()):
        raise ValueError(f"expected a duration such as 90s, 15m or 1h, not {text!r}")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    return hours * 3600 + minutes * 60 + seconds
