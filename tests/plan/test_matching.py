"""pca_batch.plan.matching on certificates made here: the lifetime AWS gives (NotBefore backdated
by up to 60 minutes), the signing algorithm's name, the issuer check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import given
from hypothesis import strategies as st

from pca_batch.pki.validity import not_after
from pca_batch.plan import matching

EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ISSUED = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


def certificate(not_before: datetime, end: datetime, *, key: Any = EC_KEY, digest: Any = None,
                issuer: str = "CA", pss: bool = False) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, issuer)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(1).not_valid_before(not_before).not_valid_after(end))
    if pss:
        return builder.sign(key, digest or hashes.SHA256(), rsa_padding=padding.PSS(
            mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH))
    return builder.sign(key, digest or hashes.SHA256())


@given(st.integers(min_value=0, max_value=3600), st.sampled_from(["DAYS", "MONTHS", "YEARS"]),
       st.integers(min_value=1, max_value=24))
def test_a_certificate_backdated_by_up_to_an_hour_has_the_asked_lifetime(backdate: int, kind: str, value: int) -> None:
    validity = {"Value": value, "Type": kind}
    cert = certificate(ISSUED - timedelta(seconds=backdate), not_after(validity, ISSUED))
    assert matching.lifetime_difference(cert, {"Validity": validity}) is None


@pytest.mark.parametrize("backdate_minutes", [-10, 70, 24 * 60])
def test_more_than_the_backdate_or_a_start_after_the_issuance_is_another_lifetime(backdate_minutes: int) -> None:
    validity = {"Value": 30, "Type": "DAYS"}
    cert = certificate(ISSUED - timedelta(minutes=backdate_minutes), not_after(validity, ISSUED))
    found = matching.lifetime_difference(cert, {"Validity": validity})
    assert found is not None and "is not the 30 DAYS the entry asks for" in found


def test_an_end_date_and_a_not_before_are_compared_as_given() -> None:
    end = datetime(2027, 1, 1, tzinfo=UTC)
    validity = {"Value": int(end.timestamp()), "Type": "ABSOLUTE"}
    start = {"Value": int(ISSUED.timestamp()), "Type": "ABSOLUTE"}
    assert matching.lifetime_difference(certificate(ISSUED, end), {"Validity": validity,
                                                                   "ValidityNotBefore": start}) is None
    late = matching.lifetime_difference(certificate(ISSUED + timedelta(hours=1), end),
                                        {"Validity": validity, "ValidityNotBefore": start})
    assert late is not None and "the entry's ValidityNotBefore is 2026-06-01T12:00:00Z" in late
    off = matching.lifetime_difference(certificate(ISSUED, end + timedelta(days=1)), {"Validity": validity})
    assert off is not None


@pytest.mark.parametrize(
    ("key", "digest", "pss", "name"),
    [
        (EC_KEY, hashes.SHA256(), False, "SHA256WITHECDSA"),
        (EC_KEY, hashes.SHA384(), False, "SHA384WITHECDSA"),
        (RSA_KEY, hashes.SHA512(), False, "SHA512WITHRSA"),
        (RSA_KEY, hashes.SHA256(), True, "SHA256WITHRSA_PSS"),
    ],
)
def test_signing_algorithm_names_are_awss(key: Any, digest: Any, pss: bool, name: str) -> None:
    cert = certificate(ISSUED, ISSUED + timedelta(days=1), key=key, digest=digest, pss=pss)
    assert matching.signing_algorithm_of(cert) == name
    assert matching.issuance_differences(cert, {"SigningAlgorithm": name}) == []
    other = "SHA256WITHECDSA" if name != "SHA256WITHECDSA" else "SHA384WITHECDSA"
    assert matching.issuance_differences(cert, {"SigningAlgorithm": other}) == [
        f"the certificate is signed with {name}, the entry asks for {other}"
    ]


def test_the_issuer_must_be_the_cas_subject_and_its_signature_the_cas() -> None:
    ca = certificate(ISSUED, ISSUED + timedelta(days=9), issuer="CA")
    own = certificate(ISSUED, ISSUED + timedelta(days=1), issuer="CA")  # self-signed by the same key and name
    assert matching.issuer_difference(own, ca, "arn:ca") is None
    other_name = certificate(ISSUED, ISSUED + timedelta(days=1), issuer="Other")
    assert "is not the entry's CA arn:ca" in str(matching.issuer_difference(other_name, ca, "arn:ca"))
    forged = certificate(ISSUED, ISSUED + timedelta(days=1), issuer="CA", key=ec.generate_private_key(ec.SECP256R1()))
    assert "does not verify with the key of the entry's CA" in str(matching.issuer_difference(forged, ca, "arn:ca"))
