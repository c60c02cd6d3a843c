"""Recording to an s3 state: each write a new log object, shared by the threads waiting on it.

:meth:`S3Recorder.record_issued` returns only once a PutObject holding its line has
succeeded (``If-None-Match: *``: a log object is never overwritten). Threads share PUTs as
they share fsyncs in the file journal: the thread that gets to write takes every line
written so far. A PUT that fails fails every record it carried (BackendError
``StateNotWritten``, naming the certificate), never silently.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from types import TracebackType

from pca_batch.errors import BackendError
from pca_batch.run.journal import Issued, JournalRecord, KeyRecord, RevocationRecord
from pca_batch.state.base import StateError, StateView
from pca_batch.times import utc_now

WriteLog = Callable[[bytes, str, Iterator[int]], str]  # (lines, run ID, numbers) -> the new log object's key


class S3Recorder:
    """Records to an s3 state: lookups from the state as read, each record a new log object."""

    def __init__(self, write_log: WriteLog, view: StateView) -> None:
        self._write_log = write_log
        self.damaged_lines = view.damaged
        self._arns = {(r.ca_arn, r.token): r.certificate_arn for r in view.issued}
        self._lock = threading.Lock()  # guards the buffer, the lookups and the counts
        self._sync_lock = threading.Lock()  # one PUT at a time
        self._buffer: list[bytes] = []
        self._written = 0
        self._synced = 0
        self._failed: list[tuple[int, int, StateError]] = []
        self._here: set[tuple[str, str]] = set()
        self._run = uuid.uuid4().hex[:12]
        self._seq = iter(range(1, 10**9))

    def lookup(self, ca_arn: str, token: str) -> str | None:
        with self._lock:
            return self._arns.get((ca_arn, token))

    def recorded_here(self, ca_arn: str, token: str) -> bool:
        with self._lock:
            return (ca_arn, token) in self._here

    def record_issued(self, *, name: str, token: str, ca_arn: str, certificate_arn: str,
                      issued: Issued | None = None) -> JournalRecord:
        record = JournalRecord(name=name, token=token, ca_arn=ca_arn, certificate_arn=certificate_arn,
                               time=utc_now(), issued=issued or Issued())
        with self._lock:
            self._arns[(ca_arn, token)] = certificate_arn
            self._here.add((ca_arn, token))
        self._append(record, f"the certificate {certificate_arn} was issued for {name}")
        return record

    def record_issued_many(self, records: list[JournalRecord]) -> list[JournalRecord]:
        """The ``issued`` records of a batch in one log object; returns only once it is written."""
        if not records:
            return records
        with self._lock:
            for record in records:
                self._arns[(record.ca_arn, record.token)] = record.certificate_arn
                self._here.add((record.ca_arn, record.token))
                self._buffer.append((record.to_json() + "\n").encode("ascii"))
            self._written += len(records)
            mine = self._written
        try:
            self._sync(mine)
        except StateError as exc:
            arns = ", ".join(r.certificate_arn for r in records[:3]) + (", ..." if len(records) > 3 else "")
            raise BackendError("StateNotWritten", f"{len(records)} certificate(s) were issued ({arns}) but could "
                               f"not be recorded: {exc}") from None
        return records

    def record_revoked(self, *, name: str, ca_arn: str, certificate_arn: str, reason: str) -> RevocationRecord:
        record = RevocationRecord(name=name, ca_arn=ca_arn, certificate_arn=certificate_arn, reason=reason,
                                  time=utc_now())
        self._append(record, f"the certificate {certificate_arn} of {name} was revoked")
        return record

    def record_key(self, record: KeyRecord) -> None:
        self._append(record, f"a new key was made for {record.name}")

    def _append(self, record: JournalRecord | RevocationRecord | KeyRecord, what: str) -> None:
        with self._lock:
            self._buffer.append((record.to_json() + "\n").encode("ascii"))
            self._written += 1
            mine = self._written
        try:
            self._sync(mine)
        except StateError as exc:
            # the entry fails with the ARN in its message; the CA's idempotency token gives the
            # same certificate back to a run soon after, which records it
            raise BackendError("StateNotWritten", f"{what} but could not be recorded: {exc}") from None

    def _sync(self, line: int) -> None:
        with self._sync_lock:
            for after, upto, error in self._failed:
                if after < line <= upto:
                    raise error
            if self._synced >= line:
                return
            with self._lock:
                batch, self._buffer = self._buffer, []
                target = self._written
            try:
                self._write_log(b"".join(batch), self._run, self._seq)
            except StateError as exc:
                self._failed.append((self._synced, target, exc))
                raise
            self._synced = target

    def close(self) -> None:
        """Every record is written before its call returns: nothing is left to flush."""

    def __enter__(self) -> S3Recorder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
