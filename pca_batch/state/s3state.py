"""The s3 state: the journal's records in S3, shared by runners that keep no folder.

For ``s3://BUCKET/KEY``::

    KEY                          the snapshot: a header line, then the records compaction kept
    KEY.d/log/<time>-<run>-<n>.jsonl   records written since, one object per write (never changed)
    KEY.d/archive/<digest>.jsonl history compaction moved out (read by people, never by pca-batch)
    KEY.d/lock/<scope>.json      a lock (``all``, ``shard-K-of-N``, ``compact``), Terraform's body

**Writing.** An ARN is recorded by a PutObject of a new log object (``If-None-Match: *``, so
nothing is ever overwritten) before :meth:`S3Recorder.record_issued` returns. Threads share
PUTs as they share fsyncs in the file journal: one object carries every line written before it.
Log names begin with the time they are written, so listing them gives the order of recording,
and with a random run ID, so shards running at once never write the same object.

**Reading.** List the log objects, then get the snapshot: its header names the log objects it
already holds (``covers``); the others are read and appended. A log object that vanishes between
the listing and the GET was folded by a compaction meanwhile: the read starts again.

**Compaction** (under the ``compact`` lock, one at a time, while shards may still write): the
records dropped go to an archive object first; then a new snapshot (covering every log object
read) replaces the old one; then the covered log objects are deleted. A crash before the new
snapshot leaves the old one and every log; after it, the logs it covers are skipped until the
next compaction deletes them. No step loses a record.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from pca_batch.model import StateConfig
from pca_batch.run.journal import Event, parse_line
from pca_batch.state import compaction
from pca_batch.state.base import (
    ALL,
    Compacted,
    LockHeld,
    LockInfo,
    State,
    StateError,
    StateView,
    conflicts,
)
from pca_batch.state.s3objects import Objects
from pca_batch.state.s3recorder import S3Recorder
from pca_batch.times import utc_now

FORMAT = "pca-batch-state"
VERSION = 1
COMPACT = "compact"
STALE_COMPACTION = 900  # seconds after which a compaction's lock is taken over (it takes seconds)
MAX_LOGS = 64  # log objects since the snapshot beyond which a run compacts
POLL = 1.0


class _Vanished(Exception):
    """An object listed a moment ago is gone (a compaction folded it): read again."""


class S3State(State):
    def __init__(self, config: StateConfig, *, profile: str | None = None) -> None:
        if not config.bucket or not config.key:
            raise StateError(f"an s3 state needs a bucket and a key (s3://BUCKET/KEY), not s3://{config.bucket or ''}"
                             f"/{config.key or ''}")
        self.config = config
        self.bucket, self.key = config.bucket, config.key.lstrip("/")
        self.display = f"s3://{self.bucket}/{self.key}"
        self.objects = Objects(config, self.display, profile=profile)
        self._etags: dict[str, str] = {}  # lock ID -> the ETag of our lock object

    # -- reading ----------------------------------------------------------------------------

    @property
    def _logs(self) -> str:
        return f"{self.key}.d/log/"

    def read(self) -> StateView:
        for _ in range(5):
            try:
                view, _ = self._read_once()
                return view
            except _Vanished:
                time.sleep(random.uniform(0.05, 0.3))
        raise StateError(f"the state {self.display} kept changing while it was read; try again")

    def _read_once(self) -> tuple[StateView, list[str]]:
        """The state, and the log objects it was read from (for compaction)."""
        logs = self.objects.list(self._logs)
        snapshot = self.objects.get(self.key)
        covers, events = self._parse_snapshot(snapshot) if snapshot is not None else (set(), [])
        fresh = [name for name in logs if name not in covers]
        bodies: list[bytes | None] = []
        if len(fresh) > 1:  # a killed run leaves one object per write: read them side by side
            with ThreadPoolExecutor(min(16, len(fresh)), thread_name_prefix="pca-batch-state") as pool:
                bodies = list(pool.map(self.objects.get, fresh))
        elif fresh:
            bodies = [self.objects.get(fresh[0])]
        for name, body in zip(fresh, bodies, strict=True):
            if body is None:
                raise _Vanished(name)
            events += self._parse_log(body, name)
        view = StateView(tuple(events), 0, pieces=1 + len(fresh))
        return view, logs

    def _parse_snapshot(self, body: bytes) -> tuple[set[str], list[Event]]:
        first, _, rest = body.partition(b"\n")
        header = _header(first)
        if header is None or header.get("format") != FORMAT:
            raise StateError(f"{self.display} is not a pca-batch state (it does not begin with pca-batch's "
                             "header); give the state another key, or move that object away")
        if header.get("version") != VERSION:
            raise StateError(f"{self.display} is a pca-batch state of version {header.get('version')!r}; "
                             f"this pca-batch reads version {VERSION}")
        covers = header.get("covers")
        if not isinstance(covers, list) or not all(isinstance(c, str) for c in covers):
            raise StateError(f"{self.display} is damaged: its header does not list the log objects it covers")
        return set(covers), _records(rest, self.display, first_line=2)

    def _parse_log(self, body: bytes, name: str) -> list[Event]:
        first, _, rest = body.partition(b"\n")
        header = _header(first)
        if header is None or header.get("format") != FORMAT + "-log":
            raise StateError(f"s3://{self.bucket}/{name} is not a pca-batch state log object; it does not belong "
                             f"under {self._logs}: move it away")
        return _records(rest, f"s3://{self.bucket}/{name}", first_line=2)

    def open_recorder(self, view: StateView | None = None) -> S3Recorder:
        return S3Recorder(self.write_log, view if view is not None else self.read())

    def write_log(self, lines: bytes, run: str, seq: Iterator[int]) -> str:
        """One new log object holding ``lines``; its key."""
        header = json.dumps({"format": FORMAT + "-log", "version": VERSION, "written": utc_now()}).encode()
        while True:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            name = f"{self._logs}{stamp}-{run}-{next(seq):06d}.jsonl"
            if self.objects.put_new(name, header + b"\n" + lines) is not None:
                return name

    # -- locks ------------------------------------------------------------------------------

    def _lock_key(self, scope: str) -> str:
        return f"{self.key}.d/lock/{scope}.json"

    def acquire(self, operation: str, scope: str, timeout: float | None) -> LockInfo:
        info = LockInfo.new(operation, self.display, scope)
        started = time.monotonic()
        while True:
            holder = self._try_lock(info)
            if holder is None:
                return info
            waited = time.monotonic() - started
            if timeout is None or waited >= timeout:
                raise LockHeld(self.display, holder, waited if timeout else None)
            time.sleep(min(max(0.0, timeout - waited), random.uniform(0.5, 1.5) * POLL))

    def _try_lock(self, info: LockInfo) -> LockInfo | None:
        """None when ``info`` now holds its scope; else who holds it (or a conflicting scope)."""
        key = self._lock_key(info.scope)
        etag = self.objects.put_new(key, info.to_json().encode())
        if etag is None:
            return self._lock_at(key) or LockInfo("?", "?", "another run", "?", "?", self.display, info.scope)
        self._etags[info.id] = etag
        for other in self.locks():
            if other.id != info.id and other.scope != COMPACT and conflicts(info.scope, other.scope):
                self.release(info)  # both may step back; --lock-timeout tries again
                return other
        return None

    def _lock_at(self, key: str) -> LockInfo | None:
        body = self.objects.get(key)
        return LockInfo.from_json(body, self.display) if body is not None else None

    def release(self, lock: LockInfo) -> None:
        etag = self._etags.pop(lock.id, None)
        if etag is not None:
            try:
                self.objects.delete(self._lock_key(lock.scope), etag)
            except StateError:
                pass  # best effort: `state unlock` removes a lock left behind

    def locks(self) -> list[LockInfo]:
        found = []
        for key in self.objects.list(f"{self.key}.d/lock/"):
            info = self._lock_at(key)
            if info is not None:
                found.append(info)
        return sorted(found, key=lambda i: (i.scope != ALL, i.scope))

    def unlock(self, lock_id: str) -> LockInfo:
        for info in self.locks():
            if info.id == lock_id:
                self.objects.delete(self._lock_key(info.scope))
                return info
        held = ", ".join(f"{i.id} ({i.operation}, {i.who})" for i in self.locks()) or "none"
        raise StateError(f"no lock with ID {lock_id} on {self.display} (held now: {held})")

    # -- compaction -------------------------------------------------------------------------

    def maybe_compact(self, before: StateView, *, whole: bool, force: bool = False) -> Compacted | None:
        if not (force or len(self.objects.list(self._logs)) > MAX_LOGS or compaction.worth_it(before.events)):
            return None
        lock = LockInfo.new("compaction", self.display, COMPACT)
        if not self._take_compaction_lock(lock):
            return None
        try:
            return self._compact()
        finally:
            self.release(lock)

    def _take_compaction_lock(self, lock: LockInfo) -> bool:
        key = self._lock_key(COMPACT)
        etag = self.objects.put_new(key, lock.to_json().encode())
        if etag is None:
            holder = self._lock_at(key)
            if holder is None or _age(holder.created) < STALE_COMPACTION:
                return False
            self.objects.delete(key)  # a compaction killed long ago: it left nothing a reader needs
            etag = self.objects.put_new(key, lock.to_json().encode())
            if etag is None:
                return False
        self._etags[lock.id] = etag
        return True

    def _compact(self) -> Compacted:
        view, logs = self._read_once_retrying()
        kept, archived = compaction.split(list(view.events))
        archive = ""
        if archived:
            data = compaction.lines(archived)
            archive = f"{self.key}.d/archive/{hashlib.sha256(data).hexdigest()[:16]}.jsonl"
            self.objects.put(archive, data)
        header = json.dumps({"format": FORMAT, "version": VERSION, "written": utc_now(), "covers": logs})
        self.objects.put(self.key, header.encode() + b"\n" + compaction.lines(kept))
        for start in range(0, len(logs), 1000):
            batch = [{"Key": k} for k in logs[start:start + 1000]]
            self.objects.call("delete from", lambda b=batch: self.objects.client.delete_objects(  # type: ignore[misc]
                Bucket=self.bucket, Delete={"Objects": b, "Quiet": True}))
        return Compacted(kept=len(kept), archived=len(archived), archive=f"s3://{self.bucket}/{archive}")

    def _read_once_retrying(self) -> tuple[StateView, list[str]]:
        for _ in range(5):
            try:
                return self._read_once()
            except _Vanished:
                continue
        raise StateError(f"the state {self.display} kept changing while it was compacted")

    def close(self) -> None:
        self.objects.close()


def _header(line: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _records(body: bytes, where: str, *, first_line: int) -> list[Event]:
    """Every record of an object written whole by one PUT: a line that does not read is damage."""
    events: list[Event] = []
    for n, line in enumerate(body.split(b"\n"), start=first_line):
        if not line.strip():
            continue
        event = parse_line(line)
        if event is None:
            raise StateError(f"{where} is damaged: line {n} is not a pca-batch record")
        events.append(event)
    return events


def _age(created: str) -> float:
    try:
        return (datetime.now(UTC) - datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        return float("inf")
