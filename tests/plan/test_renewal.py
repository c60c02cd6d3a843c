"""Re-runs converge: what `decide` makes of a certificate on disk and the journal, and the same
through `apply` with the local CA: renewal windows, --force, changed requests, key rotation,
--detailed-exitcode, pending keys left by an interrupted run, and shards."""

from __future__ import annotations

import io
import json
import re
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from pca_batch import schema
from pca_batch.manifest.load import load_manifest
from pca_batch.model import ApplyOptions
from pca_batch.pki import keys
from pca_batch.plan import converge, renewal, tokens
from pca_batch.plan.renewal import IssuedIndex, decide, parse_renew_before
from pca_batch.run.journal import JournalRecord
from pca_batch.run.session import execute
from tests.support.common import Cli, CliResult, make_csr_pem
from tests.support.fault_backend import CA_ARN as FAULT_CA
from tests.support.fault_backend import FaultBackend, Script, SimulatedCrash

CA = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/0a0b0c0d-1111-2222-3333-444455556666"
OTHER_CA = CA.replace("0a0b0c0d", "0e0e0e0e")
DAY = timedelta(days=1)


def spki(obj: Any) -> bytes:
    return obj.public_key().public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# == renewal.decide on its own ==================================================================

_CA_KEY = ec.generate_private_key(ec.SECP256R1())
_LEAF_KEY = ec.generate_private_key(ec.SECP256R1())
T0 = datetime(2030, 1, 1, tzinfo=UTC)
REQUEST = {"CertificateAuthorityArn": CA, "Validity": {"Value": 30, "Type": "DAYS"}}
TOKEN = tokens.token_for("svc", REQUEST)


def write_cert(path: Path, *, serial: int = 0x1234ABCD, days: float = 30, cn: str = "svc.example",
               dns: tuple[str, ...] = ("svc.example",), key: ec.EllipticCurvePrivateKey = _LEAF_KEY) -> Path:
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Unit Root")]))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(T0)
        .not_valid_after(T0 + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
        .sign(_CA_KEY, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def record(serial: int = 0x1234ABCD, *, token: str = TOKEN, ca: str = CA, name: str = "svc") -> JournalRecord:
    return JournalRecord(name=name, token=token, ca_arn=ca, certificate_arn=f"{ca}/certificate/{serial:032x}",
                         time="2030-01-01T00:00:00Z")


WANTED = renewal.Wanted(
    name="svc", ca_arn=CA, request=REQUEST, token=TOKEN, explicit_token=False,
    spki=keys.spki_sha256(_LEAF_KEY), subject="CN=svc.example", sans=("DNS:svc.example",),
)


def judge(cert: Path | None, records: list[JournalRecord], *, now: datetime, force: bool = False,
          key: Any = _LEAF_KEY, ca: str = CA, **changes: Any) -> renewal.Decision:
    """``decide`` for WANTED with ``changes`` (Wanted's fields), the key ``key`` and the CA ``ca``."""
    wanted = replace(WANTED, spki=keys.spki_sha256(key), ca_arn=ca, **changes)
    return decide(wanted, cert, IssuedIndex(records), now=now, force=force)


@pytest.mark.parametrize(("text", "expected"), [
    (None, ("share", 1 / 3)), ("30d", ("abs", 30 * 86400.0)), ("12h", ("abs", 43200.0)),
    ("90m", ("abs", 5400.0)), ("33%", ("share", 0.33)), ("2.5d", ("abs", 216000.0)),
])
def test_renew_before_reads_durations_and_shares(text: str | None, expected: tuple[str, float]) -> None:
    kind, amount = parse_renew_before(text)
    assert kind == expected[0] and amount == pytest.approx(expected[1])


@pytest.mark.parametrize("text", ["3w", "0%", "100%", "150%", "soon", ""])
def test_renew_before_refuses_what_it_cannot_mean(text: str) -> None:
    with pytest.raises(renewal.RenewBeforeError):
        parse_renew_before(text)


def test_by_default_a_certificate_is_renewed_once_two_thirds_of_its_life_are_gone(tmp_path: Path) -> None:
    cert = write_cert(tmp_path / "c.pem", days=30)
    kept = judge(cert, [record()], now=T0 + 19 * DAY)  # 11 days left of 30: more than a third
    renewed = judge(cert, [record()], now=T0 + 21 * DAY)  # 9 days left
    assert (kept.action, kept.reason) == ("unchanged", "valid until 2030-01-31")
    assert (renewed.action, renewed.reason) == ("renew", "expires in 9 days")
    assert renewed.salt == format(0x1234ABCD, "032x")  # the serial of the certificate it replaces


@pytest.mark.parametrize(("renew_before", "now", "action", "reason"), [
    ("10d", T0 + 19 * DAY, "unchanged", "valid until 2030-01-31"),
    ("10d", T0 + 21 * DAY, "renew", "expires in 9 days"),
    ("40d", T0, "renew", "expires in 30 days"),  # a window longer than the lifetime: at once
    ("99%", T0 + timedelta(hours=7), "unchanged", "valid until 2030-01-31"),  # under 1% of 30 days gone
    ("99%", T0 + timedelta(hours=8), "renew", "expires in 30 days"),
    ("1%", T0 + 29 * DAY, "unchanged", "valid until 2030-01-31"),
    ("12h", T0 + 29 * DAY + timedelta(hours=13), "renew", "expires in 11 hours"),
    ("1%", T0 + 31 * DAY, "renew", "expired"),
])
def test_renewal_window(tmp_path: Path, renew_before: str, now: datetime, action: str, reason: str) -> None:
    decision = judge(write_cert(tmp_path / "c.pem"), [record()], now=now, renew_before=renew_before)
    assert (decision.action, decision.reason) == (action, reason)


def test_what_makes_an_entry_renew(tmp_path: Path) -> None:
    cert = write_cert(tmp_path / "c.pem")
    now = T0 + DAY
    other_key = ec.generate_private_key(ec.SECP256R1())

    def why(**kwargs: Any) -> tuple[str, str]:
        d = judge(kwargs.pop("cert", cert), kwargs.pop("records", [record()]), now=now, **kwargs)
        return d.action, d.reason

    assert why() == ("unchanged", "valid until 2030-01-31")
    assert why(cert=None) == ("issue", "no certificate output to compare with")
    assert why(cert=tmp_path / "none.pem") == ("issue", "no certificate yet")
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    assert why(cert=tmp_path / "junk.pem") == (
        "issue", "the certificate file does not hold a readable certificate")
    assert why(records=[]) == ("renew", "the journal has no record of issuing this certificate")
    assert why(records=[record(name="someone-else")]) == (
        "renew", "the journal has no record of issuing this certificate")
    assert why(ca=OTHER_CA) == ("renew", "the CA changed")
    assert why(token=tokens.token_for("svc", {**REQUEST, "Validity": {"Value": 20, "Type": "DAYS"}})) == (
        "renew", "the request changed")
    assert why(key=other_key) == ("renew", "the key changed")
    assert why(subject="CN=other.example") == ("renew", "the subject changed")
    assert why(sans=("DNS:svc.example", "DNS:new.example")) == ("renew", "the SANs changed")
    # ApiPassthrough sets them: not compared
    assert why(sans=None, subject=None) == ("unchanged", "valid until 2030-01-31")
    assert why(force=True) == ("renew", "forced (--force)")


def test_a_renewed_certificate_is_known_by_its_salted_token(tmp_path: Path) -> None:
    """The journal holds the renewal under the token salted with the serial it replaced."""
    first, second = 0x1111, 0x2222
    salted = renewal.renewal_token(TOKEN, False, "svc", REQUEST, format(first, "032x"))
    assert salted != TOKEN and salted.startswith("pb1-") and len(salted) <= 36
    cert = write_cert(tmp_path / "c.pem", serial=second)

    decision = judge(cert, [record(first), record(second, token=salted)], now=T0 + DAY)

    assert (decision.action, decision.record and decision.record.token) == ("unchanged", salted)
    # a token salted with a serial this entry never had is not this request's
    stranger = renewal.renewal_token(TOKEN, False, "svc", REQUEST, "ffff")
    assert judge(cert, [record(first), record(second, token=stranger)], now=T0 + DAY).reason == (
        "the request changed")


def test_an_explicit_token_is_salted_within_the_api_bound() -> None:
    explicit = "x" * 36
    salted = renewal.renewal_token(explicit, True, "svc", REQUEST, "0123456789abcdef")
    assert salted != explicit and len(salted) == 36 and salted.endswith("~01234567")
    assert renewal.renewal_token(explicit, True, "svc", REQUEST, "") == explicit


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(["missing", "no-folder", "folder", "valid", "garbage", "empty", "symlink-to-nothing"]),
       force=st.booleans(), recorded=st.booleans(), days=st.sampled_from([1.0, 30.0]))
def test_a_missing_file_is_judged_the_same_with_and_without_the_shortcut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, force: bool, recorded: bool, days: float
) -> None:
    """decide's shortcut for a certificate file that is not there (the usual new entry) against
    reading it as before, whatever is (or is not) at the path."""
    import shutil

    base = tmp_path / "case"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir()
    cert = base / ("absent/cert.pem" if where == "no-folder" else "cert.pem")
    if where == "folder":
        cert.mkdir()
    elif where == "valid":
        write_cert(cert, days=days)
    elif where == "garbage":
        cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    elif where == "empty":
        cert.write_bytes(b"")
    elif where == "symlink-to-nothing":
        cert.symlink_to(base / "nowhere.pem")
    records = [record()] if recorded else []
    fast = judge(cert, records, now=T0 + DAY, force=force)
    with monkeypatch.context() as patch:
        patch.setattr(renewal, "_surely_missing", lambda path: False)
        slow = judge(cert, records, now=T0 + DAY, force=force)
    def seen(decision: renewal.Decision) -> tuple[Any, ...]:  # the certificate read, by its serial
        existing = decision.existing.serial if decision.existing is not None else None
        return replace(decision, existing=None), existing

    assert seen(fast) == seen(slow)


# == apply and plan with the local CA ===========================================================

HEAD = f"""\
version: 1
backend:
  type: local
  store: store
  authorities:
    - {{arn: {CA}, common_name: Lifecycle Root}}
defaults:
  CertificateAuthorityArn: {CA}
  SigningAlgorithm: SHA256WITHECDSA
  Validity: {{Value: 30, Type: DAYS}}
certificates:
"""


def key_entry(name: str, *extra: str, rotate: str | None = None) -> str:
    lines = [f"  - name: {name}",
             f"    key: {{subject: {{CommonName: {name}.example}}, dns_names: [{name}.example]"
             + (f", rotate: {rotate}" if rotate else "") + "}",
             f"    output: {{certificate: out/{name}.pem, private_key: out/{name}.key}}"]
    return "\n".join(lines + [f"    {e}" for e in extra]) + "\n"


def csr_entry(folder: Path, name: str, *extra: str, key: Any = None) -> str:
    (folder / "csr").mkdir(parents=True, exist_ok=True)
    csr = folder / "csr" / f"{name}.csr"
    if key is not None or not csr.exists():
        csr.write_bytes(make_csr_pem(f"{name}.example", (f"{name}.example",), key=key))
    lines = [f"  - name: {name}", f"    Csr: file://csr/{name}.csr",
             f"    output: {{certificate: out/{name}.pem}}"]
    return "\n".join(lines + [f"    {e}" for e in extra]) + "\n"


def manifest(folder: Path, *entries: str, head: str = HEAD) -> Path:
    path = folder / "m.yaml"
    path.write_text(head + "".join(entries))
    return path


def report_of(path: Path) -> dict[str, dict[str, Any]]:
    data = json.loads(path.read_text())
    schema.validator(schema.REPORT).validate(data)
    return {r["name"]: r for r in data["results"]}


def journal(folder: Path) -> list[dict[str, Any]]:
    path = folder / ".pca-batch" / "journal.jsonl"
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in lines if r["event"] != "key"]  # certificates and revocations (keys: tests/state)


def cert_of(folder: Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((folder / "out" / f"{name}.pem").read_bytes())


def plan_lines(result: CliResult) -> dict[str, str]:
    """Entry name -> the action the plan shows for it ("~ renew (expires in 2 days)")."""
    out = {}
    for line in result.out.splitlines():
        m = re.match(r"^([+~=!x<] \w+(?: \(.*?\))?) (\S+) (?:ca|serial)=", line)
        if m:
            out[m.group(2)] = m.group(1)
    return out


def apply(cli: Cli, path: Path, *args: str | Path) -> dict[str, dict[str, Any]]:
    report = path.parent / "r.json"
    result = cli("apply", path, "--report", report, *args)
    assert result.code == 0, result.out + result.err
    return report_of(report)


def test_a_second_apply_changes_nothing_and_the_plan_says_so(cli: Cli, tmp_path: Path) -> None:
    path = manifest(tmp_path, key_entry("k"), csr_entry(tmp_path, "c"))
    first = cli("apply", path, "--plan", "--detailed-exitcode")
    assert first.code == 2 and plan_lines(first) == {"k": "+ issue", "c": "+ issue"}
    issued = apply(cli, path)
    files = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}

    plan = cli("apply", path, "--plan", "--detailed-exitcode", "--report", tmp_path / "plan.json")
    again = apply(cli, path)

    assert plan.code == 0, plan.err
    until = (datetime.now(UTC) + 30 * DAY).strftime("%Y-%m-%d")
    assert plan_lines(plan) == dict.fromkeys(("k", "c"), f"= unchanged (valid until {until})")
    assert "Plan: 2 entries, 2 unchanged" in plan.out
    assert {n: (r["status"], r["serial"], r["certificate_arn"]) for n, r in again.items()} == {
        n: ("unchanged", r["serial"], r["certificate_arn"]) for n, r in issued.items()}
    assert {n: r["idempotency_token"] for n, r in report_of(tmp_path / "plan.json").items()} == {
        n: r["idempotency_token"] for n, r in issued.items()}
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == files
    # not even rewritten
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()} == mtimes
    assert len(journal(tmp_path)) == 2


def test_renew_before_longer_than_the_lifetime_renews_at_once(cli: Cli, tmp_path: Path) -> None:
    path = manifest(tmp_path, key_entry("short", "Validity: {Value: 2, Type: DAYS}", "renew_before: 3d"),
                    key_entry("long"))
    first = apply(cli, path)

    plan = cli("apply", path, "--plan", "--detailed-exitcode")
    second = apply(cli, path)

    assert plan.code == 2
    assert plan_lines(plan)["short"] == "~ renew (expires in 2 days)"
    assert plan_lines(plan)["long"].startswith("= unchanged")
    assert (second["short"]["status"], second["long"]["status"]) == ("issued", "unchanged")
    assert second["short"]["serial"] != first["short"]["serial"]
    assert cert_of(tmp_path, "short").serial_number == int(second["short"]["serial"], 16)


def test_renew_before_as_a_share_of_the_lifetime(cli: Cli, tmp_path: Path) -> None:
    # NotBefore is an hour before issuance: of a 2-day certificate, 2% of the lifetime is gone at once
    two_days = "Validity: {Value: 2, Type: DAYS}"
    path = manifest(tmp_path, csr_entry(tmp_path, "most", two_days, "renew_before: 99%"),
                    csr_entry(tmp_path, "half", two_days, "renew_before: 50%"),
                    csr_entry(tmp_path, "little", "renew_before: 5%"))
    first = apply(cli, path)

    plan = cli("apply", path, "--plan")
    second = apply(cli, path)

    assert plan_lines(plan)["most"] == "~ renew (expires in 2 days)"
    assert plan_lines(plan)["half"].startswith("= unchanged (valid until ")
    assert plan_lines(plan)["little"].startswith("= unchanged (valid until ")
    assert {n: r["status"] for n, r in second.items()} == {
        "most": "issued", "half": "unchanged", "little": "unchanged"}
    assert second["most"]["serial"] != first["most"]["serial"]


def test_by_default_an_entry_renews_in_the_last_third_of_its_lifetime(cli: Cli, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    start, end = int((now - 25 * DAY).timestamp()), int((now + 10 * DAY).timestamp())
    window = [f"ValidityNotBefore: {{Value: {start}, Type: ABSOLUTE}}",
              f"Validity: {{Value: {end}, Type: ABSOLUTE}}"]
    path = manifest(tmp_path, csr_entry(tmp_path, "aged", *window),
                    csr_entry(tmp_path, "aged-5d", *window, "renew_before: 5d"))
    apply(cli, path)
    cert = cert_of(tmp_path, "aged")
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == 35 * DAY  # 10 days left: under a third

    plan = cli("apply", path, "--plan")

    assert plan_lines(plan)["aged"] == "~ renew (expires in 10 days)"
    assert plan_lines(plan)["aged-5d"].startswith("= unchanged")


def test_force_renews_everything_with_a_token_that_differs_from_the_one_it_replaces(
    cli: Cli, tmp_path: Path
) -> None:
    path = manifest(tmp_path, csr_entry(tmp_path, "c"), key_entry("k"), key_entry("kept", rotate="never"))
    first = apply(cli, path)

    plan = cli("apply", path, "--plan", "--force", "--detailed-exitcode")
    forced = apply(cli, path, "--force")
    settled = apply(cli, path)

    assert plan.code == 2 and set(plan_lines(plan).values()) == {"~ renew (forced (--force))"}
    assert {r["status"] for r in forced.values()} == {"issued"}
    by_name: dict[str, list[dict[str, Any]]] = {}
    for line in journal(tmp_path):
        by_name.setdefault(line["name"], []).append(line)
    for name in ("c", "k", "kept"):
        old, new = by_name[name]  # exactly two issuances each
        assert old["token"] != new["token"]
        assert old["certificate_arn"] != new["certificate_arn"]
        assert forced[name]["serial"] != first[name]["serial"]
        assert forced[name]["idempotency_token"] == new["token"]
        assert cert_of(tmp_path, name).serial_number == int(forced[name]["serial"], 16)
    # the renewed certificates are recognised: nothing more happens
    assert {r["status"] for r in settled.values()} == {"unchanged"}
    assert len(journal(tmp_path)) == 6


def test_a_changed_request_renews(cli: Cli, tmp_path: Path) -> None:
    path = manifest(tmp_path, csr_entry(tmp_path, "c"), key_entry("k"), csr_entry(tmp_path, "same"))
    first = apply(cli, path)

    path = manifest(tmp_path, csr_entry(tmp_path, "c", "Validity: {Value: 20, Type: DAYS}"),
                    key_entry("k", "Validity: {Value: 20, Type: DAYS}"), csr_entry(tmp_path, "same"))
    plan = cli("apply", path, "--plan")
    second = apply(cli, path)
    third = apply(cli, path)

    assert plan_lines(plan)["c"] == "~ renew (the request changed)"
    assert plan_lines(plan)["k"] == "~ renew (the request changed)"
    assert plan_lines(plan)["same"].startswith("= unchanged")
    for name in ("c", "k"):
        assert second[name]["status"] == "issued" and second[name]["serial"] != first[name]["serial"]
        cert = cert_of(tmp_path, name)
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == 20 * DAY + timedelta(hours=1)
    assert second["same"]["status"] == "unchanged"
    assert {r["status"] for r in third.values()} == {"unchanged"}


def test_a_changed_csr_file_renews_with_the_new_key(cli: Cli, tmp_path: Path) -> None:
    path = manifest(tmp_path, csr_entry(tmp_path, "c"))
    first = apply(cli, path)
    new_key = ec.generate_private_key(ec.SECP256R1())
    csr_entry(tmp_path, "c", key=new_key)  # the same name, subject and SANs: only the key is new

    plan = cli("apply", path, "--plan")
    second = apply(cli, path)

    assert plan_lines(plan)["c"].startswith("~ renew (")
    assert second["c"]["status"] == "issued" and second["c"]["serial"] != first["c"]["serial"]
    assert spki(cert_of(tmp_path, "c")) == spki(new_key)


@pytest.mark.parametrize("entry", ["csr", "never"])
def test_a_lost_certificate_file_comes_back_as_the_newest_issued_not_the_one_replaced(
    cli: Cli, tmp_path: Path, entry: str
) -> None:
    path = manifest(tmp_path, csr_entry(tmp_path, "e") if entry == "csr" else key_entry("e", rotate="never"))
    first = apply(cli, path)
    renewed = apply(cli, path, "--force")
    assert renewed["e"]["serial"] != first["e"]["serial"]
    (tmp_path / "out" / "e.pem").unlink()

    plan = cli("apply", path, "--plan")
    back = apply(cli, path)

    assert plan_lines(plan)["e"].startswith("< fetch (on record in the state as serial ")  # not issued
    assert plan_lines(plan)["e"].replace(":", "").endswith(
        f"serial {renewed['e']['serial']} fetched again, no IssueCertificate call)")
    assert back["e"]["serial"] == renewed["e"]["serial"]  # fetched again, not the replaced one
    assert cert_of(tmp_path, "e").serial_number == int(renewed["e"]["serial"], 16)
    assert len(journal(tmp_path)) == 2 and apply(cli, path)["e"]["status"] == "unchanged"

    (tmp_path / "out" / "e.pem").unlink()
    forced = apply(cli, path, "--force")  # --force: a new one, under a token not used before

    assert forced["e"]["serial"] not in (first["e"]["serial"], renewed["e"]["serial"])
    tokens_used = [line["token"] for line in journal(tmp_path)]
    assert len(tokens_used) == len(set(tokens_used)) == 3
    assert apply(cli, path)["e"]["status"] == "unchanged"


def test_a_lost_certificate_of_a_rotating_key_entry_gets_a_new_key_and_certificate(
    cli: Cli, tmp_path: Path
) -> None:
    path = manifest(tmp_path, key_entry("e"))
    first = apply(cli, path)
    old_key = keys.load(tmp_path / "out" / "e.key", None)
    (tmp_path / "out" / "e.pem").unlink()

    again = apply(cli, path)

    key = keys.load(tmp_path / "out" / "e.key", None)
    assert again["e"]["serial"] != first["e"]["serial"]
    assert spki(cert_of(tmp_path, "e")) == spki(key) != spki(old_key)


@pytest.mark.parametrize(("rotate", "same_key"), [("always", False), ("never", True), (None, False)])
def test_rotate_decides_whether_a_renewal_gets_a_new_key(
    cli: Cli, tmp_path: Path, rotate: str | None, same_key: bool
) -> None:
    path = manifest(tmp_path, key_entry("k", rotate=rotate))
    apply(cli, path)
    key_before = keys.load(tmp_path / "out" / "k.key", None)
    cert_before = cert_of(tmp_path, "k")
    assert spki(cert_before) == spki(key_before)

    apply(cli, path, "--force")

    key_after = keys.load(tmp_path / "out" / "k.key", None)
    cert_after = cert_of(tmp_path, "k")
    assert cert_after.serial_number != cert_before.serial_number
    assert spki(cert_after) == spki(key_after)
    assert (spki(key_after) == spki(key_before)) is same_key
    assert not keys.pending_path(tmp_path / "out" / "k.key").exists()


def test_a_changed_key_algorithm_gets_a_new_key_even_with_rotate_never(cli: Cli, tmp_path: Path) -> None:
    path = manifest(tmp_path, key_entry("k", rotate="never"))
    apply(cli, path)
    path.write_text(path.read_text().replace("key: {", "key: {algorithm: EC_secp384r1, "))

    plan = cli("apply", path, "--plan")
    renewed = apply(cli, path)

    assert plan_lines(plan)["k"].startswith("~ renew (")
    key = keys.load(tmp_path / "out" / "k.key", None)
    assert keys.algorithm_of(key) == "EC_secp384r1" and spki(cert_of(tmp_path, "k")) == spki(key)
    assert apply(cli, path)["k"]["status"] == "unchanged" and renewed["k"]["status"] == "issued"


def test_detailed_exitcode(cli: Cli, tmp_path: Path) -> None:
    path = manifest(tmp_path, key_entry("k"))
    assert cli("apply", path, "--plan").code == 0  # without the flag: 0 whatever is pending
    assert cli("apply", path, "--plan", "--detailed-exitcode").code == 2
    apply(cli, path)
    assert cli("apply", path, "--plan", "--detailed-exitcode").code == 0
    assert cli("apply", path, "--plan", "--detailed-exitcode", "--force").code == 2

    bad = manifest(tmp_path, key_entry("k"), "  - name: broken\n    key: {subject: {CommonName: b}}\n")
    invalid = cli("apply", bad, "--plan", "--detailed-exitcode")
    assert invalid.code == 1
    assert f"{bad}:16: broken: $.output: an entry with `key` needs output.certificate" in invalid.err
    assert cli("apply", bad, "--plan").code == 2  # without the flag: invalid input, as everywhere


def test_detailed_exitcode_of_a_manifest_that_does_not_load_is_1(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("version: 1\ncertificates: [\n")
    assert cli("apply", path, "--plan", "--detailed-exitcode").code == 1


def test_renew_before_in_defaults_applies_to_every_entry(cli: Cli, tmp_path: Path) -> None:
    head = HEAD.replace("defaults:\n", "defaults:\n  renew_before: 40d\n")
    path = manifest(tmp_path, csr_entry(tmp_path, "a"), csr_entry(tmp_path, "b", "renew_before: 1d"),
                    head=head)
    apply(cli, path)
    plan = cli("apply", path, "--plan")
    assert plan_lines(plan) == {"a": "~ renew (expires in 30 days)", "b": plan_lines(plan)["b"]}
    assert plan_lines(plan)["b"].startswith("= unchanged")


def test_a_share_of_100_percent_or_more_is_a_located_problem(cli: Cli, tmp_path: Path) -> None:
    path = manifest(tmp_path, csr_entry(tmp_path, "a", "renew_before: 150%"))
    result = cli("validate", path)
    assert result.code == 2 and f"{path}:15: a: $.renew_before:" in result.err


def test_an_explicit_token_never_pairs_a_new_key_with_an_old_certificate(cli: Cli, tmp_path: Path) -> None:
    path = manifest(tmp_path, key_entry("k", "IdempotencyToken: my-own-token"))
    refused = cli("validate", path)
    if refused.code == 2:  # one way to fix it
        assert "IdempotencyToken" in refused.err
        return
    apply(cli, path)
    (tmp_path / "out" / "k.pem").unlink()  # lost: the entry is issued again, for a new key
    apply(cli, path)
    assert spki(cert_of(tmp_path, "k")) == spki(keys.load(tmp_path / "out" / "k.key", None))


# -- crash safety: pending keys ---------------------------------------------------------------------


def test_a_pending_key_left_by_an_interrupted_run_is_the_one_certified(cli: Cli, tmp_path: Path) -> None:
    path = manifest(tmp_path, key_entry("k"))
    final = tmp_path / "out" / "k.key"
    left = keys.generate("EC_prime256v1")
    keys.save(keys.pending_path(final), left, None)  # as a run killed before its first call leaves it

    plan = cli("apply", path, "--plan")
    done = apply(cli, path)

    assert plan_lines(plan)["k"] == "+ issue"
    assert done["k"]["status"] == "issued"
    assert spki(cert_of(tmp_path, "k")) == spki(left)
    assert spki(keys.load(final, None)) == spki(left)
    assert not keys.pending_path(final).exists()
    assert apply(cli, path)["k"]["status"] == "unchanged"


def run_execute(path: Path, backend: FaultBackend, **options: Any) -> tuple[int, str]:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None, force_terminal=False)
    code = execute(load_manifest(str(path)), ApplyOptions(report=path.parent / "r.json", **options), console,
                   backend=backend, env={})
    return code, out.getvalue()


def test_a_run_killed_after_the_ca_issued_gets_that_certificate_for_the_pending_key(tmp_path: Path) -> None:
    """IssueCertificate succeeded, the process died before the journal heard of it: the next run
    finds the pending key, so the same public key and the same token, and AWS answers the
    certificate already issued instead of issuing a second one."""
    head = HEAD.replace(CA, FAULT_CA)
    path = manifest(tmp_path, key_entry("k"), head=head)
    crashed: list[str] = []

    def crash_once(request: Any) -> None:
        if not crashed:  # the first IssueCertificate issues, then the caller "dies"
            crashed.append(request["IdempotencyToken"])
            backend.script[request["IdempotencyToken"]] = Script(issue=["crash"])

    backend = FaultBackend(before_issue=crash_once)
    with pytest.raises(SimulatedCrash):
        run_execute(path, backend)
    final = tmp_path / "out" / "k.key"
    pending = keys.load(keys.pending_path(final), None)
    assert not final.exists() and not (tmp_path / "out" / "k.pem").exists() and journal(tmp_path) == []
    assert len(backend.issued) == 1

    code, _ = run_execute(path, backend)

    assert code == 0
    assert len(backend.issued) == 1  # no second certificate
    assert backend.issue_calls == {crashed[0]: 2}  # the same token, answered from AWS's token record
    assert spki(cert_of(tmp_path, "k")) == spki(pending)
    assert spki(keys.load(final, None)) == spki(pending) and stat.S_IMODE(final.stat().st_mode) == 0o600
    assert not keys.pending_path(final).exists()
    assert [line["token"] for line in journal(tmp_path)] == crashed
    assert report_of(tmp_path / "r.json")["k"]["status"] == "issued"


def test_a_run_killed_after_writing_the_certificate_moves_the_key_in_next_time(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = manifest(tmp_path, key_entry("k"))
    apply(cli, path)
    final = tmp_path / "out" / "k.key"
    old_key = keys.load(final, None)
    with monkeypatch.context() as m:
        # "killed" right after the certificate was written, before the key was moved in
        m.setattr(converge, "deliver_key", lambda entry: None)
        interrupted = apply(cli, path, "--force")
    new_key = keys.load(keys.pending_path(final), None)
    assert spki(cert_of(tmp_path, "k")) == spki(new_key) != spki(old_key)
    assert spki(keys.load(final, None)) == spki(old_key)  # the key in place does not match the certificate
    issued = len(journal(tmp_path))

    plan = cli("apply", path, "--plan")
    finished = apply(cli, path)

    assert plan_lines(plan)["k"].startswith("< fetch (finishing an interrupted renewal; on record in the state as ")
    assert finished["k"]["serial"] == interrupted["k"]["serial"]  # the same certificate, not a third one
    assert len(journal(tmp_path)) == issued
    assert spki(keys.load(final, None)) == spki(new_key) == spki(cert_of(tmp_path, "k"))
    assert not keys.pending_path(final).exists()
    assert apply(cli, path)["k"]["status"] == "unchanged"


# -- shards -------------------------------------------------------------------------------------------


def test_shards_of_apply_issue_disjoint_parts_that_cover_every_entry_once(cli: Cli, tmp_path: Path) -> None:
    names = [f"s{i:02d}" for i in range(12)]
    path = manifest(tmp_path, *(key_entry(n) for n in names))
    issued: list[str] = []
    for k in (1, 2, 3):
        planned = cli("apply", path, "--plan", "--shard", f"{k}/3", "--report", tmp_path / f"plan{k}.json")
        result = cli("apply", path, "--shard", f"{k}/3", "--report", tmp_path / f"r{k}.json")
        assert result.code == 0, result.err
        report = report_of(tmp_path / f"r{k}.json")
        assert {r["status"] for r in report.values()} == {"issued"}
        assert set(report) == set(report_of(tmp_path / f"plan{k}.json")) == set(plan_lines(planned))
        assert report, f"shard {k}/3 is empty: the split of 12 names is badly skewed"
        issued += report
    assert sorted(issued) == names  # disjoint, and together every entry once
    assert sorted(line["name"] for line in journal(tmp_path)) == names
    assert {r["status"] for r in apply(cli, path).values()} == {"unchanged"}
    # stable: the same split again, on another run
    again = cli("apply", path, "--plan", "--shard", "2/3", "--report", tmp_path / "again.json")
    assert again.code == 0 and set(report_of(tmp_path / "again.json")) == set(report_of(tmp_path / "r2.json"))


def test_certainly_issued_only_when_the_certificate_file_named_is_not_there(tmp_path: Path) -> None:
    from pca_batch.model import Entry, Outputs

    def entry(certificate: Path | None) -> Entry:
        return Entry(name="e", index=0, line=1, request={}, token="t", csr=None,
                     outputs=Outputs(certificate=certificate))

    present, dangling = tmp_path / "present.pem", tmp_path / "dangling.pem"
    present.write_text("anything")
    dangling.symlink_to(tmp_path / "nowhere.pem")
    assert converge.certainly_issued(entry(tmp_path / "missing.pem"))
    assert not converge.certainly_issued(entry(present))  # may well be unchanged: converge reads it
    assert not converge.certainly_issued(entry(dangling))  # a file is named there: converge decides
    assert not converge.certainly_issued(entry(None))  # the journal decides: it may be unchanged
