"""The journal: durable append-only JSON lines, torn lines tolerated, lookups by (CA, token)."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

from pca_batch.run.journal import Journal, KeyRecord, OtherRecord, default_journal_path, read_events, read_journal

CA = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/ca-1"
OTHER_CA = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/ca-2"


def lines(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_default_path_is_beside_the_manifest(tmp_path: Path) -> None:
    assert default_journal_path(tmp_path / "m.yaml") == tmp_path / ".pca-batch" / "journal.jsonl"


def test_records_one_line_per_issued_certificate(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "journal.jsonl"
    with Journal(path) as journal:
        journal.record_issued(name="a", token="t-a", ca_arn=CA, certificate_arn=f"{CA}/certificate/01")
        journal.record_issued(name="b", token="t-b", ca_arn=CA, certificate_arn=f"{CA}/certificate/02")
        assert journal.lookup(CA, "t-a") == f"{CA}/certificate/01"
        assert len(journal) == 2
    got = lines(path)
    assert [g["name"] for g in got] == ["a", "b"]
    assert set(got[0]) == {"event", "name", "token", "ca_arn", "certificate_arn", "time"}
    assert got[0]["event"] == "issued"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", got[0]["time"])


def test_a_new_run_finds_what_an_earlier_run_recorded(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        journal.record_issued(name="a", token="t", ca_arn=CA, certificate_arn=f"{CA}/certificate/01")
    with Journal(path) as again:
        assert again.lookup(CA, "t") == f"{CA}/certificate/01"
        assert again.lookup(OTHER_CA, "t") is None  # the key is (CA, token), not the token alone
        assert again.lookup(CA, "other") is None
        again.record_issued(name="c", token="t2", ca_arn=CA, certificate_arn=f"{CA}/certificate/03")
    records, damaged = read_journal(path)
    assert [r.name for r in records] == ["a", "c"]
    assert damaged == 0


def test_a_torn_last_line_is_skipped_and_the_next_record_starts_on_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        journal.record_issued(name="a", token="t-a", ca_arn=CA, certificate_arn=f"{CA}/certificate/01")
    whole = path.read_bytes()
    # A crash mid-write: half of a second record, no newline.
    path.write_bytes(whole + b'{"event":"issued","name":"b","token":"t-b","ca_ar')
    with Journal(path) as journal:
        assert journal.damaged_lines == 1
        assert journal.lookup(CA, "t-a") == f"{CA}/certificate/01"
        assert journal.lookup(CA, "t-b") is None
        journal.record_issued(name="c", token="t-c", ca_arn=CA, certificate_arn=f"{CA}/certificate/03")
    records, damaged = read_journal(path)
    assert [r.name for r in records] == ["a", "c"]
    assert damaged == 1
    assert path.read_bytes().endswith(b"\n")


def test_lines_that_are_not_records_are_counted_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text(
        '[1, 2]\n{"event": "other"}\n{"event": "issued", "name": "x"}\n\xff\n\n'
        + json.dumps({"event": "issued", "name": "a", "token": "t", "ca_arn": CA,
                      "certificate_arn": "arn-a", "time": "t"}) + "\n",
        encoding="latin-1",
    )
    records, damaged = read_journal(path)
    assert [r.certificate_arn for r in records] == ["arn-a"]
    assert damaged == 3  # a whole record of an event this version does not know is not damage


def test_a_later_versions_record_is_kept_as_written_and_ignored(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text('{"event":"someday","name":"web","x":[1,2]}\n')
    events, damaged = read_events(path)
    assert damaged == 0 and [type(e) for e in events] == [OtherRecord]
    assert events[0].to_json() == '{"event":"someday","name":"web","x":[1,2]}'
    assert read_journal(path) == ([], 0)


def test_a_key_record_reads_back_and_holds_no_private_key(tmp_path: Path) -> None:
    from pca_batch.pki import keys

    key = keys.generate("EC_prime256v1")
    csr = keys.build_csr(keys.KeySpec(subject=(("CommonName", "web.example"),)), key)
    record = KeyRecord(name="web", ca_arn=CA, token="t-1", spki_sha256=keys.spki_sha256(key), csr=csr,
                       time="2026-12-03T06:00:00Z", manifest="certs.yaml")
    with Journal(tmp_path / "journal.jsonl") as journal:
        journal.record_key(record)
        assert journal.lookup(CA, "t-1") is None  # a key is no certificate
    events, damaged = read_events(tmp_path / "journal.jsonl")
    assert events == [record] and damaged == 0
    assert keys.csr_spki_sha256(csr) == record.spki_sha256
    text = (tmp_path / "journal.jsonl").read_text()
    assert "PRIVATE KEY" not in text and "CERTIFICATE REQUEST" in text


def test_a_missing_journal_reads_empty(tmp_path: Path) -> None:
    assert read_journal(tmp_path / "none.jsonl") == ([], 0)


def test_threads_appending_at_once_leave_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:

        def worker(n: int) -> None:
            for i in range(25):
                journal.record_issued(name=f"w{n}-{i}", token=f"t{n}-{i}", ca_arn=CA,
                                      certificate_arn=f"{CA}/certificate/{n:02x}{i:02x}")

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    records, damaged = read_journal(path)
    assert damaged == 0
    assert len(records) == 200
    assert len({r.token for r in records}) == 200


def test_the_last_record_for_a_key_wins(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        journal.record_issued(name="a", token="t", ca_arn=CA, certificate_arn="arn-1")
        journal.record_issued(name="a", token="t", ca_arn=CA, certificate_arn="arn-2")
    with Journal(path) as journal:
        assert journal.lookup(CA, "t") == "arn-2"


def test_a_closed_journal_refuses_to_record(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    journal.close()
    journal.close()  # closing twice is harmless
    try:
        journal.record_issued(name="a", token="t", ca_arn=CA, certificate_arn="arn")
    except ValueError as exc:
        assert "closed" in str(exc)
    else:
        raise AssertionError("a closed journal recorded a line")


def test_an_s3_state_object_reads_a_later_versions_record_and_refuses_a_torn_one() -> None:
    import pytest

    from pca_batch.state.base import StateError
    from pca_batch.state.s3state import _records

    body = b'{"event":"someday","name":"web"}\n' + json.dumps(
        {"event": "issued", "name": "a", "token": "t", "ca_arn": CA, "certificate_arn": "arn-a", "time": "t"}).encode()
    assert [e.event for e in _records(body, "s3://b/k", first_line=2)] == ["someday", "issued"]
    with pytest.raises(StateError, match="line 4 is not a pca-batch record"):
        _records(body + b'\n{"event": "issued", "na', "s3://b/k", first_line=2)
