"""Writing files atomically: a temporary file in the same folder, fsync, rename."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import queue
import random
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path


def atomic_write(path: Path, data: bytes | str, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that a reader sees the old or the new file, never half.

    Parent folders are created. ``mode`` is set before any byte is written, so a
    private key is never readable by others, not even for a moment.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    import tempfile  # only here: a run's batches of files are written without it

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def remove_durably(paths: Sequence[Path]) -> list[Path]:
    """Remove ``paths`` in order, the last one only once the removal of the others is durable,
    then that one durably too: a crash in between leaves the last, never only the others.
    Returns the paths removed (one already gone is not). OSError when a removal fails."""
    if not paths:
        return []
    removed: list[Path] = []
    *first, last = paths
    for path in first:
        if _remove(path):
            removed.append(path)
    for folder in dict.fromkeys(p.parent for p in removed):
        _fsync_dir(folder)
    if _remove(last):
        removed.append(last)
        _fsync_dir(last.parent)
    return removed


def _remove(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


class DurabilityError(OSError):
    """Files were written and renamed, but whether they would survive a crash is not known:
    flushing them failed. ``paths`` are the files that waited on the failed flush."""

    def __init__(self, err: int, strerror: str, paths: frozenset[Path]) -> None:
        super().__init__(err, strerror)
        self.paths = paths


# A folder fsync that the file system does not offer (as PostgreSQL's fsync_fname judges it):
# nothing more can be done there, so it is not an error. Any other failure is.
_FOLDER_FSYNC_UNSUPPORTED = frozenset({errno.EINVAL, errno.EBADF, errno.ENOTSUP})


def _fsync_dir(folder: Path) -> None:
    """Make the renames in ``folder`` durable; OSError when that fails."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except PermissionError:  # a folder we may write in but not read: it cannot be fsynced at all
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _FOLDER_FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


# -- many files at once ----------------------------------------------------------------------
#
# Every output is still "a temporary file in the same folder, made durable, then
# renamed", but in groups: a batch writes all its temporary files, then fsyncs each
# (the kernel commits fsyncs that arrive together in one journal transaction), then
# renames each. The renames are made durable once, at the end of the run
# (flush_renames): one fsync of each folder written into. Only pca-batch's own files
# and folders are flushed, never the whole file system (syncfs would also wait for
# every other process's dirty data).


_renamed: dict[str, list[Path]] = {}  # folder -> files renamed into it, the renames not flushed yet
_renamed_lock = threading.Lock()
# Creating and renaming files in one folder from several threads at once makes them spin on the
# folder's lock in the kernel, burning the CPU the signing needs: one thread at a time does it.
_folder_lock = threading.Lock()


def flush_renames() -> None:
    """Make every rename done by atomic_write_many so far durable (one fsync per folder).

    Deferring this to the end of a run is safe: until then a crash can at worst
    lose a rename, leaving the previous file in place, and the journal still holds
    the certificate's ARN, so the next run fetches it again under the same token.
    Every folder is flushed; when some flush fails, :class:`DurabilityError`
    names the files that waited on it.
    """
    with _renamed_lock:
        pending = dict(_renamed)
        _renamed.clear()
    failed: list[OSError] = []
    lost: set[Path] = set()
    for folder, paths in pending.items():
        try:
            _fsync_dir(Path(folder))
        except FileNotFoundError:  # removed since: nothing of ours is left in it to make durable
            continue
        except OSError as exc:
            failed.append(exc)
            lost.update(paths)
    if failed:
        first = failed[0]
        raise DurabilityError(first.errno or errno.EIO, first.strerror or str(first), frozenset(lost))


def note_renamed(path: Path) -> None:
    """A rename into ``path`` made elsewhere (a key moved into place): made durable with the others
    by flush_renames()."""
    with _renamed_lock:
        _renamed.setdefault(str(path.parent), []).append(path)


def atomic_write_many(items: Sequence[tuple[Path, bytes, int]]) -> None:
    """Replace several files atomically (each: temporary file, fsync, rename).

    Safe from many threads at once; returns once every file is durable and renamed (the
    renames are made durable by flush_renames). OSError when a file cannot be written or
    made durable; then no file is renamed. A run writes thousands of files, so each costs
    as few system calls as it can: folders are made and looked at once, the mode is given
    at creation (and set again only when the umask would change it), every file is written
    before the first fsync, so that the file system commits them together.
    """
    temps: list[tuple[int, str, Path]] = []  # open temporary file, its name, its target
    try:
        with _folder_lock:
            for path, data, mode in items:
                temps.append(_write_temp(path, data, mode))
        fsync_all([fd for fd, _tmp, _path in temps])  # the contents, before any rename
        with _folder_lock:
            for _fd, tmp, path in temps:
                os.replace(tmp, path)
        renamed, temps = temps, []
        _close(renamed)
        with _renamed_lock:  # the renames are made durable together, by flush_renames()
            for _fd, tmp, path in renamed:
                _renamed.setdefault(os.path.dirname(tmp), []).append(path)
    finally:
        _close(temps)
        for _fd, tmp, _path in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


# -- fsyncs issued together ---------------------------------------------------------------------
#
# fsyncs asked for at the same time are cheaper than one after another: the disk takes their
# writes in parallel and the block layer merges their cache flushes into a few (with a
# journal, ext4 also commits them together). On this kind of disk: some 200 us a file alone,
# 70 when 16 wait together (measured on an ext4 without a journal, as this machine's is).
# During a run (fsync_helpers()) the helping threads are started once and shared by every
# batch; outside one, a call starts its own, which have ended when it returns. Either way no
# thread is left over afterwards to make a later fork unsafe (the signers and CSR checkers
# are forked while the process has one thread, before a run starts).

FSYNC_THREADS = 16
# a run's shared helpers: each batch takes FSYNC_THREADS - 1 of them, and up to four batches
# write at once (pca_batch.run.pool); on a disk kept busy by others, fsyncs waiting together
# keep it busy for us too
SHARED_HELPERS = 4 * (FSYNC_THREADS - 1)
STOP_WAIT_S = 5.0  # for the helpers to end after a run
FSYNC_TOGETHER_MIN = 8  # files: fewer (one entry's) are fsynced in turn; the entries' threads overlap them


class _Batch:
    """One fsync_all call's files: whoever works on it takes the next file not yet taken."""

    def __init__(self, fds: Sequence[int]) -> None:
        self.fds = fds
        self._next = itertools.count()  # next() on it is atomic: each index is handed out once
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._busy = 0
        self.errors: list[BaseException] = []

    def work(self) -> None:
        with self._lock:
            self._busy += 1
        try:
            while (i := next(self._next)) < len(self.fds):
                try:
                    os.fsync(self.fds[i])
                except BaseException as exc:  # noqa: BLE001 - handed to the calling thread, raised there
                    self.errors.append(exc)
        finally:
            with self._lock:
                self._busy -= 1
                if not self._busy:
                    self._idle.notify_all()

    def wait(self) -> None:
        """Once the caller's own work() has returned (every file taken): until each fsync taken has answered.
        A helper that comes later finds nothing left to take."""
        with self._lock:
            while self._busy:
                self._idle.wait()


class _Helpers:
    """Threads that help fsync_all while a run lasts."""

    def __init__(self, count: int) -> None:
        self.jobs: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        for _ in range(count):
            thread = threading.Thread(target=self._serve, name="pca-batch-fsync", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # no thread to spare: fewer help
                break
            self.threads.append(thread)

    def _serve(self) -> None:
        while (batch := self.jobs.get()) is not None:
            batch.work()

    def stop(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)  # after every batch queued so far
        deadline = time.monotonic() + STOP_WAIT_S
        for thread in self.threads:  # each ends with its fsync (one hung on a dead disk is left, a daemon)
            thread.join(max(0.0, deadline - time.monotonic()))


_helpers: _Helpers | None = None
_helpers_users = 0
_helpers_lock = threading.Lock()


@contextlib.contextmanager
def fsync_helpers() -> Iterator[None]:
    """While inside, fsync_all's helping threads are started once and shared (a run's many batches
    would otherwise each start and end theirs); they have ended when the outermost one leaves."""
    global _helpers, _helpers_users
    with _helpers_lock:
        if _helpers is None:
            _helpers = _Helpers(SHARED_HELPERS)
        _helpers_users += 1
    try:
        yield
    finally:
        with _helpers_lock:
            _helpers_users -= 1
            ending, _helpers = (_helpers, None) if not _helpers_users else (None, _helpers)
        if ending is not None:
            ending.stop()


def fsync_all(fds: Sequence[int]) -> None:
    """fsync every file descriptor of ``fds``, several at once; returns when all have answered
    (every fsync asked for has ended by then). OSError (the first one) when any failed."""
    if len(fds) < FSYNC_TOGETHER_MIN:
        for fd in fds:
            os.fsync(fd)
        return
    batch = _Batch(fds)
    helping = min(FSYNC_THREADS, len(fds)) - 1  # and this thread
    started: list[threading.Thread] = []
    with _helpers_lock:
        shared = _helpers
        if shared is not None:
            for _ in range(min(helping, len(shared.threads))):
                shared.jobs.put(batch)
    if shared is None:
        for _ in range(helping):
            thread = threading.Thread(target=batch.work, name="pca-batch-fsync", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # no thread to spare: fewer do it
                break
            started.append(thread)
    batch.work()
    batch.wait()
    for thread in started:
        thread.join()
    if batch.errors:
        raise batch.errors[0]


def _write_temp(path: Path, data: bytes, mode: int) -> tuple[int, str, Path]:
    folder, name = os.path.split(path)  # not path.parent: a new Path object a file adds up
    _make_folder(folder)
    try:
        fd, tmp = _create_temp(folder, name, mode)
    except FileNotFoundError:  # the folder was removed since it was made: make it again
        _folders.discard(folder)
        _make_folder(folder)
        fd, tmp = _create_temp(folder, name, mode)
    try:
        if _UMASK is None or mode & _UMASK:
            os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    return fd, tmp, path


def _close(temps: Sequence[tuple[int, str, Path]]) -> None:
    for fd, _tmp, _path in temps:
        with contextlib.suppress(OSError):
            os.close(fd)


def _read_umask() -> int | None:
    """This process's umask, read without changing it (Linux); None when unknown."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


_UMASK = _read_umask()
_folders: set[str] = set()  # folders made (or found) during this run


def _make_folder(folder: str) -> None:
    if folder not in _folders:
        os.makedirs(folder, exist_ok=True)
        _folders.add(folder)


_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _create_temp(folder: str, name: str, mode: int) -> tuple[int, str]:
    """A new file beside ``name`` that nobody else can have opened, created with ``mode``."""
    while True:
        tmp = os.path.join(folder, f".{name}.{random.getrandbits(48):012x}.tmp")
        try:
            return os.open(tmp, _TEMP_FLAGS, mode), tmp
        except FileExistsError:
            continue
