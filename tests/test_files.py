"""Atomic output writes: exact modes whatever the umask, no temporary file left, folders made."""

from __future__ import annotations

import stat
import subprocess
import sys
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
