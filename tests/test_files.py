"""Atomic output writes: exact modes whatever the umask, no temporary file left, folders made."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


def _failing_fsync(monkeypatch: pytest.MonkeyPatch, fail: Callable[[bool], bool]) -> list[str]:
    """Replace os.fsync: fails with EIO whenever ``fail(is_folder)`` says so; returns what was flushed."""
    real_fsync = os.fsync
    calls: list[str] = []

    def fsync(fd: int) -> None:
        folder = stat.S_ISDIR(os.fstat(fd).st_mode)
        calls.append(os.readlink(f"/proc/self/fd/{fd}"))
        if fail(folder):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


def test_a_failed_fsync_of_the_contents_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pca_batch import files as outputs

    _failing_fsync(monkeypatch, lambda folder: not folder)
    target = tmp_path / "out" / "cert.pem"
    with pytest.raises(OSError) as caught:
        outputs.atomic_write_many([(target, b"one", 0o644), (tmp_path / "out" / "chain.pem", b"two", 0o644)])
    assert caught.value.errno == errno.EIO
    assert list((tmp_path / "out").iterdir()) == []  # nothing renamed, the temporary files removed


def test_a_failed_rename_flush_names_the_files_it_could_not_make_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pca_batch import files as outputs

    outputs.flush_renames()  # nothing left over from other tests
    failing = threading.Event()
    _failing_fsync(monkeypatch, lambda folder: folder and failing.is_set())
    outputs.atomic_write_many([(tmp_path / "a" / "cert.pem", b"a", 0o644), (tmp_path / "b" / "cert.pem", b"b", 0o644)])
    failing.set()
    with pytest.raises(outputs.DurabilityError) as caught:
        outputs.flush_renames()
    assert caught.value.errno == errno.EIO
    assert caught.value.paths == {tmp_path / "a" / "cert.pem", tmp_path / "b" / "cert.pem"}
    failing.clear()
    outputs.flush_renames()  # the failure was reported once, to the files that waited on that flush


def test_only_the_files_written_and_their_folders_are_flushed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each file once, before its rename; each folder once, at the end; nothing else (no syncfs)."""
    from pca_batch import files as outputs

    outputs.flush_renames()
    calls = _failing_fsync(monkeypatch, lambda folder: False)
    out = tmp_path / "out"
    written = [(out / f"{i}.pem", b"x", 0o644) for i in range(3)]
    outputs.atomic_write_many([*written, (tmp_path / "k" / "a", b"y", 0o600)])
    assert len(calls) == 4 and all(Path(c).name.endswith(".tmp") for c in calls)
    outputs.atomic_write_many([(out / "3.pem", b"z", 0o644)])
    calls.clear()
    outputs.flush_renames()
    assert sorted(calls) == sorted([str(out), str(tmp_path / "k")])


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


_NAMES = st.sampled_from(["a/cert.pem", "a/chain.pem", "b/cert.pem", "b/c/key.pem", "top.pem"])
_WRITES = st.lists(st.tuples(_NAMES, st.binary(max_size=300), st.sampled_from([0o644, 0o600, 0o640])), max_size=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(_WRITES, min_size=1, max_size=4))
def test_batched_writes_leave_what_one_by_one_writes_leave(
    tmp_path: Path, batches: list[list[tuple[str, bytes, int]]]
) -> None:
    """The fast path (atomic_write_many: write all, fsync each, rename each, folders at the end)
    against the slow one (atomic_write: one file at a time, its folder fsynced at once)."""
    import shutil

    from pca_batch import files as outputs

    fast, slow = tmp_path / "fast", tmp_path / "slow"
    for root in (fast, slow):
        shutil.rmtree(root, ignore_errors=True)
    for batch in batches:
        outputs.atomic_write_many([(fast / name, data, mode) for name, data, mode in batch])
        for name, data, mode in batch:
            outputs.atomic_write(slow / name, data, mode=mode)
    outputs.flush_renames()

    def seen(root: Path) -> dict[str, tuple[bytes, int]]:
        return {str(p.relative_to(root)): (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
                for p in root.rglob("*") if p.is_file()}

    assert seen(fast) == seen(slow)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(count=st.integers(min_value=0, max_value=40), failing=st.sets(st.integers(min_value=0, max_value=39)),
       shared=st.booleans(), calls=st.integers(min_value=1, max_value=3))
def test_fsyncs_issued_together_flush_each_file_once_as_one_by_one_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int, failing: set[int], shared: bool, calls: int
) -> None:
    """fsync_all (the fast path: a batch's fsyncs from several threads at once, the call's own or,
    during a run, threads shared by several calls at once) against fsyncing each file in turn:
    every file flushed exactly once (together: even when some fail); the first failure is raised,
    after every fsync asked for has answered (none left running); no thread is left afterwards."""
    from pca_batch import files as outputs

    paths = [tmp_path / f"f{i}" for i in range(count)]
    fds = [os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) for p in paths]
    bad = {os.path.realpath(paths[i]) for i in failing if i < count}
    real_fsync = os.fsync
    flushed: list[str] = []
    lock = threading.Lock()

    def fsync(fd: int) -> None:
        where = os.readlink(f"/proc/self/fd/{fd}")
        with lock:
            flushed.append(where)
        if where in bad:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    try:
        # ``calls`` threads each fsync the same files at once (as a run's batches share the helpers)
        raised: list[BaseException | None] = [None] * calls

        def call(k: int) -> None:
            try:
                outputs.fsync_all(fds)
            except OSError as exc:
                raised[k] = exc

        with monkeypatch.context() as patch:  # undone after each example: hypothesis runs many
            patch.setattr(os, "fsync", fsync)
            with outputs.fsync_helpers() if shared else contextlib.nullcontext():
                callers = [threading.Thread(target=call, args=(k,)) for k in range(calls)]
                for caller in callers:
                    caller.start()
                for caller in callers:
                    caller.join()
        for exc in raised:
            if bad:
                assert isinstance(exc, OSError) and exc.errno == errno.EIO
            else:
                assert exc is None
        real = [os.path.realpath(p) for p in paths]
        with lock:
            if bad and count < outputs.FSYNC_TOGETHER_MIN:  # one by one: up to the first failure, as before
                first = min(i for i, path in enumerate(real) if path in bad)
                assert sorted(flushed) == sorted(real[: first + 1] * calls)
            else:
                assert sorted(flushed) == sorted(real * calls)
        assert not [t for t in threading.enumerate() if t.name == "pca-batch-fsync"]  # a later fork stays safe
    finally:
        for fd in fds:
            os.close(fd)


def test_fsyncs_are_all_made_when_no_thread_can_be_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Out of threads: the calling thread fsyncs them all itself, none skipped."""
    from pca_batch import files as outputs

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    paths = [tmp_path / f"f{i}" for i in range(outputs.FSYNC_TOGETHER_MIN + 2)]
    fds = [os.open(p, os.O_WRONLY | os.O_CREAT, 0o644) for p in paths]
    calls = _failing_fsync(monkeypatch, lambda folder: False)
    monkeypatch.setattr(threading.Thread, "start", refuse)
    try:
        outputs.fsync_all(fds)
    finally:
        for fd in fds:
            os.close(fd)
    assert sorted(calls) == sorted(str(p) for p in paths)
