"""NotBefore and NotAfter as AWS Private CA derives them: the 60-minute backdate,
ValidityNotBefore, the five Validity types, the CA's own NotAfter and SHORT_LIVED mode."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from pca_batch.backends.local.admin import create_authority
from pca_batch.backends.local.backend import LocalBackend
from pca_batch.model import NewAuthority
from tests.support.local_ca import SettableClock, error_code, issue_pem, load, request


@dataclass(frozen=True)
class Pki:
    store: Path
    root: str
    short: str  # SHORT_LIVED_CERTIFICATE subordinate of root


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    store = tmp_path_factory.mktemp("local-validity") / "store"
    root = create_authority(store, NewAuthority(common_name="Validity Root"))
    short = create_authority(
        store, NewAuthority(common_name="Short", parent_arn=root, usage_mode="SHORT_LIVED_CERTIFICATE")
    )
    return Pki(store=store, root=root, short=short)


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
def backend(pki: Pki, clock: SettableClock) -> Iterator[LocalBackend]:
    b = LocalBackend(pki.store, clock=clock)
    yield b
    b.close()


def issue(backend: LocalBackend, ca_arn: str, **members: object) -> x509.Certificate:
    return load(issue_pem(backend, ca_arn, None, **members)[0])


def test_not_before_is_issuance_minus_60_minutes(
    backend: LocalBackend, pki: Pki, clock: SettableClock
) -> None:
    cert = issue(backend, pki.root, Validity={"Value": 10, "Type": "DAYS"})
    assert cert.not_valid_before_utc == clock.now - timedelta(minutes=60)
    assert cert.not_valid_after_utc == clock.now + timedelta(days=10)


def test_validity_not_before_sets_not_before(backend: LocalBackend, pki: Pki, clock: SettableClock) -> None:
    start = clock.now + timedelta(days=2)
    cert = issue(backend, pki.root, ValidityNotBefore={"Value": int(start.timestamp()), "Type": "ABSOLUTE"})
    assert cert.not_valid_before_utc == start


@pytest.mark.parametrize(
    ("validity", "start", "expected"),
    [
        ({"Value": 301231120000, "Type": "END_DATE"}, None, datetime(2030, 12, 31, 12, tzinfo=UTC)),
        ({"Value": 20310615083000, "Type": "END_DATE"}, None, datetime(2031, 6, 15, 8, 30, tzinfo=UTC)),
        ({"Value": 1924991999, "Type": "ABSOLUTE"}, None, datetime(2030, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ({"Value": 45, "Type": "DAYS"}, datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 2, 15, tzinfo=UTC)),
        (
            {"Value": 1, "Type": "MONTHS"},
            datetime(2030, 1, 31, 9, tzinfo=UTC),
            datetime(2030, 2, 28, 9, tzinfo=UTC),
        ),
        ({"Value": 2, "Type": "YEARS"}, datetime(2028, 2, 29, tzinfo=UTC), datetime(2030, 2, 28, tzinfo=UTC)),
    ],
    ids=[
        "END_DATE-UTCTime",
        "END_DATE-GeneralizedTime",
        "ABSOLUTE",
        "DAYS",
        "MONTHS-calendar",
        "YEARS-calendar",
    ],
)
def test_every_validity_type(
    pki: Pki, validity: dict[str, object], start: datetime | None, expected: datetime
) -> None:
    clock = SettableClock(start or datetime(2029, 1, 1, tzinfo=UTC))
    backend = LocalBackend(pki.store, clock=clock)
    try:
        assert issue(backend, pki.root, Validity=validity).not_valid_after_utc == expected
    finally:
        backend.close()


def test_not_after_past_the_ca_is_refused(backend: LocalBackend, pki: Pki) -> None:
    assert error_code(
        backend.issue_certificate, request(pki.root, Validity={"Value": 11, "Type": "YEARS"})
    ) == ("InvalidArgsException")


@pytest.mark.parametrize(
    "validity",
    [
        {"Value": 0, "Type": "DAYS"},
        {"Value": 5, "Type": "WEEKS"},
        {"Value": 991399999999, "Type": "END_DATE"},
    ],
)
def test_bad_validity_is_invalid_args(backend: LocalBackend, pki: Pki, validity: dict[str, object]) -> None:
    assert (
        error_code(backend.issue_certificate, request(pki.root, Validity=validity)) == "InvalidArgsException"
    )


def test_not_after_in_the_past_is_refused(backend: LocalBackend, pki: Pki) -> None:
    past = {"Value": 20200101000000, "Type": "END_DATE"}
    assert error_code(backend.issue_certificate, request(pki.root, Validity=past)) == "InvalidArgsException"


def test_short_lived_ca_issues_at_most_seven_days(
    backend: LocalBackend, pki: Pki, clock: SettableClock
) -> None:
    cert = issue(backend, pki.short, Validity={"Value": 7, "Type": "DAYS"})
    assert cert.not_valid_after_utc == clock.now + timedelta(days=7)
    for too_long in ({"Value": 8, "Type": "DAYS"}, {"Value": 1, "Type": "MONTHS"}):
        assert (
            error_code(backend.issue_certificate, request(pki.short, Validity=too_long))
            == "InvalidArgsException"
        )
    assert backend.describe_certificate_authority(pki.short).usage_mode == "SHORT_LIVED_CERTIFICATE"
