"""The file state: the journal (``.pca-batch/journal.jsonl`` beside the manifest), as it was.

Locks are ``flock``s beside it, so they end with the process that took them (a SIGKILL
leaves none behind): a run over the whole manifest holds ``journal.jsonl.lock``
exclusively; a shard holds it shared and ``journal.jsonl.shard-K-of-N.lock`` exclusively.
The holder of an exclusive lock writes who it is into that file, for the message of
whoever finds it held.

Compaction rewrites the journal with what :mod:`pca_batch.state.compaction` keeps, under
the exclusive lock (no other process has the journal open for appending then): first the
rest goes to ``archive/journal-<digest>.jsonl`` beside it, made durable, then the kept
lines replace the journal by an atomic rename. A crash in between leaves the whole journal
(and an archive that the next compaction writes again, identically).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from pathlib import Path

from pca_batch.run.journal import Journal, read_events
from pca_batch.state import compaction
from pca_batch.state.base import ALL, Compacted, LockHeld, LockInfo, Recorder, State, StateError, StateView

POLL = 0.25  # seconds between attempts while waiting for a lock


class FileState(State):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.display = str(path)
        self._held: dict[str, list[int]] = {}  # lock ID -> descriptors holding it

    def read(self) -> StateView:
        events, damaged = read_events(self.path)
        return StateView(tuple(events), damaged)

    def open_recorder(self, view: StateView | None = None) -> Recorder:
        return Journal(self.path)

    # -- locks ------------------------------------------------------------------------------

    def _lock_file(self, scope: str) -> Path:
        return self.path.with_name(self.path.name + ".lock" if scope == ALL else f"{self.path.name}.{scope}.lock")

    def _open(self, path: Path) -> int:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StateError(f"cannot open the lock {path}: {exc.strerror}") from None

    def acquire(self, operation: str, scope: str, timeout: float | None) -> LockInfo:
        info = LockInfo.new(operation, str(self.path), scope)
        started = time.monotonic()
        while True:
            fds = self._try(info)
            if fds is not None:
                self._held[info.id] = fds
                return info
            waited = time.monotonic() - started
            if timeout is None or waited >= timeout:
                holders = self.locks()
                raise LockHeld(self.display, holders[0] if holders else None, waited if timeout else None)
            time.sleep(min(POLL, max(0.0, timeout - waited)))

    def _try(self, info: LockInfo) -> list[int] | None:
        """The descriptors holding the lock for ``info.scope``, or None when another process holds it."""
        main = self._open(self._lock_file(ALL))
        fds = [main]
        try:
            fcntl.flock(main, (fcntl.LOCK_EX if info.scope == ALL else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            if info.scope != ALL:
                fds.append(own := self._open(self._lock_file(info.scope)))
                fcntl.flock(own, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            for fd in fds:
                os.close(fd)
            return None
        body = info.to_json().encode()
        os.ftruncate(fds[-1], 0)
        os.pwrite(fds[-1], body, 0)
        return fds

    def release(self, lock: LockInfo) -> None:
        for fd in reversed(self._held.pop(lock.id, [])):
            os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor ends its flock

    def locks(self) -> list[LockInfo]:
        """The holders that wrote who they are; a lock file no process holds says nothing."""
        found: list[LockInfo] = []
        if not self.path.parent.is_dir():
            return found
        for path in sorted(self.path.parent.glob(self.path.name + "*.lock")):
            info = self._holder(path)
            if info is not None:
                found.append(info)
        return sorted(found, key=lambda i: i.scope != ALL)

    def _holder(self, path: Path) -> LockInfo | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return None  # nobody holds it (this process's own locks are other descriptions: held)
            except BlockingIOError:
                pass
            return LockInfo.from_json(os.pread(fd, 4096, 0), str(self.path))
        finally:
            os.close(fd)

    def unlock(self, lock_id: str) -> LockInfo:
        held = [i for i in self.locks() if i.id == lock_id]
        if held:
            raise StateError(f"the lock {lock_id} on {self.display} is {held[0].describe()[5:]}: a file state's "
                             "lock ends with the process that holds it; stop that run instead")
        raise StateError(f"no lock with ID {lock_id} is held on {self.display} (a file state's locks end with "
                         "the process that took them, so none is ever left behind)")

    # -- compaction -------------------------------------------------------------------------

    def maybe_compact(self, before: StateView, *, whole: bool, force: bool = False) -> Compacted | None:
        if not whole:
            return None  # other processes may have the journal open for appending
        if not force and not compaction.worth_it(before.events):
            return None
        kept, archived = compaction.split(list(self.read().events))
        if not archived:
            return None
        data = compaction.lines(archived)
        folder = self.path.parent / "archive"
        archive = folder / f"{self.path.stem}-{hashlib.sha256(data).hexdigest()[:16]}.jsonl"
        try:
            folder.mkdir(exist_ok=True)
            _write_durably(archive, data)
            _write_durably(self.path, compaction.lines(kept))
        except OSError as exc:
            raise StateError(f"cannot compact {self.display}: {exc.strerror or exc}") from None
        return Compacted(kept=len(kept), archived=len(archived), archive=str(archive))


def _write_durably(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: a temporary file, fsync, rename, fsync of the folder."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
