"""The runner against the fault-injecting backend: outcomes on disk, in the journal and at the CA."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography import x509

from pca_batch.errors import BackendError
from pca_batch.model import FAILED, ISSUED, RECOVERED, SKIPPED, UNCHANGED, Entry, Result
from pca_batch.run.journal import Journal, read_journal
from pca_batch.run.runner import EntrySteps, RunConfig, Runner, Timing
from tests.support.fault_backend import (
    CA_ARN,
    FakeClock,
    FaultBackend,
    Script,
    SimulatedCrash,
    make_entries,
    make_entry,
)

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def run(
    tmp_path: Path,
    backend: FaultBackend,
    entries: list[Entry],
    *,
    clock: FakeClock | None = None,
    preflight: dict[str, BackendError] | None = None,
    **config: object,
) -> tuple[list[Result], Runner]:
    clock = clock or FakeClock()
    settings = RunConfig(**{"concurrency": 4, **config})  # type: ignore[arg-type]
    with Journal(tmp_path / ".pca-batch" / "journal.jsonl") as journal:
        runner = Runner(backend, journal, base_dir=tmp_path, config=settings,
                        steps=EntrySteps(preflight_errors=preflight or {}),
                        timing=Timing(clock=clock, sleep=clock.sleep, rand=lambda: 1.0))
        return runner.run(entries), runner


def journal_arns(tmp_path: Path) -> dict[str, str]:
    records, damaged = read_journal(tmp_path / ".pca-batch" / "journal.jsonl")
    assert damaged == 0
    return {r.token: r.certificate_arn for r in records}


def by_name(results: list[Result]) -> dict[str, Result]:
    return {r.name: r for r in results}


def test_every_entry_is_issued_and_its_files_hold_the_certificate(tmp_path: Path) -> None:
    backend = FaultBackend()
    entries = make_entries(tmp_path, 6)
    results, _ = run(tmp_path, backend, entries, concurrency=3)
    assert [r.name for r in results] == [e.name for e in entries]  # manifest order, not completion order
    arns = journal_arns(tmp_path)
    for entry, r in zip(entries, results, strict=True):
        assert r.status == ISSUED and r.attempts == 1 and r.error_code is None
        assert r.outputs == {"certificate": f"out/{entry.name}.pem", "chain": f"out/{entry.name}.chain.pem",
                             "full_chain": f"out/{entry.name}.full.pem", "private_key": None}
        cert_pem = (tmp_path / f"out/{entry.name}.pem").read_text()
        chain_pem = (tmp_path / f"out/{entry.name}.chain.pem").read_text()
        assert (tmp_path / f"out/{entry.name}.full.pem").read_text() == cert_pem + chain_pem
        assert chain_pem == backend.authorities[CA_ARN].pem
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        assert r.serial == format(cert.serial_number, "032x")
        assert r.certificate_arn == f"{CA_ARN}/certificate/{cert.serial_number:032x}"
        assert r.not_after == cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert RFC3339.match(r.not_before or "") and RFC3339.match(r.not_after or "")
        assert r.line == entry.line and r.idempotency_token == entry.token
        assert arns[entry.token or ""] == r.certificate_arn
        assert backend.issued[r.certificate_arn].token == entry.token
    assert len(backend.issued) == 6


def test_transient_errors_are_retried_with_the_same_token(tmp_path: Path) -> None:
    backend = FaultBackend(script={"tok-a": Script(issue=["throttle", "5xx", "connection"]),
                                   "tok-b": Script(get=["throttle", "5xx"])})
    clock = FakeClock()
    results, _ = run(tmp_path, backend, [make_entry(tmp_path, "a"), make_entry(tmp_path, "b", index=1)],
                     clock=clock)
    a, b = results
    assert a.status == ISSUED and a.attempts == 4
    assert backend.issue_calls["tok-a"] == 4 and len(backend.certificates_for("tok-a")) == 1
    assert b.status == ISSUED and b.attempts == 1  # GetCertificate retries are not IssueCertificate attempts
    assert backend.get_calls[b.certificate_arn or ""] == 3
    # full jitter with rand=1.0. A throttle spends no attempt: it waits 0.2 (the first throttle's
    # ceiling) and the 5xx after it waits as a first failure does. a: 0.2, 0.2, 0.4; b: 0.2, 0.2
    assert sorted(clock.sleeps) == pytest.approx([0.2, 0.2, 0.2, 0.2, 0.4])


def test_a_lost_answer_is_retried_and_gets_the_first_certificate_back(tmp_path: Path) -> None:
    backend = FaultBackend(script={"tok-a": Script(issue=["timeout", "timeout"])})
    results, _ = run(tmp_path, backend, [make_entry(tmp_path, "a")])
    assert results[0].status == ISSUED and results[0].attempts == 3
    assert backend.certificates_for("tok-a") == [results[0].certificate_arn]


@pytest.mark.parametrize("code", ["MalformedCSRException", "InvalidArgsException", "InvalidArnException",
                                  "ResourceNotFoundException", "InvalidStateException",
                                  "AccessDeniedException", "LimitExceededException"])
def test_errors_a_retry_cannot_mend_fail_the_entry_at_once(tmp_path: Path, code: str) -> None:
    backend = FaultBackend(script={"tok-bad": Script(issue=[f"error:{code}"])})
    entries = [make_entry(tmp_path, "good"), make_entry(tmp_path, "bad", index=1)]
    good, bad = run(tmp_path, backend, entries)[0]
    assert good.status == ISSUED  # one failure never stops the others
    assert bad.status == FAILED and bad.error_code == code and bad.attempts == 1
    assert bad.certificate_arn is None and backend.certificates_for("tok-bad") == []
    assert not (tmp_path / "out" / "bad.pem").exists()
    assert "tok-bad" not in journal_arns(tmp_path)


def test_retries_end_after_max_attempts(tmp_path: Path) -> None:
    backend = FaultBackend(script={"tok-a": Script(issue=["5xx"] * 20)})
    results, _ = run(tmp_path, backend, [make_entry(tmp_path, "a")], max_attempts=5)
    assert results[0].status == FAILED and results[0].error_code == "InternalFailure"
    assert results[0].attempts == 5 and backend.issue_calls["tok-a"] == 5


def test_throttling_spends_no_attempt(tmp_path: Path) -> None:
    backend = FaultBackend(script={"tok-a": Script(issue=["throttle"] * 20, get=["throttle"] * 12)})
    clock = FakeClock()
    results, _ = run(tmp_path, backend, [make_entry(tmp_path, "a")], clock=clock, max_attempts=2)
    assert results[0].status == ISSUED and results[0].attempts == 21  # calls made, throttled ones included
    assert backend.issue_calls["tok-a"] == 21 and len(backend.certificates_for("tok-a")) == 1
    assert backend.get_calls[results[0].certificate_arn or ""] == 13
    assert max(clock.sleeps) == 1.0  # a throttled call is asked again within a second (the limiter paces it)


@pytest.mark.parametrize(("timeout", "calls"), [(0.0, 1), (5.0, 8)])
def test_throttling_fails_an_entry_once_the_throttle_timeout_runs_out(
    tmp_path: Path, timeout: float, calls: int
) -> None:
    backend = FaultBackend(script={"tok-a": Script(issue=["throttle"] * 20)})
    clock = FakeClock()
    results, _ = run(tmp_path, backend, [make_entry(tmp_path, "a")], clock=clock, throttle_timeout=timeout)
    # waits of 0.2, 0.4, 0.8, then 1 s each: the 8th throttle comes 5.4 s after the first
    assert results[0].status == FAILED and results[0].error_code == "ThrottlingException"
    assert results[0].attempts == calls and backend.issue_calls["tok-a"] == calls
    assert "--throttle-timeout" in (results[0].error_message or "")
    assert backend.certificates_for("tok-a") == []


def test_request_in_progress_is_polled_like_the_waiter(tmp_path: Path) -> None:
    backend = FaultBackend(script={"tok-a": Script(get=["in_progress"] * 3)})
    clock = FakeClock()
    results, _ = run(tmp_path, backend, [make_entry(tmp_path, "a")], clock=clock)
    assert results[0].status == ISSUED
    assert backend.get_calls[results[0].certificate_arn or ""] == 4
    assert clock.sleeps == [1.0, 1.0, 1.0]


def test_a_certificate_never_ready_fails_but_its_arn_is_kept_and_fetched_next_run(tmp_path: Path) -> None:
    backend = FaultBackend(script={"tok-a": Script(get=["in_progress"] * 70)})
    results, _ = run(tmp_path, backend, [make_entry(tmp_path, "a")], max_polls=60)
    first = results[0]
    assert first.status == FAILED and first.error_code == "RequestInProgressException"
    assert first.certificate_arn and backend.get_calls[first.certificate_arn] == 60
    assert journal_arns(tmp_path) == {"tok-a": first.certificate_arn}
    backend.script["tok-a"].get.clear()
    again, _ = run(tmp_path, backend, [make_entry(tmp_path, "a")])
    assert again[0].status == RECOVERED and again[0].attempts == 0
    assert again[0].certificate_arn == first.certificate_arn
    assert backend.issue_calls["tok-a"] == 1
    assert (tmp_path / "out" / "a.pem").read_text() == backend.issued[first.certificate_arn].pem


def test_the_poll_wait_is_bounded_in_time_too(tmp_path: Path) -> None:
    backend = FaultBackend(script={"tok-a": Script(get=["in_progress"] * 70)})
    clock = FakeClock()
    results, _ = run(tmp_path, backend, [make_entry(tmp_path, "a")], clock=clock, poll_delay=10.0,
                     max_polls=60, max_poll_wait=45.0)
    assert results[0].error_code == "RequestInProgressException"
    assert sum(clock.sleeps) <= 45.0
    assert backend.get_calls[results[0].certificate_arn or ""] == 5


def test_a_second_run_changes_nothing(tmp_path: Path) -> None:
    backend = FaultBackend()
    entries = make_entries(tmp_path, 3)
    run(tmp_path, backend, entries)
    before = {p: (p.stat().st_ino, p.read_bytes()) for p in (tmp_path / "out").iterdir()}
    results, _ = run(tmp_path, backend, entries)
    assert {r.status for r in results} == {UNCHANGED}
    assert all(r.attempts == 0 and r.serial for r in results)
    assert sum(backend.issue_calls.values()) == 3
    assert {p: (p.stat().st_ino, p.read_bytes()) for p in (tmp_path / "out").iterdir()} == before


def test_deleted_outputs_are_fetched_again_without_issuing(tmp_path: Path) -> None:
    backend = FaultBackend()
    entries = make_entries(tmp_path, 2)
    first, _ = run(tmp_path, backend, entries)
    (tmp_path / "out" / "e0000.full.pem").unlink()
    again, _ = run(tmp_path, backend, entries)
    assert [r.status for r in again] == [RECOVERED, UNCHANGED]  # fetched again, not issued
    assert again[0].certificate_arn == first[0].certificate_arn and again[0].attempts == 0
    assert (tmp_path / "out" / "e0000.full.pem").exists()
    assert sum(backend.issue_calls.values()) == 2


def test_a_crash_before_the_journal_write_is_mended_by_the_token(tmp_path: Path) -> None:
    backend = FaultBackend(script={"tok-b": Script(issue=["crash"])})
    entries = [make_entry(tmp_path, n, index=i) for i, n in enumerate("abc")]
    with pytest.raises(SimulatedCrash) as crash:
        run(tmp_path, backend, entries, concurrency=1)
    lost_arn = str(crash.value)
    assert "tok-b" not in journal_arns(tmp_path)  # the answer never reached the journal
    results, _ = run(tmp_path, backend, entries, concurrency=1)
    b = by_name(results)["b"]
    assert b.status == ISSUED and b.certificate_arn == lost_arn
    assert backend.certificates_for("tok-b") == [lost_arn]  # the same certificate, not a second one
    assert journal_arns(tmp_path)["tok-b"] == lost_arn
    assert {r.status for r in results} <= {ISSUED, RECOVERED, UNCHANGED}


def test_an_existing_file_is_replaced_only_by_a_successful_certificate(tmp_path: Path) -> None:
    backend = FaultBackend(script={"tok-bad": Script(issue=["error:MalformedCSRException"])})
    good, bad = make_entry(tmp_path, "good"), make_entry(tmp_path, "bad", index=1)
    (tmp_path / "out").mkdir()
    for name in ("good", "bad"):
        (tmp_path / "out" / f"{name}.pem").write_text("old certificate\n")
    results, _ = run(tmp_path, backend, [good, bad])
    assert [r.status for r in results] == [ISSUED, FAILED]
    assert (tmp_path / "out" / "bad.pem").read_text() == "old certificate\n"
    assert (tmp_path / "out" / "good.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")] == []  # no temp files


def test_an_output_that_cannot_be_written_fails_the_entry_and_keeps_the_arn(tmp_path: Path) -> None:
    backend = FaultBackend()
    (tmp_path / "out").write_text("a file where a folder should be")
    results, _ = run(tmp_path, backend, [make_entry(tmp_path, "a")])
    assert results[0].status == FAILED and results[0].error_code == "OutputWriteError"
    assert journal_arns(tmp_path)["tok-a"] == results[0].certificate_arn


def test_fail_fast_starts_nothing_after_a_failure(tmp_path: Path) -> None:
    backend = FaultBackend(script={"tok-b": Script(issue=["error:InvalidArgsException"])})
    entries = [make_entry(tmp_path, n, index=i) for i, n in enumerate("abcd")]
    results, runner = run(tmp_path, backend, entries, concurrency=1, fail_fast=True)
    assert [r.status for r in results] == [ISSUED, FAILED, SKIPPED, SKIPPED]
    assert results[2].error_code == "FailFast" and not runner.interrupted
    assert backend.issue_calls["tok-c"] == 0 and backend.issue_calls["tok-d"] == 0


def test_without_fail_fast_everything_runs(tmp_path: Path) -> None:
    backend = FaultBackend(script={"tok-b": Script(issue=["error:InvalidArgsException"])})
    entries = [make_entry(tmp_path, n, index=i) for i, n in enumerate("abcd")]
    results, _ = run(tmp_path, backend, entries, concurrency=1)
    assert [r.status for r in results] == [ISSUED, FAILED, ISSUED, ISSUED]


def test_an_interrupt_lets_the_call_in_flight_end_and_starts_nothing_new(tmp_path: Path) -> None:
    holder: dict[str, Runner] = {}

    def interrupt_on_second(request: object) -> None:
        if sum(backend.issue_calls.values()) == 1:  # this is the second call
            holder["runner"].request_stop()

    backend = FaultBackend(before_issue=interrupt_on_second)
    entries = make_entries(tmp_path, 5)
    clock = FakeClock()
    with Journal(tmp_path / ".pca-batch" / "journal.jsonl") as journal:
        runner = Runner(backend, journal, base_dir=tmp_path, config=RunConfig(concurrency=1),
                        timing=Timing(clock=clock, sleep=clock.sleep))
        holder["runner"] = runner
        results = runner.run(entries)
    assert runner.interrupted
    assert [r.status for r in results] == [ISSUED, FAILED, SKIPPED, SKIPPED, SKIPPED]
    # The second was issued as the stop came: not skipped, but failed with its ARN, files not written.
    second = results[1]
    assert second.error_code == "Interrupted" and second.attempts == 1
    assert second.certificate_arn and "journal" in (second.error_message or "")
    assert not (tmp_path / "out" / f"{entries[1].name}.pem").exists()
    assert journal_arns(tmp_path)[entries[1].token or ""] == second.certificate_arn
    assert {r.error_code for r in results[2:]} == {"Interrupted"} and {r.attempts for r in results[2:]} == {0}
    assert sum(backend.issue_calls.values()) == 2
    # Run again: the interrupted entry is fetched, not issued again.
    again, _ = run(tmp_path, backend, entries)
    assert [r.status for r in again] == [UNCHANGED, RECOVERED, ISSUED, ISSUED, ISSUED]
    assert again[1].attempts == 0 and again[1].certificate_arn == second.certificate_arn
    assert all(len(backend.certificates_for(e.token or "")) == 1 for e in entries)


def test_an_interrupt_during_backoff_abandons_the_retry(tmp_path: Path) -> None:
    backend = FaultBackend(script={"tok-a": Script(issue=["throttle"] * 5)})
    with Journal(tmp_path / "j.jsonl") as journal:
        holder: list[Runner] = []
        runner = Runner(backend, journal, base_dir=tmp_path, config=RunConfig(),
                        timing=Timing(sleep=lambda s: holder[0].request_stop()))
        holder.append(runner)
        results = runner.run([make_entry(tmp_path, "a")])
    assert results[0].status == SKIPPED and results[0].attempts == 1
    assert "ThrottlingException" in (results[0].error_message or "")
    assert backend.issue_calls["tok-a"] == 1


def test_preflight_refusals_fail_without_issuing(tmp_path: Path) -> None:
    backend = FaultBackend()
    refused = {"b": BackendError("InvalidStateException", "preflight: the CA is DISABLED")}
    entries = [make_entry(tmp_path, "a"), make_entry(tmp_path, "b", index=1)]
    results, _ = run(tmp_path, backend, entries, preflight=refused)
    assert [r.status for r in results] == [ISSUED, FAILED]
    assert results[1].error_code == "InvalidStateException" and results[1].attempts == 0
    assert backend.issue_calls["tok-b"] == 0


@pytest.mark.parametrize("concurrency", [0, 1, 64])
def test_concurrency_is_clamped(tmp_path: Path, concurrency: int) -> None:
    backend = FaultBackend()
    results, _ = run(tmp_path, backend, make_entries(tmp_path, 3), concurrency=concurrency)
    assert [r.status for r in results] == [ISSUED] * 3


def test_no_entries_no_work(tmp_path: Path) -> None:
    results, runner = run(tmp_path, FaultBackend(), [])
    assert results == [] and not runner.interrupted


def test_an_entry_without_outputs_is_issued_and_reported(tmp_path: Path) -> None:
    backend = FaultBackend()
    results, _ = run(tmp_path, backend, [make_entry(tmp_path, "a", outputs=False)])
    assert results[0].status == ISSUED and results[0].serial
    assert results[0].outputs == {"certificate": None, "chain": None, "full_chain": None, "private_key": None}
    assert not (tmp_path / "out").exists()


def test_a_bug_in_a_worker_ends_the_run_and_is_not_an_entry_failure(tmp_path: Path) -> None:
    class Broken(FaultBackend):
        def get_certificate(self, ca_arn: str, certificate_arn: str):  # type: ignore[no-untyped-def]
            raise KeyError("a bug")

    with pytest.raises(KeyError):
        run(tmp_path, Broken(), [make_entry(tmp_path, "a")])
    assert len(journal_arns(tmp_path)) == 1  # the ARN issued before the bug is still on disk


def test_no_more_calls_in_flight_than_the_concurrency(tmp_path: Path) -> None:
    backend = FaultBackend(delay=0.01)  # calls overlap for real, so the pool's bound shows
    results, _ = run(tmp_path, backend, make_entries(tmp_path, 24), concurrency=3)
    assert [r.status for r in results] == [ISSUED] * 24
    assert 1 <= backend.most_in_flight <= 3


def test_calls_are_paced_by_the_rate_limiter(tmp_path: Path) -> None:
    clock = FakeClock()
    backend = FaultBackend(clock=clock)
    results, _ = run(tmp_path, backend, make_entries(tmp_path, 10), clock=clock, concurrency=1, max_rate=5)
    assert [r.status for r in results] == [ISSUED] * 10
    issues = [t for op, t in backend.calls if op == "IssueCertificate"]
    gets = [t for op, t in backend.calls if op == "GetCertificate"]
    assert all(b - a >= 0.2 - 1e-9 for a, b in zip(issues, issues[1:], strict=False))  # 5 a second
    assert all(b - a >= 1 / 15 - 1e-9 for a, b in zip(gets, gets[1:], strict=False))  # 3 x 5 a second
    assert issues[-1] - issues[0] == pytest.approx(9 * 0.2)


def test_a_second_interrupt_stops_waiting_for_calls_in_flight(tmp_path: Path) -> None:
    import threading
    import time

    release = threading.Event()
    holder: list[Runner] = []

    def stuck(request: object) -> None:
        holder[0].request_stop()
        holder[0].request_stop()  # impatient: a second Ctrl-C
        release.wait(30)  # a call that does not end by itself (bounded so a broken test ends)

    backend = FaultBackend(before_issue=stuck)
    journal = Journal(tmp_path / "j.jsonl")
    entries = make_entries(tmp_path, 3)
    runner = Runner(backend, journal, base_dir=tmp_path, config=RunConfig(concurrency=1))
    holder.append(runner)
    results = runner.run(entries)
    returned_while_stuck = not release.is_set()
    release.set()
    assert returned_while_stuck and runner.calls_left_running
    assert [r.status for r in results] == [SKIPPED] * 3
    assert "ended before this entry finished" in (results[0].error_message or "")
    # The call left running still ends, and its ARN still reaches the journal.
    for _ in range(3000):
        if journal.lookup(entries[0].ca_arn or "", entries[0].token or ""):
            break
        time.sleep(0.01)
    assert journal.lookup(entries[0].ca_arn or "", entries[0].token or "") in backend.issued
    journal.close()
