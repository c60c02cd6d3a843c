"""CRLs of the local CA, as AWS Private CA builds them, checked by openssl and pkilint's lint_crl:
the distribution point in issued certificates, the CRL's fields, revoked serials and reasons."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from pca_batch.backends.local.admin import authority_certificate, certificate_revocation_list, create_authority
from pca_batch.backends.local.backend import LocalBackend
from pca_batch.model import CrlConfig, NewAuthority
from tests.support.common import Cli
from tests.support.local_ca import SettableClock, ext, load, openssl, openssl_verify, request

LINT_CRL = Path(sys.executable).with_name("lint_crl")
CRL_URL = "http://crl.example/pki"


@dataclass(frozen=True)
class Revoked:
    store: Path
    ca: str
    certificates: dict[str, str]  # name -> PEM
    chain: str
    serials: dict[str, str]  # name -> 32 hex digits
    reasons: dict[str, str]  # name -> RevocationReason, for the revoked ones


@pytest.fixture(scope="module")
def revoked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Revoked]:
    """A CA with CRLs that issued five certificates and revoked three of them."""
    store = tmp_path_factory.mktemp("crl") / "store"
    ca = create_authority(store, NewAuthority(common_name="CRL Root", crl=CrlConfig(url=CRL_URL, days=3)))
    backend = LocalBackend(store)
    try:
        pems, serials = {}, {}
        for name in ("a", "b", "c", "d", "e"):
            arn = backend.issue_certificate(request(ca))
            pems[name] = backend.get_certificate(ca, arn).certificate
            serials[name] = arn.rsplit("/", 1)[1]
        chain = backend.get_certificate(ca, arn).chain
        reasons = {"a": "KEY_COMPROMISE", "c": "UNSPECIFIED", "e": "CESSATION_OF_OPERATION"}
        for name, reason in reasons.items():
            backend.revoke_certificate(ca, serials[name], reason)  # type: ignore[arg-type]
    finally:
        backend.close()
    yield Revoked(store, ca, pems, chain, serials, reasons)


def test_a_ca_with_crls_names_its_crl_in_every_certificate_it_issues(revoked: Revoked) -> None:
    ca_id = revoked.ca.rsplit("/", 1)[1]
    for pem in revoked.certificates.values():
        found = ext(load(pem), ExtensionOID.CRL_DISTRIBUTION_POINTS)
        assert found is not None and not found.critical
        assert isinstance(found.value, x509.CRLDistributionPoints)
        [point] = list(found.value)
        assert point.full_name == [x509.UniformResourceIdentifier(f"{CRL_URL}/{ca_id}.crl")]


def test_a_subordinate_of_a_ca_with_crls_carries_its_parents_crl_but_its_own_certificates_none(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    root = create_authority(store, NewAuthority(common_name="Root", crl=CrlConfig(url="https://r.example/")))
    sub = create_authority(store, NewAuthority(common_name="Sub", parent_arn=root))
    point = ext(load(authority_certificate(store, sub)), ExtensionOID.CRL_DISTRIBUTION_POINTS)
    assert point is not None and f"https://r.example/{root.rsplit('/', 1)[1]}.crl" in str(point.value)
    assert ext(load(authority_certificate(store, root)), ExtensionOID.CRL_DISTRIBUTION_POINTS) is None
    backend = LocalBackend(store)
    try:
        leaf = backend.get_certificate(sub, backend.issue_certificate(request(sub))).certificate
    finally:
        backend.close()
    assert ext(load(leaf), ExtensionOID.CRL_DISTRIBUTION_POINTS) is None


def _crl_files(cli: Cli, revoked: Revoked, folder: Path) -> tuple[Path, Path, dict[str, object]]:
    """`ca crl` twice: DER with -o (its JSON answer too), and PEM with --pem -o."""
    der, pem = folder / "ca.crl", folder / "ca-crl.pem"
    result = cli("ca", "crl", "--store", revoked.store, revoked.ca, "-o", der)
    assert result.code == 0, result.err
    as_pem = cli("ca", "crl", "--store", revoked.store, "--certificate-authority-arn", revoked.ca, "--pem", "-o", pem)
    assert as_pem.code == 0 and as_pem.out.startswith("-----BEGIN X509 CRL-----"), as_pem.err
    return der, pem, json.loads(result.out)


def test_ca_crl_lists_exactly_the_revoked_serials_with_their_reasons(
    cli: Cli, revoked: Revoked, tmp_path: Path
) -> None:
    der, _, answer = _crl_files(cli, revoked, tmp_path)
    text = openssl("crl", "-inform", "DER", "-in", str(der), "-noout", "-text")
    assert text.returncode == 0, text.stderr
    listed = re.findall(r"Serial Number: ([0-9A-F]+)", text.stdout)
    assert sorted(int(s, 16) for s in listed) == sorted(int(revoked.serials[n], 16) for n in revoked.reasons)
    assert "Key Compromise" in text.stdout and "Cessation Of Operation" in text.stdout
    assert text.stdout.count("CRL Reason Code") == 2  # none for UNSPECIFIED
    assert "Version 2 (0x1)" in text.stdout and "Authority Key Identifier" in text.stdout
    assert sorted(r["Serial"] for r in answer["RevokedCertificates"]) == sorted(  # type: ignore[attr-defined]
        revoked.serials[n] for n in revoked.reasons
    )


def test_openssl_refuses_the_revoked_certificates_and_accepts_the_others(
    cli: Cli, revoked: Revoked, tmp_path: Path
) -> None:
    _, pem, _ = _crl_files(cli, revoked, tmp_path)
    for name, leaf in revoked.certificates.items():
        result = openssl_verify(tmp_path, leaf, revoked.chain, "-crl_check", "-CRLfile", str(pem))
        if name in revoked.reasons:
            assert result.returncode != 0 and "certificate revoked" in result.stdout + result.stderr, name
        else:
            assert result.returncode == 0, (name, result.stdout, result.stderr)


def test_pkilint_finds_nothing_wrong_with_the_crl(cli: Cli, revoked: Revoked, tmp_path: Path) -> None:
    der, _, _ = _crl_files(cli, revoked, tmp_path)
    lint = subprocess.run(
        [str(LINT_CRL), "lint", "-t", "CRL", "-p", "PKIX", "-s", "NOTICE", str(der)],
        capture_output=True, text=True, timeout=60,
    )
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr


def test_the_crl_is_signed_by_the_ca_numbered_upwards_and_valid_for_its_days(revoked: Revoked) -> None:
    ca = load(authority_certificate(revoked.store, revoked.ca))
    now = datetime.now(UTC).replace(microsecond=0)
    first = certificate_revocation_list(revoked.store, revoked.ca, now=now)
    second = certificate_revocation_list(revoked.store, revoked.ca, now=now)
    assert first.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    assert first.signature_hash_algorithm is not None and first.signature_hash_algorithm.name == "sha256"
    assert first.issuer == ca.subject
    numbers = [c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number for c in (first, second)]
    assert numbers[1] == numbers[0] + 1
    assert first.last_update_utc == now and first.next_update_utc == now + timedelta(days=3)
    aki = first.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    by_serial = {format(r.serial_number, "032x"): r for r in first}
    entry = by_serial[revoked.serials["a"]]
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    assert not list(by_serial[revoked.serials["c"]].extensions)


def test_an_rsa_ca_signs_its_crl_with_rsa_and_seven_days_by_default(tmp_path: Path) -> None:
    store = tmp_path / "store"
    ca = create_authority(store, NewAuthority(common_name="RSA", key_algorithm="RSA_2048", crl=CrlConfig()))
    crl = certificate_revocation_list(store, ca)
    assert crl.is_signature_valid(load(authority_certificate(store, ca)).public_key())  # type: ignore[arg-type]
    assert crl.next_update_utc is not None and crl.next_update_utc - crl.last_update_utc == timedelta(days=7)


def test_a_revoked_certificate_is_listed_until_it_expires_then_in_one_crl_more(tmp_path: Path) -> None:
    store = tmp_path / "store"
    ca = create_authority(store, NewAuthority(common_name="Expiring", crl=CrlConfig()))
    clock = SettableClock()
    backend = LocalBackend(store, clock=clock)
    try:
        short = backend.issue_certificate(request(ca, Validity={"Value": 1, "Type": "DAYS"})).rsplit("/", 1)[1]
        long = backend.issue_certificate(request(ca)).rsplit("/", 1)[1]
        for serial in (short, long):
            backend.revoke_certificate(ca, serial, "SUPERSEDED")
    finally:
        backend.close()

    def listed(at: datetime) -> set[str]:
        return {format(r.serial_number, "032x") for r in certificate_revocation_list(store, ca, now=at)}

    assert listed(clock.now) == {short, long}
    assert listed(clock.now + timedelta(days=2)) == {short, long}  # expired since the last CRL: one more
    assert listed(clock.now + timedelta(days=3)) == {long}


def test_ca_create_with_crl_options_and_their_usage_errors(cli: Cli, tmp_path: Path) -> None:
    made = cli("ca", "create", "--store", tmp_path / "s", "--common-name", "X", "--crl", "--crl-url",
               "http://h.example/c", "--crl-days", "2")
    assert made.code == 0, made.err
    arn = json.loads(made.out)["CertificateAuthorityArn"]
    crl = cli("ca", "crl", "--store", tmp_path / "s", arn)
    answer = json.loads(crl.out)
    assert answer["CrlNumber"] == 1 and answer["RevokedCertificates"] == []
    assert datetime.fromisoformat(answer["NextUpdate"]) - datetime.fromisoformat(answer["ThisUpdate"]) == timedelta(
        days=2
    )
    assert cli("ca", "create", "--store", tmp_path / "s", "--common-name", "Y", "--crl-url", "http://h/").code == 2
    assert cli("ca", "create", "--store", tmp_path / "s", "--common-name", "Y", "--crl", "--crl-days", "0").code == 2
    bad_url = cli("ca", "create", "--store", tmp_path / "s", "--common-name", "Y", "--crl", "--crl-url", "ftp://h/")
    assert bad_url.code != 0 and "not an http(s) URL" in bad_url.err
