"""Atomic output writes: exact modes whatever the umask, no temporary file left, folders made."""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

SCRIPT = """
import os, sys
from pathlib import Path
os.umask(int(sys.argv[2], 8))
from pca_batch import files as outputs
root = Path(sys.argv[1])
outputs.atomic_write_many([(root / "a" / "cert.pem", b"cert", 0o644), (root / "a" / "key.pem", b"key", 0o600),
                           (root / "b" / "c" / "chain.pem", b"chain", 0o644)])
outputs.atomic_write_many([(root / "a" / "cert.pem", b"cert2", 0o644)])  # replaces
outputs.flush_renames()
"""


@pytest.mark.parametrize("umask", ["077", "022", "002", "000"])
def test_files_get_exactly_their_mode_whatever_the_umask(tmp_path: Path, umask: str) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), umask], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    def mode(p: Path) -> int:
        return stat.S_IMODE(p.stat().st_mode)

    assert (tmp_path / "a" / "cert.pem").read_bytes() == b"cert2"
    assert mode(tmp_path / "a" / "cert.pem") == 0o644 and mode(tmp_path / "a" / "key.pem") == 0o600
    assert (tmp_path / "b" / "c" / "chain.pem").read_bytes() == b"chain"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["cert.pem", "chain.pem", "key.pem"]


def test_a_folder_removed_between_two_writes_is_made_again(tmp_path: Path) -> None:
    import shutil

    from pca_batch import files as outputs

    target = tmp_path / "out" / "cert.pem"
    outputs.atomic_write_many([(target, b"one", 0o644)])
    shutil.rmtree(tmp_path / "out")
    outputs.atomic_write_many([(target, b"two", 0o644)])
    outputs.flush_renames()
    assert target.read_bytes() == b"two"


# -- failures to make outputs durable are errors, never swallowed ------------------------------


def _failing_syncfs(monkeypatch: pytest.MonkeyPatch, fail: Callable[[], bool]) -> list[int]:
    """Replace the syncfs hook: fails with EIO whenever ``fail()`` says so; returns the calls."""
    from pca_batch import files as outputs

    calls: list[int] = []

    def syncfs(fd: int) -> int:
        calls.append(fd)
        if fail():
            ctypes.set_errno(errno.EIO)
            return -1
        return 0

    monkeypatch.setattr(outputs, "_SYNCFS", syncfs)
    return calls


def test_a_failed_syncfs_of_the_contents_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pca_batch import files as outputs

    _failing_syncfs(monkeypatch, lambda: True)
    target = tmp_path / "out" / "cert.pem"
    with pytest.raises(OSError) as caught:
        outputs.atomic_write_many([(target, b"one", 0o644)])
    assert caught.value.errno == errno.EIO
    assert not target.exists() and list((tmp_path / "out").iterdir()) == []  # not renamed, temp removed


def test_a_failed_rename_flush_names_the_files_it_could_not_make_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pca_batch import files as outputs

    outputs.flush_renames()  # nothing left over from other tests
    failing = threading.Event()
    _failing_syncfs(monkeypatch, failing.is_set)
    outputs.atomic_write_many([(tmp_path / "a" / "cert.pem", b"a", 0o644), (tmp_path / "b" / "cert.pem", b"b", 0o644)])
    failing.set()
    with pytest.raises(outputs.DurabilityError) as caught:
        outputs.flush_renames()
    assert caught.value.errno == errno.EIO
    assert caught.value.paths == {tmp_path / "a" / "cert.pem", tmp_path / "b" / "cert.pem"}
    failing.clear()
    outputs.flush_renames()  # the failure was reported once, to the files that waited on that flush


def test_everyone_waiting_on_a_failed_syncfs_gets_the_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """syncfs reports a write-back error once: a writer that waited on the failed call must not
    retry, succeed and believe its data is on disk."""
    from pca_batch import files as outputs

    first_started, release_first = threading.Event(), threading.Event()
    answers = iter([0, -1])  # the first syncfs succeeds, the second fails; any later one would succeed

    def syncfs(fd: int) -> int:
        if not first_started.is_set():
            first_started.set()
            release_first.wait(10)
        answer = next(answers, 0)
        if answer:
            ctypes.set_errno(errno.EIO)
        return answer

    monkeypatch.setattr(outputs, "_SYNCFS", syncfs)
    barrier = outputs._Barrier()
    errors: dict[str, BaseException | None] = {}

    def wait(name: str) -> None:
        try:
            barrier.wait(0)
            errors[name] = None
        except OSError as exc:
            errors[name] = exc

    first = threading.Thread(target=wait, args=("first",))
    first.start()
    assert first_started.wait(10)
    later = [threading.Thread(target=wait, args=(name,)) for name in ("second", "third")]
    for thread in later:
        thread.start()
    while barrier._requested < 3:  # both wait behind the first call
        time.sleep(0.001)
    release_first.set()
    for thread in (first, *later):
        thread.join(10)
    assert errors["first"] is None
    assert isinstance(errors["second"], OSError) and isinstance(errors["third"], OSError)


def test_a_failed_folder_fsync_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pca_batch import files as outputs

    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError) as caught:
        outputs.atomic_write(tmp_path / "cert.pem", b"cert")
    assert caught.value.errno == errno.EIO


def test_a_folder_fsync_the_file_system_does_not_support_is_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pca_batch import files as outputs

    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    outputs.atomic_write(tmp_path / "cert.pem", b"cert")
    assert (tmp_path / "cert.pem").read_bytes() == b"cert"
