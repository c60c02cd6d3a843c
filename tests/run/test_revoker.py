"""The Revoker alone: what RevokeCertificate's answers mean for the journal and the result."""

from __future__ import annotations

from pathlib import Path

from pca_batch.errors import BackendError
from pca_batch.plan.prune import Revocation
from pca_batch.run.journal import Journal, JournalRecord, read_events
from pca_batch.run.revoke import RevokeConfig, Revoker

CA = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/11111111-2222-3333-4444-555555555555"


class Scripted:
    """Answers each RevokeCertificate with the next scripted error code (None: success)."""

    def __init__(self, *answers: str | None) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str]] = []

    def revoke_certificate(self, ca_arn: str, serial: str, reason: str) -> None:
        self.calls.append((serial, reason))
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise BackendError(answer, f"scripted {answer}", status=400)


def item(serial: str = "0a" * 16) -> Revocation:
    record = JournalRecord(name="web", token="t", ca_arn=CA, certificate_arn=f"{CA}/certificate/{serial}", time="t")
    return Revocation(name="web", issued=record, reason="KEY_COMPROMISE")


def revoked_lines(path: Path) -> int:
    return sum(1 for e in read_events(path)[0] if e.event == "revoked")


def run(tmp_path: Path, backend: Scripted, attempts: int = 4) -> tuple[str, str | None, int]:
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        revoker = Revoker(backend, journal, RevokeConfig(concurrency=1, max_attempts=attempts))  # type: ignore[arg-type]
        revoker._retrier._sleep = lambda seconds: False  # no real back-off waits in a unit test
        [result] = revoker.run([item()])
    return result.status, result.error_code, revoked_lines(path)


def test_in_progress_is_asked_again_until_the_ca_says_it_is_done(tmp_path: Path) -> None:
    backend = Scripted("RequestInProgressException", "RequestAlreadyProcessedException")
    assert run(tmp_path, backend) == ("revoked", None, 1)
    assert len(backend.calls) == 2


def test_in_progress_past_the_attempts_fails_and_records_nothing(tmp_path: Path) -> None:
    backend = Scripted(*["RequestInProgressException"] * 5)
    assert run(tmp_path, backend, attempts=3) == ("failed", "RequestInProgressException", 0)
    assert len(backend.calls) == 3


def test_an_error_a_retry_cannot_mend_fails_at_once(tmp_path: Path) -> None:
    backend = Scripted("ResourceNotFoundException")
    assert run(tmp_path, backend) == ("failed", "ResourceNotFoundException", 0)
    assert len(backend.calls) == 1


def test_the_serial_and_reason_sent_are_the_certificates(tmp_path: Path) -> None:
    backend = Scripted(None)
    assert run(tmp_path, backend) == ("revoked", None, 1)
    assert backend.calls == [("0a" * 16, "KEY_COMPROMISE")]
