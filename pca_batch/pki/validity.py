"""Validity and ValidityNotBefore: the CLI shorthand, END_DATE forms, and the
NotBefore/NotAfter that AWS Private CA derives from them.

AWS rules (API reference, ``Validity``):
- END_DATE: UTCTime ``YYMMDDHHMMSS`` (YY >= 50 means 19YY) or GeneralizedTime
  ``YYYYMMDDHHMMSS``, given as a number.
- ABSOLUTE: seconds since the Unix epoch.
- DAYS, MONTHS, YEARS: a span after issuance; months and years by the calendar.
- Without ValidityNotBefore, NotBefore is the issuance time minus 60 minutes.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pca_batch.times import rfc3339

VALIDITY_TYPES = ("END_DATE", "ABSOLUTE", "DAYS", "MONTHS", "YEARS")
MOMENT_TYPES = ("END_DATE", "ABSOLUTE")  # the types that name a moment, not a span after issuance
NOT_BEFORE_BACKDATE = timedelta(minutes=60)

_SHORTHAND = re.compile(r"^\s*(\w+)\s*=\s*([^,]*?)\s*,\s*(\w+)\s*=\s*([^,]*?)\s*$")


class ValidityError(ValueError):
    """A Validity value that cannot be turned into a date."""


def parse_shorthand(text: str) -> dict[str, Any]:
    """``Value=365,Type=DAYS`` -> ``{"Value": 365, "Type": "DAYS"}`` (either order).

    Raises ValidityError with a message meant for a person.
    """
    m = _SHORTHAND.match(text)
    if not m:
        raise ValidityError(f"cannot read {text!r}: expected the shorthand Value=N,Type=TYPE")
    pairs = {m.group(1): m.group(2), m.group(3): m.group(4)}
    if set(pairs) != {"Value", "Type"}:
        raise ValidityError(f"cannot read {text!r}: expected the keys Value and Type")
    raw = pairs["Value"]
    try:
        value: Any = int(raw)
    except ValueError:
        value = raw  # left for the schema to refuse with its own message
    return {"Value": value, "Type": pairs["Type"]}


def parse_end_date(value: int) -> datetime:
    """An END_DATE number as a UTC datetime; ValidityError if it is no real date."""
    text = str(value)
    if 9 <= len(text) < 12:
        # A number loses its leading zeros: UTCTime 000101000000 .. 091231235959
        # (the years 2000-2009) arrives with 9 to 11 digits.
        text = text.zfill(12)
    if len(text) == 12:
        yy = int(text[:2])
        year = 1900 + yy if yy >= 50 else 2000 + yy
        rest = text[2:]
    elif len(text) == 14:
        year = int(text[:4])
        rest = text[4:]
    else:
        raise ValidityError(
            f"END_DATE {value} must have 12 digits (YYMMDDHHMMSS) or 14 digits (YYYYMMDDHHMMSS)"
        )
    month, day, hour, minute, second = (int(rest[i : i + 2]) for i in range(0, 10, 2))
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise ValidityError(f"END_DATE {value} is not a real date: {exc}") from None


def _add_months(start: datetime, months: int) -> datetime:
    total = start.month - 1 + months
    year = start.year + total // 12
    month = total % 12 + 1
    if year > 9999:
        raise ValidityError("the validity reaches past the year 9999")
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


def absolute_time(validity: Mapping[str, Any], issued_at: datetime) -> datetime:
    """The moment a Validity (or ValidityNotBefore) names, for an issuance at ``issued_at``."""
    kind = validity.get("Type")
    value = validity.get("Value")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValidityError(f"Value must be a whole number of at least 1, not {value!r}")
    try:
        if kind == "END_DATE":
            return parse_end_date(value)
        if kind == "ABSOLUTE":
            return datetime.fromtimestamp(value, tz=UTC)
        if kind == "DAYS":
            return issued_at + timedelta(days=value)
        if kind == "MONTHS":
            return _add_months(issued_at, value)
        if kind == "YEARS":
            return _add_months(issued_at, 12 * value)
    except (OverflowError, OSError, ValueError) as exc:
        if isinstance(exc, ValidityError):
            raise
        raise ValidityError(f"{kind} {value} is out of range") from None
    raise ValidityError(f"unknown validity type {kind!r}")


def not_after(validity: Mapping[str, Any], issued_at: datetime) -> datetime:
    return absolute_time(validity, issued_at)


def not_before(validity_not_before: Mapping[str, Any] | None, issued_at: datetime) -> datetime:
    if validity_not_before is None:
        return issued_at - NOT_BEFORE_BACKDATE
    return absolute_time(validity_not_before, issued_at)


def describe(validity: Mapping[str, Any] | None) -> str:
    """A short human form for tables: ``90 DAYS``, ``until 2027-01-01T00:00:00Z``."""
    if not validity:
        return ""
    kind, value = validity.get("Type"), validity.get("Value")
    if kind in MOMENT_TYPES and isinstance(value, int):
        try:
            return "until " + rfc3339(absolute_time(validity, datetime.now(UTC)))
        except ValidityError:
            return f"{value} {kind}"
    return f"{value} {kind}"
