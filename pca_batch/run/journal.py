"""The journal: every certificate ARN, on disk, the moment IssueCertificate returns it.

Append-only JSON lines (default ``<manifest folder>/.pca-batch/journal.jsonl``)::

    {"event": "issued", "name": "...", "token": "...", "ca_arn": "...",
     "certificate_arn": "...", "time": "2026-11-26T22:25:22Z",
     "manifest": "certs.yaml", "outputs": {"certificate": "out/web.pem"},
     "replaces": "arn:...:certificate/0a1b..."}
    {"event": "revoked", "name": "...", "ca_arn": "...", "certificate_arn": "...",
     "reason": "KEY_COMPROMISE", "time": "2026-11-27T08:00:00Z"}
    {"event": "key", "name": "...", "ca_arn": "...", "token": "...", "spki_sha256": "...",
     "csr": "-----BEGIN CERTIFICATE REQUEST-----...", "time": "...", "manifest": "certs.yaml"}

Each line goes out in one ``write`` on an ``O_APPEND`` descriptor, under a
lock, and :meth:`Journal.record_issued` returns only after an ``fsync`` that
covers it, so a run killed at any point (SIGKILL included) leaves every ARN it
was told about. Threads share fsyncs (group commit): one fsync makes every
line written before it durable, so 32 workers do not queue for 32 fsyncs. The
next run looks entries up by (CA ARN, idempotency token) and fetches those
certificates instead of issuing new ones.

A crash in the middle of a write can leave a torn last line. Reading skips
lines that are not whole records, and opening a journal whose last line is
torn first ends that line, so the next record starts on a line of its own.
The journal never holds a private key (nor its passphrase). A ``key`` line says that
pca-batch made a new key for an entry and is about to ask for its certificate: written
durably before that IssueCertificate call, it holds the token, the public key's SHA-256
and the CSR (public), so that a run on another runner, where the pending key file is not,
can ask the CA for what the earlier run got (see :mod:`pca_batch.plan.lostkeys`).

A line of an event this version does not know (a later version's) is kept as it is
(:class:`OtherRecord`): read, passed through compaction, otherwise ignored; only a line
that is not a whole JSON object is damage.

An ``issued`` line also says which manifest (its file name: one folder, one journal,
may hold several manifests) and which output files (relative to the manifest's folder)
it was issued for, so that ``apply --prune`` can revoke and remove what a manifest no
longer lists; and, for an entry with ``revoke_replaced``, the certificate it replaces,
which is revoked once the new one is delivered. Lines from before these fields read
with them empty.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol

from pca_batch.model import DEFAULT_STORE
from pca_batch.times import utc_now

ISSUED_EVENT = "issued"
REVOKED_EVENT = "revoked"
KEY_EVENT = "key"
JOURNAL_FILE = "journal.jsonl"
_FIELDS = ("name", "token", "ca_arn", "certificate_arn", "time")
_REVOKED_FIELDS = ("name", "ca_arn", "certificate_arn", "reason", "time")
_KEY_FIELDS = ("name", "ca_arn", "token", "spki_sha256", "csr", "time")


def default_journal_path(manifest_path: Path) -> Path:
    return manifest_path.parent / DEFAULT_STORE / JOURNAL_FILE


@dataclass(frozen=True)
class Issued:
    """What an ``issued`` line says beside the ARN: where the certificate was going."""

    manifest: str | None = None  # the manifest's file name
    outputs: Mapping[str, str] = field(default_factory=dict)  # kind -> path relative to the manifest's folder
    replaces: str | None = None  # revoke_replaced: the certificate ARN this one replaces
    key_lost: bool = False  # issued for a key made by a run on another runner, which is not here


# as json.dumps(data, separators=(",", ":"), ensure_ascii=True) writes a line, without an encoder made for each
_LINE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True)
class JournalRecord:
    name: str
    token: str
    ca_arn: str
    certificate_arn: str
    time: str
    event: str = ISSUED_EVENT
    issued: Issued = Issued()

    def to_json(self) -> str:
        data: dict[str, object] = {"event": self.event, **{k: getattr(self, k) for k in _FIELDS}}
        if self.issued.manifest is not None:
            data["manifest"] = self.issued.manifest
        if self.issued.outputs:
            data["outputs"] = dict(self.issued.outputs)
        if self.issued.replaces is not None:
            data["replaces"] = self.issued.replaces
        if self.issued.key_lost:
            data["key_lost"] = True
        return _LINE.encode(data)


@dataclass(frozen=True)
class RevocationRecord:
    """A ``revoked`` line: RevokeCertificate succeeded (or the CA said it was done already)."""

    name: str
    ca_arn: str
    certificate_arn: str
    reason: str  # a RevocationReason
    time: str
    event: str = REVOKED_EVENT

    def to_json(self) -> str:
        data = {"event": self.event, **{k: getattr(self, k) for k in _REVOKED_FIELDS}}
        return _LINE.encode(data)


@dataclass(frozen=True)
class KeyRecord:
    """A ``key`` line: a new key was made for an entry and its certificate is about to be asked
    for with ``token``. Public facts only: the CSR and the public key's SHA-256, never the key."""

    name: str
    ca_arn: str
    token: str
    spki_sha256: str
    csr: str  # PEM
    time: str
    manifest: str | None = None
    event: str = KEY_EVENT

    def to_json(self) -> str:
        data: dict[str, object] = {"event": self.event, **{k: getattr(self, k) for k in _KEY_FIELDS}}
        if self.manifest is not None:
            data["manifest"] = self.manifest
        return _LINE.encode(data)


@dataclass(frozen=True)
class OtherRecord:
    """A whole line of an event this version does not know: kept as it was written."""

    line: str
    event: str = ""

    def to_json(self) -> str:
        return self.line


Event = JournalRecord | RevocationRecord | KeyRecord | OtherRecord
_KNOWN = {ISSUED_EVENT: _FIELDS, REVOKED_EVENT: _REVOKED_FIELDS, KEY_EVENT: _KEY_FIELDS}


def parse_line(line: bytes) -> Event | None:
    """One journal line as its record; None when it is not a whole record (a torn or damaged line)."""
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    event = data.get("event")
    fields = _KNOWN.get(event) if isinstance(event, str) else None
    if fields is None:  # a later version's record: not ours to read, ours to keep
        if not isinstance(event, str) or not event:
            return None
        return OtherRecord(_LINE.encode(data), event)
    if not all(isinstance(data.get(k), str) for k in fields):
        return None
    if event == REVOKED_EVENT:
        return RevocationRecord(**{k: data[k] for k in _REVOKED_FIELDS})
    if event == KEY_EVENT:
        manifest = data.get("manifest")
        return KeyRecord(**{k: data[k] for k in _KEY_FIELDS}, manifest=manifest if isinstance(manifest, str) else None)
    return JournalRecord(**{k: data[k] for k in _FIELDS}, issued=_issued(data))


def _issued(data: Mapping[str, object]) -> Issued:
    """The optional fields of an ``issued`` line; any that does not read is left empty."""
    manifest, outputs, replaces = data.get("manifest"), data.get("outputs"), data.get("replaces")
    return Issued(
        manifest=manifest if isinstance(manifest, str) else None,
        outputs={k: v for k, v in outputs.items() if isinstance(k, str) and isinstance(v, str)}
        if isinstance(outputs, dict) else {},
        replaces=replaces if isinstance(replaces, str) else None,
        key_lost=data.get("key_lost") is True,
    )


def read_events(path: Path) -> tuple[list[Event], int]:
    """Every whole line of a journal (issued and revoked), in order, and how many damaged
    lines were skipped."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    events: list[Event] = []
    damaged = 0
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        record = parse_line(line)
        if record is None:
            damaged += 1
        else:
            events.append(record)
    return events, damaged


def read_journal(path: Path) -> tuple[list[JournalRecord], int]:
    """The ``issued`` records of a journal, in order, and how many damaged lines were skipped."""
    events, damaged = read_events(path)
    return [e for e in events if isinstance(e, JournalRecord)], damaged


class Recorder(Protocol):
    """An open state for writing (this file's :class:`Journal`, or an s3 state's recorder):
    lookups by (CA ARN, token) and durable records from many threads."""

    damaged_lines: int

    def lookup(self, ca_arn: str, token: str) -> str | None: ...

    def recorded_here(self, ca_arn: str, token: str) -> bool: ...

    def record_issued(self, *, name: str, token: str, ca_arn: str, certificate_arn: str,
                      issued: Issued | None = None) -> JournalRecord: ...

    def record_issued_many(self, records: list[JournalRecord]) -> list[JournalRecord]: ...

    def record_revoked(self, *, name: str, ca_arn: str, certificate_arn: str, reason: str) -> RevocationRecord: ...

    def record_key(self, record: KeyRecord) -> None: ...

    def close(self) -> None: ...


class Journal:
    """An open journal: lookups by (CA ARN, token) and durable appends from many threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        records, self.damaged_lines = read_journal(path)
        self._arns: dict[tuple[str, str], str] = {}
        for record in records:
            self._arns[(record.ca_arn, record.token)] = record.certificate_arn
        self._lock = threading.Lock()  # guards the descriptor, the lookups and the write count
        self._sync_lock = threading.Lock()  # one fsync at a time
        self._written = 0  # lines written so far
        self._synced = 0  # lines known to be on disk
        self._failed: list[tuple[int, int, OSError]] = []  # (after, up to, error): lines a failed fsync covered
        self._here: set[tuple[str, str]] = set()  # (CA ARN, token) recorded through this object
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._end_torn_line()

    def _end_torn_line(self) -> None:
        size = os.fstat(self._require_fd()).st_size
        if size == 0:
            return
        with open(self.path, "rb") as fh:
            fh.seek(size - 1)
            last = fh.read(1)
        if last != b"\n":
            self._write(b"\n")
            os.fsync(self._require_fd())

    def _require_fd(self) -> int:
        if self._fd is None:
            raise ValueError(f"journal {self.path} is closed")
        return self._fd

    def _write(self, data: bytes) -> None:
        fd = self._require_fd()
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]

    def _sync(self, line: int) -> None:
        """Return once line number ``line`` is on disk, sharing an fsync with other threads."""
        with self._sync_lock:
            for after, upto, error in self._failed:
                if after < line <= upto:  # the fsync we waited on failed; a second one would not say so
                    raise OSError(error.errno, error.strerror)
            if self._synced >= line:
                return  # another thread's fsync, begun after our write, covered it
            with self._lock:
                target = self._written
                fd = self._require_fd()
            try:
                os.fsync(fd)
            except OSError as exc:
                self._failed.append((self._synced, target, exc))
                raise
            self._synced = target

    def __len__(self) -> int:
        with self._lock:
            return len(self._arns)

    def lookup(self, ca_arn: str, token: str) -> str | None:
        """The certificate ARN recorded for this CA and idempotency token, if any."""
        with self._lock:
            return self._arns.get((ca_arn, token))

    def recorded_here(self, ca_arn: str, token: str) -> bool:
        """True when this object recorded a certificate for this CA and token (during this run)."""
        with self._lock:
            return (ca_arn, token) in self._here

    def record_issued(self, *, name: str, token: str, ca_arn: str, certificate_arn: str,
                      issued: Issued | None = None) -> JournalRecord:
        """Append an ``issued`` line and fsync it; returns only once it is on disk."""
        record = JournalRecord(
            name=name, token=token, ca_arn=ca_arn, certificate_arn=certificate_arn, time=utc_now(),
            issued=issued or Issued(),
        )
        return self.record_issued_many([record])[0]

    def record_issued_many(self, records: list[JournalRecord]) -> list[JournalRecord]:
        """Append the ``issued`` lines of ``records`` in one write and fsync them; returns only once
        they are on disk. Each is a line of its own, read back as if written one by one."""
        if not records:
            return records
        data = "".join(record.to_json() + "\n" for record in records).encode("ascii")
        with self._lock:
            self._write(data)
            self._written += len(records)
            last = self._written
            for record in records:
                key = (record.ca_arn, record.token)
                self._arns[key] = record.certificate_arn
                self._here.add(key)
        self._sync(last)
        return records

    def record_revoked(self, *, name: str, ca_arn: str, certificate_arn: str, reason: str) -> RevocationRecord:
        """Append a ``revoked`` line and fsync it; returns only once it is on disk."""
        record = RevocationRecord(
            name=name, ca_arn=ca_arn, certificate_arn=certificate_arn, reason=reason, time=utc_now()
        )
        self._append(record)
        return record

    def record_key(self, record: KeyRecord) -> None:
        """Append a ``key`` line and fsync it; returns only once it is on disk."""
        self._append(record)

    def _append(self, record: RevocationRecord | KeyRecord) -> None:
        line = (record.to_json() + "\n").encode("ascii")
        with self._lock:
            self._write(line)
            self._written += 1
            mine = self._written
        self._sync(mine)

    def close(self) -> None:
        with self._sync_lock, self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
