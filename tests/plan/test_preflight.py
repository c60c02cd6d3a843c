"""Preflight: the errors AWS would answer, found from one DescribeCertificateAuthority per CA."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pca_batch.backends.base import CaDescription, CertificateBundle
from pca_batch.errors import BackendError, Problem
from pca_batch.model import Entry, Outputs
from pca_batch.plan.preflight import preflight

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
ARN = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/"
RSA_CA, EC_CA, SHORT_CA, DISABLED_CA, PENDING_CA, MLDSA_CA, SM2_CA, MISSING_CA, DENIED_CA = (
    ARN + s for s in ("rsa", "ec", "short", "disabled", "pending", "mldsa", "sm2", "missing", "denied")
)


def ca(
    arn: str,
    key: str = "RSA_2048",
    *,
    status: str = "ACTIVE",
    mode: str = "GENERAL_PURPOSE",
    days_left: float | None = 365,
) -> CaDescription:
    not_after = NOW + timedelta(days=days_left) if days_left is not None else None
    return CaDescription(arn=arn, status=status, key_algorithm=key, usage_mode=mode, not_after=not_after)


class DescribingBackend:
    """Answers DescribeCertificateAuthority from a table; anything else is a test failure."""

    name = "table"

    def __init__(self, answers: Mapping[str, CaDescription | BackendError]) -> None:
        self.answers = dict(answers)
        self.described: Counter[str] = Counter()

    def describe_certificate_authority(self, ca_arn: str) -> CaDescription:
        self.described[ca_arn] += 1
        answer = self.answers.get(ca_arn)
        if answer is None:
            raise BackendError("ResourceNotFoundException", f"Resource {ca_arn} not found", status=400)
        if isinstance(answer, BackendError):
            raise answer
        return answer

    def issue_certificate(self, request: Mapping[str, Any]) -> str:
        raise AssertionError("preflight is read-only")

    def get_certificate(self, ca_arn: str, certificate_arn: str) -> CertificateBundle:
        raise AssertionError("preflight is read-only")

    def get_certificate_authority_certificate(self, ca_arn: str) -> CertificateBundle:
        raise AssertionError("preflight only describes")

    def revoke_certificate(self, ca_arn: str, serial: str, reason: str) -> None:
        raise AssertionError("preflight is read-only")

    def close(self) -> None:
        pass


BACKEND_TABLE: dict[str, CaDescription | BackendError] = {
    RSA_CA: ca(RSA_CA),
    EC_CA: ca(EC_CA, "EC_prime256v1"),
    SHORT_CA: ca(SHORT_CA, "EC_secp384r1", mode="SHORT_LIVED_CERTIFICATE"),
    DISABLED_CA: ca(DISABLED_CA, status="DISABLED"),
    PENDING_CA: ca(PENDING_CA, status="PENDING_CERTIFICATE", days_left=None),
    MLDSA_CA: ca(MLDSA_CA, "ML_DSA_65"),
    SM2_CA: ca(SM2_CA, "SM2"),
    DENIED_CA: BackendError(
        "AccessDeniedException", "not authorized to DescribeCertificateAuthority", status=400
    ),
}


def entry(
    name: str,
    ca_arn: str,
    signing: str = "SHA256WITHRSA",
    validity: Mapping[str, Any] | None = None,
    **extra: Any,
) -> Entry:
    request = {
        "CertificateAuthorityArn": ca_arn,
        "Csr": "-----BEGIN CERTIFICATE REQUEST-----\n...\n-----END CERTIFICATE REQUEST-----\n",
        "SigningAlgorithm": signing,
        "Validity": dict(validity or {"Value": 30, "Type": "DAYS"}),
        **extra,
    }
    return Entry(
        name=name, index=0, line=1, request=request, token=f"tok-{name}", csr=None, outputs=Outputs()
    )


def run(*entries: Entry) -> tuple[dict[str, tuple[str, str]], DescribingBackend]:
    backend = DescribingBackend(BACKEND_TABLE)
    found = preflight(entries, backend, now=NOW)
    return {name: (e.code, e.message) for name, e in found.items()}, backend


def test_entries_their_cas_can_issue_pass() -> None:
    found, _ = run(
        entry("rsa", RSA_CA, "SHA512WITHRSA_PSS", {"Value": 364, "Type": "DAYS"}),
        entry("ec", EC_CA, "SHA384WITHECDSA", {"Value": 12, "Type": "MONTHS"}),
        entry("short", SHORT_CA, "SHA256WITHECDSA", {"Value": 7, "Type": "DAYS"}),
        entry("mldsa", MLDSA_CA, "ML_DSA_65"),
        entry("sm2", SM2_CA, "SM3WITHSM2"),
    )
    assert found == {}


def test_each_distinct_ca_is_described_once_and_only_for_valid_entries() -> None:
    invalid = Entry(
        name="broken",
        index=9,
        line=40,
        request=None,
        token=None,
        csr=None,
        outputs=Outputs(),
        problems=(Problem("m.yaml", 40, "broken", "$.Csr", "missing"),),
    )
    _, backend = run(
        *(entry(f"a{i}", RSA_CA) for i in range(5)),
        *(entry(f"b{i}", EC_CA, "SHA256WITHECDSA") for i in range(3)),
        invalid,
    )
    assert backend.described == Counter({RSA_CA: 1, EC_CA: 1})


def test_an_unknown_ca_fails_its_entries_with_resource_not_found() -> None:
    found, _ = run(entry("one", MISSING_CA), entry("two", MISSING_CA), entry("fine", RSA_CA))

    assert set(found) == {"one", "two"}
    for code, message in found.values():
        assert code == "ResourceNotFoundException"
        assert message.startswith("preflight: ") and MISSING_CA in message and "not found" in message


def test_an_invalid_arn_answer_fails_its_entries_as_invalid_arn() -> None:
    bad = ARN + "bad"
    backend = DescribingBackend({bad: BackendError("InvalidArnException", "bad ARN", status=400)})
    found = preflight([entry("x", bad)], backend, now=NOW)
    assert found["x"].code == "InvalidArnException"
    assert "is not a valid CA ARN" in found["x"].message


@pytest.mark.parametrize(("arn", "state"), [(DISABLED_CA, "DISABLED"), (PENDING_CA, "PENDING_CERTIFICATE")])
def test_a_ca_not_active_fails_its_entries_with_invalid_state(arn: str, state: str) -> None:
    found, _ = run(entry("x", arn))
    code, message = found["x"]
    assert code == "InvalidStateException"
    assert f"is {state}, not ACTIVE" in message and arn in message


@pytest.mark.parametrize(
    ("arn", "signing", "words"),
    [
        (RSA_CA, "SHA256WITHECDSA", ["SHA256WITHECDSA is for EC keys", "RSA_2048 (RSA)"]),
        (EC_CA, "SHA384WITHRSA_PSS", ["SHA384WITHRSA_PSS is for RSA keys", "EC_prime256v1 (EC)"]),
        (MLDSA_CA, "ML_DSA_44", ["ML_DSA_44 is for ML-DSA-44 keys", "ML_DSA_65"]),
        (SM2_CA, "SHA256WITHRSA", ["is for RSA keys", "SM2 (SM2)"]),
    ],
)
def test_a_signing_algorithm_of_another_key_family_is_invalid_args(
    arn: str, signing: str, words: list[str]
) -> None:
    found, _ = run(entry("x", arn, signing))
    code, message = found["x"]
    assert code == "InvalidArgsException"
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    "validity",
    [
        {"Value": 366, "Type": "DAYS"},
        {"Value": 2, "Type": "YEARS"},
        {"Value": 20270601120001, "Type": "END_DATE"},
        {"Value": int((NOW + timedelta(days=400)).timestamp()), "Type": "ABSOLUTE"},
    ],
)
def test_a_not_after_past_the_cas_is_invalid_args(validity: dict[str, Any]) -> None:
    found, _ = run(entry("x", RSA_CA, validity=validity))
    code, message = found["x"]
    assert code == "InvalidArgsException"
    assert "lies past the CA certificate's NotAfter 2027-06-01T12:00:00Z" in message


def test_a_not_after_equal_to_the_cas_passes() -> None:
    found, _ = run(entry("x", RSA_CA, validity={"Value": 20270601120000, "Type": "END_DATE"}))
    assert found == {}


def test_a_short_lived_ca_is_asked_for_at_most_seven_days() -> None:
    signing = "SHA256WITHECDSA"
    day = timedelta(days=1)
    found, _ = run(
        entry("seven", SHORT_CA, signing, {"Value": 7, "Type": "DAYS"}),
        entry("eight", SHORT_CA, signing, {"Value": 8, "Type": "DAYS"}),
        entry("month", SHORT_CA, signing, {"Value": 1, "Type": "MONTHS"}),
        # NotBefore a day back and NotAfter 6.5 days ahead: 7.5 days of validity.
        entry(
            "backdated",
            SHORT_CA,
            signing,
            {"Value": int((NOW + 6.5 * day).timestamp()), "Type": "ABSOLUTE"},
            ValidityNotBefore={"Value": int((NOW - day).timestamp()), "Type": "ABSOLUTE"},
        ),
    )
    assert set(found) == {"eight", "month", "backdated"}
    assert found["eight"] == (
        "InvalidArgsException",
        "preflight: the CA is in SHORT_LIVED_CERTIFICATE usage mode, which issues at most 7 days, "
        "and this entry asks for 8 days",
    )
    assert "asks for 30 days" in found["month"][1]
    assert "asks for 7.50 days" in found["backdated"][1]


def test_every_argument_finding_of_an_entry_is_in_its_one_message() -> None:
    found, _ = run(entry("x", SHORT_CA, "SHA256WITHRSA", {"Value": 2, "Type": "YEARS"}))
    code, message = found["x"]
    assert code == "InvalidArgsException"
    assert "is for RSA keys" in message
    assert "lies past the CA certificate's NotAfter" in message
    assert "asks for 731 days" in message  # 2028 is a leap year


def test_a_ca_preflight_cannot_describe_leaves_its_entries_to_issuing() -> None:
    found, backend = run(entry("x", DENIED_CA), entry("y", DISABLED_CA))
    assert set(found) == {"y"}
    assert backend.described[DENIED_CA] == 1
