"""Writing files atomically: a temporary file in the same folder, fsync, rename."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import random
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path


def atomic_write(path: Path, data: bytes | str, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that a reader sees the old or the new file, never half.

    Parent folders are created. ``mode`` is set before any byte is written, so a
    private key is never readable by others, not even for a moment.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
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


# -- many files at once, with shared flushes -------------------------------------------------
#
# Every output is still "a temporary file in the same folder, made durable, then
# renamed", but the flushes are shared: a worker writes its temporary files, then
# waits for one syncfs(2) of the file system that covers them (started after its
# writes, possibly by another thread), and renames. The renames themselves are
# flushed once, at the end of the run (flush_renames). Sixteen workers finishing
# together cost one syncfs, not forty-eight fsyncs. Where syncfs is missing, each
# file and folder is fsynced.
#
# A failed flush is an error for every file that waited on it, never only for the
# thread that happened to call syncfs: the kernel reports a write-back error once,
# so a waiter that called syncfs again would be told all is well.


def _load_syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        func = libc.syncfs
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int]
    func.restype = ctypes.c_int
    return func  # type: ignore[no-any-return]


_SYNCFS = _load_syncfs()


class _Barrier:
    """Group commit for one file system: returns once a syncfs begun after the call has ended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._requested = 0
        self._synced = 0
        self._failed: list[tuple[int, int, int]] = []  # (after, up to, errno): requests a failed syncfs covered

    def wait(self, fd: int) -> None:
        """Return once this thread's writes are durable; OSError when the syncfs covering them failed."""
        sync = _SYNCFS
        assert sync is not None
        with self._lock:
            self._requested += 1
            mine = self._requested
        with self._sync_lock:
            for after, upto, err in self._failed:
                if after < mine <= upto:
                    raise OSError(err, os.strerror(err))  # the syncfs we waited on failed
            if self._synced >= mine:
                return  # a syncfs that began after our writes has covered them
            with self._lock:
                target = self._requested
            if sync(fd) != 0:
                err = ctypes.get_errno()
                self._failed.append((self._synced, target, err))
                raise OSError(err, os.strerror(err))
            self._synced = target


_barriers: dict[int, _Barrier] = {}
_barriers_lock = threading.Lock()


def _barrier(device: int) -> _Barrier:
    with _barriers_lock:
        return _barriers.setdefault(device, _Barrier())


_renamed: dict[int, list[Path]] = {}  # file system -> files renamed on it, the renames not flushed yet
_renamed_lock = threading.Lock()


def flush_renames() -> None:
    """Make every rename done by atomic_write_many so far durable (one syncfs per file system).

    Deferring this to the end of a run is safe: until then a crash can at worst
    lose a rename, leaving the previous file in place, and the journal still holds
    the certificate's ARN, so the next run fetches it again under the same token.
    Every file system is flushed; when some flush fails, :class:`DurabilityError`
    names the files that waited on it.
    """
    with _renamed_lock:
        pending = dict(_renamed)
        _renamed.clear()
    failed: list[OSError] = []
    lost: set[Path] = set()
    for device, paths in pending.items():
        try:
            _flush(device, *dict.fromkeys(str(p.parent) for p in paths))
        except OSError as exc:
            failed.append(exc)
            lost.update(paths)
    if failed:
        first = failed[0]
        raise DurabilityError(first.errno or errno.EIO, first.strerror or str(first), frozenset(lost))


def note_renamed(path: Path) -> None:
    """A rename into ``path`` made elsewhere (a key moved into place): made durable with the others
    by flush_renames(), or at once where there is no syncfs."""
    if _SYNCFS is None:
        _fsync_dir(path.parent)
        return
    device = _folder_device(path.parent)
    with _renamed_lock:
        _renamed.setdefault(device, []).append(path)


def atomic_write_many(items: Sequence[tuple[Path, bytes, int]]) -> None:
    """Replace several files atomically (each: temporary file, durable, rename), sharing flushes.

    Safe from many threads at once; returns once every file is durable and renamed (the
    renames are made durable by flush_renames). OSError when a file cannot be written or
    made durable; then no file is renamed. A run writes thousands of files from many
    threads, so each costs as few system calls as it can: folders are made and looked at
    once, the mode is given at creation (and set again only when the umask would change it).
    """
    if _SYNCFS is None:
        for path, data, mode in items:
            atomic_write(path, data, mode=mode)
        return
    temps: list[tuple[str, Path, int]] = []  # temporary file, target, file system
    try:
        for path, data, mode in items:
            folder = str(path.parent)
            device = _folder_device(path.parent)
            try:
                fd, tmp = _create_temp(folder, path.name, mode)
            except FileNotFoundError:  # the folder was removed since it was made: make it again
                _devices.pop(folder, None)
                device = _folder_device(path.parent)
                fd, tmp = _create_temp(folder, path.name, mode)
            temps.append((tmp, path, device))
            try:
                if _UMASK is None or mode & _UMASK:
                    os.fchmod(fd, mode)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        folders: dict[int, str] = {}
        for _tmp, path, device in temps:
            folders.setdefault(device, str(path.parent))
        for device, folder in folders.items():
            _flush(device, folder)  # the contents, before any rename
        for tmp, path, _device in temps:
            os.replace(tmp, path)
        renamed, temps = temps, []
        with _renamed_lock:  # the renames are made durable together, by flush_renames()
            for _tmp, path, device in renamed:
                _renamed.setdefault(device, []).append(path)
    finally:
        for tmp, _path, _device in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


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
_devices: dict[str, int] = {}  # folders made (or found) during this run -> their file system


def _folder_device(folder: Path) -> int:
    key = str(folder)
    device = _devices.get(key)
    if device is None:
        folder.mkdir(parents=True, exist_ok=True)
        device = _devices[key] = os.stat(key).st_dev
    return device


_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _create_temp(folder: str, name: str, mode: int) -> tuple[int, str]:
    """A new file beside ``name`` that nobody else can have opened, created with ``mode``."""
    while True:
        tmp = os.path.join(folder, f".{name}.{random.getrandbits(48):012x}.tmp")
        try:
            return os.open(tmp, _TEMP_FLAGS, mode), tmp
        except FileExistsError:
            continue


def _flush(device: int, *folders: str) -> None:
    """Wait for a syncfs of ``device``, reached through the first of ``folders`` still there."""
    fd = _open_folder(folders)
    try:
        _barrier(device).wait(fd)
    finally:
        os.close(fd)


def _open_folder(folders: Sequence[str]) -> int:
    for folder in folders[:-1]:
        with contextlib.suppress(FileNotFoundError):
            return os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    return os.open(folders[-1], os.O_RDONLY | os.O_DIRECTORY)
