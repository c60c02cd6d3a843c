"""`pca-batch apply --prune` and `revoke_replaced` with the aws backend, over real HTTP against
moto's server through the fault proxy.

As in test_aws_revoke (whose helpers these tests share): moto's certificate ARNs are made to end
in the serial, as AWS's do (``serial_certificate_arns``), and the proxy answers a second
RevokeCertificate of a certificate RequestAlreadyProcessedException, as AWS does, counting the
calls per (CA, serial). ``moto_revocations`` is moto's own record of what it revoked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from pca_batch.acmpca import serial_hex
from tests.backends.test_aws_revoke import (
    ONLY_REVOKE,
    REVOKE,
    colon_hex,
    journal,
    read_report,
    request_as_sent,
    revoked_lines,
    seeded,
)
from tests.support.common import Cli
from tests.support.fault_proxy import FaultProxy, Faults, planned_faults, revoke_key
from tests.support.moto_server import AwsEntry, moto_revocations, serial_certificate_arns, write_aws_manifest

PRUNED = "CESSATION_OF_OPERATION"
KINDS = ("", ".chain", ".full")  # out/NAME.pem, out/NAME.chain.pem, out/NAME.full.pem (write_aws_manifest)


@pytest.fixture(scope="module", autouse=True)
def aws_shaped_arns(moto: str) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        serial_certificate_arns(mp)
        yield


# -- helpers ------------------------------------------------------------------


def issue(cli: Cli, folder: Path, endpoint: str, ca_arn: str, names: Iterable[str],
          extra: dict[str, str] | None = None) -> Path:
    """`pca-batch apply` of one entry per name at ``endpoint`` (``extra``: a line of pca-batch's
    own keys for some entries); the manifest's path."""
    manifest, _ = write_aws_manifest(folder, endpoint, [AwsEntry(n, ca_arn) for n in names])
    for name, line in (extra or {}).items():
        text = manifest.read_text()
        head = f"  - name: {name}\n"
        assert head in text
        manifest.write_text(text.replace(head, f"{head}    {line}\n"))
    result = cli("apply", manifest, "--max-rate", "0")
    assert result.code == 0, result.out + result.err
    return manifest


def drop_entries(manifest: Path, names: Iterable[str]) -> None:
    """Take the named entries out of the manifest, leaving every other line as it was (so the
    other entries' requests, and so their tokens, do not change)."""
    gone = set(names)
    kept: list[str] = []
    skipping = False
    for line in manifest.read_text().splitlines():
        if line.startswith("  - name: "):
            skipping = line.removeprefix("  - name: ") in gone
        if not skipping:
            kept.append(line)
    manifest.write_text("\n".join(kept) + "\n")


def files_of(folder: Path, name: str) -> list[Path]:
    return [folder / "out" / f"{name}{kind}.pem" for kind in KINDS]


def contents(folder: Path, names: Iterable[str]) -> dict[Path, bytes]:
    return {path: path.read_bytes() for name in names for path in files_of(folder, name)}


def serial_of(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def revoke_lines_planned(out: str) -> list[str]:
    """The names the plan (plain output) says apply --prune revokes."""
    return sorted(re.findall(r"^- revoke \(no longer in the manifest\) (\S+) ", out, re.M))


# -- apply --prune through faults ---------------------------------------------


def test_prune_through_throttling_and_dropped_answers_revokes_each_orphan_once_and_removes_its_files(
    cli: Cli, moto: str, ca_east: str, tmp_path: Path
) -> None:
    names = [f"pr-{i}" for i in range(8)]
    gone, staying = names[1:8:3], [n for n in names if n not in names[1:8:3]]  # pr-1, pr-4, pr-7
    with FaultProxy(moto) as proxy:
        manifest = issue(cli, tmp_path, proxy.endpoint, ca_east, names)
        serials = {n: serial_of(tmp_path / "out" / f"{n}.pem") for n in names}
        keys = {n: revoke_key(ca_east, colon_hex(serials[n])) for n in names}
        kept_files = contents(tmp_path, staying)
        drop_entries(manifest, gone)
        faults = seeded(
            Faults(throttle=0.3, server_error=0.1, drop=0.35, max_faults_per_key=2, operations=ONLY_REVOKE),
            [keys[n] for n in gone],
            {"throttle", "drop"},
        )
        plans = {n: planned_faults(faults, REVOKE, keys[n]) for n in gone}
        proxy.faults = faults
        proxy.reset_stats()

        plan_before = cli("apply", manifest, "--plan", "--prune", "--detailed-exitcode")
        assert proxy.snapshot()["calls"] == {}  # every entry is unchanged, and a plan revokes nothing
        pruned = cli("apply", manifest, "--prune", "--report", tmp_path / "r.json")
        stats = proxy.snapshot()
        journal_after = (tmp_path / ".pca-batch" / "journal.jsonl").read_bytes()
        plan_after = cli("apply", manifest, "--plan", "--prune", "--detailed-exitcode")
        again = cli("apply", manifest, "--prune", "--report", tmp_path / "again.json")
        stats_again = proxy.snapshot()

    # the plan before: three revocations pending (exit 2), by name
    assert plan_before.code == 2, plan_before.out + plan_before.err
    assert revoke_lines_planned(plan_before.out) == gone
    assert "Plan: 5 entries, 5 unchanged; 3 to revoke (no longer in the manifest)" in plan_before.out

    assert pruned.code == 0, pruned.out + pruned.err
    report = read_report(tmp_path / "r.json")
    assert {n: (r["status"], r["action"], r["serial"], r["revocation_reason"], r["error"])
            for n, r in report.items() if n in gone} == {
        n: ("revoked", "revoke", serial_hex(serials[n]), PRUNED, None) for n in gone
    }  # fmt: skip
    assert {n: r["attempts"] for n, r in report.items() if n in gone} == {n: len(plans[n]) + 1 for n in gone}
    assert {n: r["status"] for n, r in report.items() if n not in gone} == dict.fromkeys(staying, "unchanged")
    for name in gone:
        assert re.search(rf"^revoked\s+{name}\s.*reason {PRUNED}\s+no longer in the manifest", pruned.out, re.M)

    # each orphan reached moto once, with its serial as colon hex and the prune's reason; a retry
    # after a lost answer met RequestAlreadyProcessedException and counted as done
    wanted = {keys[n]: request_as_sent(ca_east, serials[n], PRUNED) for n in gone}
    assert stats["revoke_forwarded"] == dict.fromkeys(wanted, 1)
    assert stats["revoke_last_forwarded"] == wanted
    assert stats["revoke_calls"] == {keys[n]: len(plans[n]) + 1 for n in gone}
    assert stats["revoke_already_processed"], "no dropped answer was retried: the faults proved nothing"
    assert {"throttle", "drop"} <= set(stats["injected"])
    assert sum(stats["injected"].values()) == sum(len(p) for p in plans.values())
    revoked = moto_revocations(ca_east)
    assert {n: revoked[colon_hex(s)]["revocation_reason"] for n, s in serials.items() if colon_hex(s) in revoked} == (
        dict.fromkeys(gone, PRUNED)
    )

    # one durable `revoked` line each; the orphans' files gone, the others' untouched
    assert sorted((r["name"], r["certificate_arn"], r["ca_arn"], r["reason"]) for r in revoked_lines(manifest)) == [
        (n, keys[n], ca_east, PRUNED) for n in gone
    ]
    assert [p for n in gone for p in files_of(tmp_path, n) if p.exists()] == []
    assert contents(tmp_path, staying) == kept_files

    # after it: nothing planned (exit 0), and a second prune makes no call at all
    assert plan_after.code == 0, plan_after.out + plan_after.err
    assert revoke_lines_planned(plan_after.out) == [] and "revoke" not in plan_after.out
    assert again.code == 0, again.out + again.err
    assert stats_again == stats
    assert (tmp_path / ".pca-batch" / "journal.jsonl").read_bytes() == journal_after
    assert {r["status"] for r in read_report(tmp_path / "again.json").values()} == {"unchanged"}
    assert contents(tmp_path, staying) == kept_files


# -- revoke_replaced ----------------------------------------------------------


class WatchingProxy(FaultProxy):
    """The fault proxy, noting for each RevokeCertificate it receives the serial of the leaf
    certificate (the first one) in the watched entries' certificate and full-chain files at that
    moment (their chain files hold the CA's certificate, which does not change)."""

    def __init__(self, upstream: str, folder: Path, names: Iterable[str]) -> None:
        super().__init__(upstream)
        self.watched = [folder / "out" / f"{n}{kind}.pem" for n in names for kind in ("", ".full")]
        self.seen: list[tuple[str, dict[str, int]]] = []

    def revoke(self, path: str, headers: list[tuple[str, str]], body: bytes, request: dict[str, Any]) -> Any:
        on_disk = {p.name: serial_of(p) for p in self.watched}
        self.seen.append((str(request.get("CertificateSerial")), on_disk))
        return super().revoke(path, headers, body, request)


def test_force_revokes_the_replaced_certificate_once_after_the_new_one_is_in_place(
    cli: Cli, moto: str, ca_east: str, tmp_path: Path
) -> None:
    proxy = WatchingProxy(moto, tmp_path, ["rotating"])
    with proxy:
        manifest = issue(cli, tmp_path, proxy.endpoint, ca_east, ["rotating", "plain"],
                         extra={"rotating": "revoke_replaced: SUPERSEDED"})
        old = {n: serial_of(tmp_path / "out" / f"{n}.pem") for n in ("rotating", "plain")}
        old_arn = revoke_key(ca_east, colon_hex(old["rotating"]))
        forced = cli("apply", manifest, "--force", "--report", tmp_path / "r.json")
        stats = proxy.snapshot()
        again = cli("apply", manifest, "--report", tmp_path / "again.json")
        stats_again = proxy.snapshot()

    assert forced.code == 0, forced.out + forced.err
    new = {n: serial_of(tmp_path / "out" / f"{n}.pem") for n in ("rotating", "plain")}
    assert all(new[n] != old[n] for n in new)

    # moto revoked the old certificate of `rotating` only, once, for SUPERSEDED ...
    revoked = moto_revocations(ca_east)
    assert revoked[colon_hex(old["rotating"])]["revocation_reason"] == "SUPERSEDED"
    assert {colon_hex(new["rotating"]), colon_hex(old["plain"]), colon_hex(new["plain"])}.isdisjoint(revoked)
    assert stats["revoke_forwarded"] == {old_arn: 1}
    assert stats["revoke_last_forwarded"] == {old_arn: request_as_sent(ca_east, old["rotating"], "SUPERSEDED")}
    # ... when every file of the entry already held the new certificate
    assert proxy.seen == [(colon_hex(old["rotating"]), {f"rotating{k}.pem": new["rotating"] for k in ("", ".full")})]

    rows = read_report(tmp_path / "r.json")
    assert rows["rotating"]["status"] == "issued"
    assert rows["rotating"]["revoked_replaced"] == [
        {"certificate_arn": old_arn, "serial": serial_hex(old["rotating"]), "revocation_reason": "SUPERSEDED"}
    ]
    assert (rows["plain"]["status"], rows["plain"]["revoked_replaced"]) == ("issued", [])
    assert re.search(rf"^revoked\s+rotating\s.*serial {serial_hex(old['rotating'])}\s+reason SUPERSEDED\s+"
                     rf"replaced by serial {serial_hex(new['rotating'])}", forced.out, re.M), forced.out
    last_issued = [r for r in journal(manifest) if r["event"] == "issued" and r["name"] == "rotating"][-1]
    assert last_issued["replaces"] == old_arn
    assert [(r["name"], r["certificate_arn"], r["reason"]) for r in revoked_lines(manifest)] == [
        ("rotating", old_arn, "SUPERSEDED")
    ]

    # a later apply has nothing left to revoke, and calls nothing
    assert again.code == 0, again.out + again.err
    assert {r["status"] for r in read_report(tmp_path / "again.json").values()} == {"unchanged"}
    assert stats_again == stats
    assert len(proxy.seen) == 1


# -- faults that outlast the attempts -----------------------------------------


@dataclass(frozen=True)
class Outlasting:
    """Faults on every RevokeCertificate call, the error they end in, and whether the call reached moto."""

    faults: Faults
    code: str
    reached_moto: bool
    # throttles spend no attempt: the give-up path is the throttle budget's, here none at all
    options: tuple[str, ...] = ()
    calls: int = 2


EVERY_CALL = Faults(max_faults_per_key=None, operations=ONLY_REVOKE)


@pytest.mark.parametrize(
    "case",
    [
        Outlasting(replace(EVERY_CALL, throttle=1.0), "ThrottlingException", reached_moto=False,
                   options=("--throttle-timeout", "0"), calls=1),
        Outlasting(replace(EVERY_CALL, drop=1.0), "ConnectionError", reached_moto=True),  # answer lost
    ],
    ids=["throttle", "drop"],
)
def test_a_prune_whose_revocation_fails_keeps_the_files_and_a_rerun_finishes_it(
    cli: Cli, moto: str, ca_east: str, tmp_path: Path, case: Outlasting
) -> None:
    with FaultProxy(moto) as proxy:
        manifest = issue(cli, tmp_path, proxy.endpoint, ca_east, ["doomed", "spared"])
        serial = serial_of(tmp_path / "out" / "doomed.pem")
        key = revoke_key(ca_east, colon_hex(serial))
        doomed_files, spared_files = contents(tmp_path, ["doomed"]), contents(tmp_path, ["spared"])
        drop_entries(manifest, ["doomed"])
        proxy.faults = case.faults
        proxy.reset_stats()
        failed = cli("apply", manifest, "--prune", "--max-attempts", "2", *case.options,
                     "--report", tmp_path / "failed.json")
        stats = proxy.snapshot()
        in_moto = moto_revocations(ca_east)
        journal_failed = revoked_lines(manifest)
        files_failed = contents(tmp_path, ["doomed"])
        proxy.faults = Faults()
        later = cli("apply", manifest, "--prune", "--report", tmp_path / "later.json")
        stats_later = proxy.snapshot()

    assert failed.code == 1, failed.out + failed.err
    assert "Traceback" not in failed.out + failed.err
    rows = read_report(tmp_path / "failed.json")
    assert (rows["doomed"]["status"], rows["doomed"]["action"], rows["doomed"]["error"]["code"],
            rows["doomed"]["attempts"]) == ("failed", "revoke", case.code, case.calls)  # fmt: skip
    assert rows["spared"]["status"] == "unchanged"
    assert stats["revoke_calls"] == {key: case.calls}
    assert stats["revoke_forwarded"] == ({key: 1} if case.reached_moto else {})
    assert (colon_hex(serial) in in_moto) is case.reached_moto  # a lost answer: the revocation did happen
    # revocation first: not known to be revoked, so its files stay and no line is written
    assert files_failed == doomed_files
    assert journal_failed == []

    assert later.code == 0, later.out + later.err
    row = read_report(tmp_path / "later.json")["doomed"]
    assert (row["status"], row["action"], row["revocation_reason"], row["error"]) == ("revoked", "revoke", PRUNED, None)
    assert stats_later["revoke_forwarded"] == {key: 1}  # once in all, in whichever run reached moto
    assert stats_later["revoke_already_processed"].get(key, 0) == (case.calls if case.reached_moto else 0)
    assert moto_revocations(ca_east)[colon_hex(serial)]["revocation_reason"] == PRUNED
    assert [(r["name"], r["reason"]) for r in revoked_lines(manifest)] == [("doomed", PRUNED)]
    assert [p for p in files_of(tmp_path, "doomed") if p.exists()] == []
    assert contents(tmp_path, ["spared"]) == spared_files
    assert colon_hex(serial_of(tmp_path / "out" / "spared.pem")) not in moto_revocations(ca_east)


def test_a_prune_that_cannot_open_the_backend_says_why_and_still_writes_the_report(
    cli: Cli, moto: str, ca_east: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FaultProxy(moto) as proxy:
        manifest = issue(cli, tmp_path, proxy.endpoint, ca_east, ["gone", "kept"])
        gone_files = contents(tmp_path, ["gone"])
        drop_entries(manifest, ["gone"])
        proxy.reset_stats()
        with monkeypatch.context() as mp:  # every entry is unchanged: only the prune needs the backend
            mp.delenv("AWS_ACCESS_KEY_ID")
            mp.delenv("AWS_SECRET_ACCESS_KEY")
            result = cli("apply", manifest, "--prune", "--report", tmp_path / "r.json", "--junit", tmp_path / "j.xml")
        stats = proxy.snapshot()

    assert result.code == 2, result.out + result.err
    assert "no AWS credentials found" in result.err and "Traceback" not in result.out + result.err
    rows = read_report(tmp_path / "r.json")
    assert rows["kept"]["status"] == "unchanged"
    assert (rows["gone"]["status"], rows["gone"]["action"], rows["gone"]["error"]["code"]) == (
        "skipped", "revoke", "NotStarted"
    )
    assert "no AWS credentials found" in rows["gone"]["error"]["message"]
    assert (tmp_path / "j.xml").exists()
    assert stats["calls"] == {}
    assert contents(tmp_path, ["gone"]) == gone_files and revoked_lines(manifest) == []
