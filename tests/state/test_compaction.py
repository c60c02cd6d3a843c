"""Compaction: what a compacted state answers is what the whole history answers, for every
question a run asks of it (hypothesis, on generated histories of renewals and revocations);
and the file state's compaction survives SIGKILL at any moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pca_batch.acmpca import serial_hex
from pca_batch.model import Entry, Outputs
from pca_batch.plan.lostkeys import unanswered, unsettled
from pca_batch.plan.prune import replaced
from pca_batch.plan.renewal import IssuedIndex, latest_issued, past_revoked, renewal_token, request_tokens
from pca_batch.run.journal import Event, Issued, JournalRecord, KeyRecord, OtherRecord, RevocationRecord, read_events
from pca_batch.state import compaction
from pca_batch.state.filestate import FileState
from tests.support.common import REPO

CAS = ("arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/a",
       "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/b")
NAMES = ("web", "api", "db")
MANIFESTS = ("certs.yaml", "other.yaml")

# one step of a history: (issue or revoke, name, CA, manifest, revoke which earlier certificate, replaces?)
steps = st.lists(st.tuples(st.sampled_from(["issue", "issue", "revoke"]), st.sampled_from(NAMES),
                           st.sampled_from(CAS), st.sampled_from(MANIFESTS), st.integers(0, 40), st.booleans()),
                 max_size=60)


def history(plan: list[tuple[str, str, str, str, int, bool]]) -> list[Event]:
    """Records as runs write them: each renewal's token salted with its predecessor's serial."""
    events: list[Event] = []
    issued: list[JournalRecord] = []
    last: dict[tuple[str, str, str], JournalRecord] = {}
    for serial, (kind, name, ca, manifest, pick, replaces) in enumerate(plan, start=1):
        if kind == "revoke":
            if issued:
                victim = issued[pick % len(issued)]
                events.append(RevocationRecord(victim.name, victim.ca_arn, victim.certificate_arn, "SUPERSEDED", "t"))
            continue
        before = last.get((manifest, name, ca))
        token = base(name) if before is None else renewal_token(base(name), True, name, {}, _serial(before))
        record = JournalRecord(name=name, token=token, ca_arn=ca, certificate_arn=f"{ca}/certificate/{serial:032x}",
                               time="t", issued=Issued(manifest=manifest, replaces=before.certificate_arn
                                                       if before is not None and replaces else None))
        events.append(record)
        issued.append(record)
        last[(manifest, name, ca)] = record
    return events


def base(name: str) -> str:
    return f"token-of-{name}"


def _serial(record: JournalRecord) -> str:
    return record.certificate_arn.rsplit("/", 1)[1]


@settings(max_examples=300, deadline=None)
@given(steps)
def test_a_compacted_state_answers_as_the_whole_history(plan: list[tuple[str, str, str, str, int, bool]]) -> None:
    events = history(plan)
    kept, archived = compaction.split(events)
    assert sorted(map(repr, kept + archived)) == sorted(map(repr, events))  # nothing lost, nothing made up
    full, compacted = IssuedIndex.from_events(events), IssuedIndex.from_events(kept)
    for name in NAMES:
        for ca in CAS:
            wanted = [r for r in events if isinstance(r, JournalRecord) and r.name == name and r.ca_arn == ca]
            # the certificate a run recovers when the files are gone
            found = latest_issued(full, name, ca, request_tokens(full, name, base(name), True, {}))
            assert found == latest_issued(compacted, name, ca, request_tokens(compacted, name, base(name), True, {}))
            # the certificate on disk (the newest) is known, with its revocation
            if wanted:
                serial = serial_hex(int(_serial(wanted[-1]), 16))
                assert full.get(serial) == compacted.get(serial)
                assert full.revocation(wanted[-1]) == compacted.revocation(wanted[-1])
                token = wanted[-1].token
                assert past_revoked(full, ca, token, explicit=True, name=name, request={}) == \
                    past_revoked(compacted, ca, token, explicit=True, name=name, request={})
            # what revoke_replaced still owes, for the certificate in place
            for manifest in MANIFESTS:
                mine = [r for r in wanted if r.issued.manifest == manifest]
                if mine:
                    entry = Entry(name, 0, 1, {"CertificateAuthorityArn": ca}, base(name), None, Outputs(),
                                  explicit_token=True, revoke_replaced="SUPERSEDED")
                    owed = replaced(entry, mine[-1].certificate_arn, full, manifest)
                    assert owed == replaced(entry, mine[-1].certificate_arn, compacted, manifest)


def test_compaction_keeps_two_per_lineage_and_archives_the_rest() -> None:
    plan = [("issue", "web", CAS[0], "certs.yaml", 0, False)] * 10
    kept, archived = compaction.split(history(plan))
    assert [r.certificate_arn[-2:] for r in kept if isinstance(r, JournalRecord)] == ["09", "0a"]
    assert len(archived) == 8
    assert not compaction.worth_compacting(len(kept), len(archived))  # too little to bother
    assert compaction.worth_compacting(2_000, 256)


def _journal(path: Path, renewals: int, entries: int) -> list[Event]:
    plan = [("issue", f"svc{i}", CAS[0], "certs.yaml", 0, False) for _ in range(renewals) for i in range(entries)]
    events = history(plan)  # type: ignore[arg-type]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(compaction.lines(events))
    return events


def test_the_file_state_survives_sigkill_at_any_moment_of_its_compaction(tmp_path: Path) -> None:
    """Killed after 0 to 60 ms of ``state compact`` (wherever that lands: reading, archiving,
    renaming, or done), the journal reads whole, and with the archives holds every record."""
    script = ("import sys; from pathlib import Path; from pca_batch.state.filestate import FileState; "
              "s = FileState(Path(sys.argv[1])); lock = s.acquire('test', 'all', None); "
              "print('go', flush=True); s.maybe_compact(s.read(), whole=True, force=True)")
    for delay_ms in range(0, 60, 6):
        path = tmp_path / f"k{delay_ms}" / "journal.jsonl"
        events = _journal(path, renewals=20, entries=500)
        proc = subprocess.Popen([sys.executable, "-c", script, str(path)], cwd=REPO, stdout=subprocess.PIPE,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        assert proc.stdout is not None and proc.stdout.readline() == b"go\n"
        time.sleep(delay_ms / 1000)  # where the kill lands varies; what must hold does not
        proc.kill()
        proc.wait()
        proc.stdout.close()
        assert proc.returncode in (0, -signal.SIGKILL)
        journal, damaged = read_events(path)
        assert damaged == 0
        archived = [e for f in sorted((path.parent / "archive").glob("*.jsonl")) for e in read_events(f)[0]] \
            if (path.parent / "archive").is_dir() else []
        assert {repr(e) for e in journal} | {repr(e) for e in archived} == {repr(e) for e in events}
        # and the next compaction finishes the work
        state = FileState(path)
        lock = state.acquire("test", "all", None)
        state.maybe_compact(state.read(), whole=True, force=True)
        state.release(lock)
        assert len(read_events(path)[0]) == 1000


# a key record among them: (name, CA, index of a later issued record that answers it, or None: none does)
key_steps = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(CAS), st.integers(0, 80),
                               st.one_of(st.none(), st.integers(0, 80))), max_size=12)


def with_keys(events: list[Event], keys: list[tuple[str, str, int, int | None]]) -> list[Event]:
    """``events`` with key records put in at their places; one answered by an issued record gets its token."""
    out = list(events)
    for n, (name, ca, where, answer) in enumerate(keys):
        at = where % (len(out) + 1)
        later = [e for e in out[at:] if isinstance(e, JournalRecord) and e.name == name and e.ca_arn == ca]
        token = later[answer % len(later)].token if answer is not None and later else f"lost-{n}"
        out.insert(at, KeyRecord(name=name, ca_arn=ca, token=token, spki_sha256=f"{n:064x}", csr="CSR", time="t",
                                 manifest="certs.yaml"))
    return out


@settings(max_examples=300, deadline=None)
@given(steps, key_steps)
def test_a_key_record_is_kept_until_its_certificate_is_recorded(
    plan: list[tuple[str, str, str, str, int, bool]], keys: list[tuple[str, str, int, int | None]]
) -> None:
    events = with_keys(history(plan), keys)
    kept, archived = compaction.split(events)
    assert sorted(map(repr, kept + archived)) == sorted(map(repr, events))
    answered = {(e.ca_arn, e.token) for e in events if isinstance(e, JournalRecord)}
    for event in events:
        if isinstance(event, KeyRecord):
            assert (event in kept) == ((event.ca_arn, event.token) not in answered)
    # what a run and `state list` see of lost keys is what the whole history says
    assert unsettled(kept) == unsettled(events)
    assert unanswered(kept) == unanswered(events)


def test_a_record_of_a_later_version_is_kept_by_compaction() -> None:
    other = OtherRecord('{"event":"someday","name":"web"}', "someday")
    events = [other, *history([("issue", "web", CAS[0], "certs.yaml", 0, False)] * 5)]
    kept, archived = compaction.split(events)
    assert kept[0] is other and other not in archived and len(archived) == 3


def test_a_lost_key_is_asked_for_again_only_inside_the_tokens_window() -> None:
    from datetime import UTC, datetime, timedelta

    from pca_batch.plan.lostkeys import plan_reason, resendable

    made = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
    record = KeyRecord(name="web", ca_arn=CAS[0], token="pb1-t", spki_sha256="00", csr="CSR",
                       time="2026-12-03T06:00:00Z")
    assert resendable(record, made + timedelta(minutes=3, seconds=59))
    assert not resendable(record, made + timedelta(minutes=4))  # AWS would issue a new certificate soon
    assert not resendable(record, made - timedelta(minutes=1))  # a clock that disagrees: not sure, not sent
    late = plan_reason([record], made + timedelta(hours=1))
    assert "a certificate may exist for the lost key (token pb1-t, asked for at 2026-12-03T06:00:00Z)" in late
    assert "audit report" in late


def test_a_certificate_asked_for_a_lost_key_is_replaced_by_the_next_one(tmp_path: Path) -> None:
    """A run recorded the lost key's certificate and stopped before the new key's: the next run's
    new certificate replaces it (revoke_replaced), though the entry has no file to renew."""
    from datetime import UTC, datetime

    from pca_batch.pki.keys import KeySpec
    from pca_batch.plan.converge import decide_entry

    lost = JournalRecord(name="web", token="pb1-t", ca_arn=CAS[0], certificate_arn=f"{CAS[0]}/certificate/{1:032x}",
                         time="t", issued=Issued(manifest="certs.yaml", key_lost=True))
    entry = Entry("web", 0, 1, {"CertificateAuthorityArn": CAS[0]}, "pb1-x", None,
                  Outputs(certificate=tmp_path / "web.pem", private_key=tmp_path / "web.key"),
                  key=KeySpec(subject=(("CommonName", "web.example"),)), revoke_replaced="SUPERSEDED")
    step = decide_entry(entry, IssuedIndex.from_events([lost]), now=datetime.now(UTC), force=False)
    assert (step.decision.action, step.decision.replaces) == ("issue", lost)
    gone = RevocationRecord("web", CAS[0], lost.certificate_arn, "SUPERSEDED", "t")
    step = decide_entry(entry, IssuedIndex.from_events([lost, gone]), now=datetime.now(UTC), force=False)
    assert step.decision.replaces is None
