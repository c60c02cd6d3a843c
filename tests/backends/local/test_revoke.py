"""RevokeCertificate on the local CA, with AWS's semantics and errors; the audit report shows it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pca_batch.acmpca import REVOCATION_REASONS, colon_serial
from pca_batch.backends.local.admin import (
    audit_report,
    authority_certificate,
    create_authority,
    set_authority_status,
)
from pca_batch.backends.local.backend import LocalBackend
from pca_batch.errors import BackendError
from pca_batch.model import NewAuthority
from tests.support.local_ca import SettableClock, error_code, load, request


@dataclass(frozen=True)
class Cas:
    store: Path
    root: str
    sub: str


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> Cas:
    store = tmp_path_factory.mktemp("revoke") / "store"
    root = create_authority(store, NewAuthority(common_name="Revoke Root"))
    return Cas(store, root, create_authority(store, NewAuthority(common_name="Revoke Sub", parent_arn=root)))


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
def backend(cas: Cas, clock: SettableClock) -> Iterator[LocalBackend]:
    b = LocalBackend(cas.store, clock=clock)
    yield b
    b.close()


def issue(backend: LocalBackend, ca: str) -> tuple[str, str]:
    """A new certificate's ARN and serial (32 lowercase hex digits)."""
    arn = backend.issue_certificate(request(ca))
    return arn, arn.rsplit("/", 1)[1]


def audit_row(cas: Cas, ca: str, arn: str) -> dict[str, object]:
    return next(row for row in audit_report(cas.store, ca) if row["certificateArn"] == arn)


def test_a_revoked_certificate_is_in_the_audit_report_and_still_returned(
    backend: LocalBackend, cas: Cas, clock: SettableClock
) -> None:
    arn, serial = issue(backend, cas.sub)
    before = audit_row(cas, cas.sub, arn)
    assert before["revokedAt"] is None and before["revocationReason"] is None
    backend.revoke_certificate(cas.sub, colon_serial(serial), "KEY_COMPROMISE")
    after = audit_row(cas, cas.sub, arn)
    assert after["revocationReason"] == "KEY_COMPROMISE"
    assert after["revokedAt"] == clock.now.strftime("%Y-%m-%dT%H:%M:%S+0000")
    certificate = load(backend.get_certificate(cas.sub, arn).certificate)
    assert format(certificate.serial_number, "032x") == serial


@pytest.mark.parametrize("reason", REVOCATION_REASONS)
def test_each_of_the_eight_reasons_is_recorded(backend: LocalBackend, cas: Cas, reason: str) -> None:
    arn, serial = issue(backend, cas.sub)
    backend.revoke_certificate(cas.sub, serial, reason)  # type: ignore[arg-type]
    assert audit_row(cas, cas.sub, arn)["revocationReason"] == reason


@pytest.mark.parametrize("form", [str.upper, colon_serial, lambda s: s.lstrip("0")])
def test_the_serial_may_be_any_case_with_or_without_colons_or_leading_zeros(
    backend: LocalBackend, cas: Cas, form: object
) -> None:
    arn, serial = issue(backend, cas.sub)
    backend.revoke_certificate(cas.sub, form(serial), "SUPERSEDED")  # type: ignore[operator]
    assert audit_row(cas, cas.sub, arn)["revocationReason"] == "SUPERSEDED"


def test_a_second_revoke_is_request_already_processed_and_keeps_the_first_reason(
    backend: LocalBackend, cas: Cas
) -> None:
    arn, serial = issue(backend, cas.sub)
    backend.revoke_certificate(cas.sub, serial, "KEY_COMPROMISE")
    assert error_code(backend.revoke_certificate, cas.sub, serial, "SUPERSEDED") == "RequestAlreadyProcessedException"
    assert audit_row(cas, cas.sub, arn)["revocationReason"] == "KEY_COMPROMISE"


def test_concurrent_revokes_of_one_certificate_revoke_it_once(backend: LocalBackend, cas: Cas) -> None:
    _, serial = issue(backend, cas.sub)
    outcomes: list[str] = []
    lock = threading.Lock()

    def revoke() -> None:
        try:
            backend.revoke_certificate(cas.sub, serial, "UNSPECIFIED")
            outcome = "revoked"
        except BackendError as exc:
            outcome = exc.code
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=revoke) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["RequestAlreadyProcessedException"] * 7 + ["revoked"]


def test_a_serial_the_ca_did_not_issue_is_not_found(backend: LocalBackend, cas: Cas) -> None:
    _, serial = issue(backend, cas.root)  # issued by the root, asked of the subordinate
    assert error_code(backend.revoke_certificate, cas.sub, serial, "UNSPECIFIED") == "ResourceNotFoundException"
    assert error_code(backend.revoke_certificate, cas.sub, "1" * 32, "UNSPECIFIED") == "ResourceNotFoundException"
    unknown_ca = cas.root[:-1] + ("0" if cas.root[-1] != "0" else "1")
    assert error_code(backend.revoke_certificate, unknown_ca, serial, "UNSPECIFIED") == "ResourceNotFoundException"


def test_the_root_cas_own_certificate_cannot_be_revoked_but_a_subordinate_cas_can(
    backend: LocalBackend, cas: Cas
) -> None:
    own = format(load(authority_certificate(cas.store, cas.root)).serial_number, "x")
    assert error_code(backend.revoke_certificate, cas.root, own, "UNSPECIFIED") == "InvalidRequestException"
    doomed = create_authority(cas.store, NewAuthority(common_name="Doomed Sub", parent_arn=cas.root))
    serial = format(load(authority_certificate(cas.store, doomed)).serial_number, "032x")
    backend.revoke_certificate(cas.root, serial, "CERTIFICATE_AUTHORITY_COMPROMISE")
    row = next(r for r in audit_report(cas.store, cas.root) if str(r["certificateArn"]).endswith(serial))
    assert row["revocationReason"] == "CERTIFICATE_AUTHORITY_COMPROMISE"


def test_a_ca_that_is_not_active_revokes_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    ca = create_authority(store, NewAuthority(common_name="Soon Disabled", validity_days=2))
    clock = SettableClock()
    backend = LocalBackend(store, clock=clock)
    try:
        arn = backend.issue_certificate(request(ca, Validity={"Value": 1, "Type": "DAYS"}))
        serial = arn.rsplit("/", 1)[1]
        set_authority_status(store, ca, "DISABLED")
        assert error_code(backend.revoke_certificate, ca, serial, "UNSPECIFIED") == "InvalidStateException"
        set_authority_status(store, ca, "ACTIVE")
        clock.advance(days=3)  # past the CA's NotAfter: EXPIRED
        assert error_code(backend.revoke_certificate, ca, serial, "UNSPECIFIED") == "InvalidStateException"
    finally:
        backend.close()
    assert audit_report(store, ca)[-1]["revokedAt"] is None


@pytest.mark.parametrize("serial", ["", "xyz", "12:3g", "1" * 129, "ab::cd"])
def test_a_serial_that_is_not_hex_is_an_invalid_request(backend: LocalBackend, cas: Cas, serial: str) -> None:
    assert error_code(backend.revoke_certificate, cas.sub, serial, "UNSPECIFIED") == "InvalidRequestException"


def test_an_unknown_reason_is_refused(backend: LocalBackend, cas: Cas) -> None:
    arn, serial = issue(backend, cas.sub)
    assert error_code(backend.revoke_certificate, cas.sub, serial, "LOST") == "ValidationException"
    assert audit_row(cas, cas.sub, arn)["revokedAt"] is None
