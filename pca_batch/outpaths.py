"""Where an entry's files go: resolved against the manifest's folder, kept inside it,
and never written by two entries.

A manifest from an untrusted branch must not overwrite files elsewhere, so an output
whose real path (symlinks resolved) leaves the manifest's folder is a problem unless
``--allow-outside-paths`` is given. Only the folders are resolved: outputs are
replaced by rename, which never follows a symlink in the last component.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pca_batch.csr import resolve
from pca_batch.errors import Problem
from pca_batch.model import OUTPUT_KINDS, Outputs
from pca_batch.yamlload import LineDict


class OutputPaths:
    """Resolves the ``output:`` blocks of one manifest, remembering which entry writes what."""

    def __init__(self, file: str, root: Path, *, allow_outside: bool) -> None:
        self.file = file
        self.root = str(root)
        self.real_root = os.path.realpath(root)
        self._real_root_sep = self.real_root.rstrip(os.sep) + os.sep
        self.allow_outside = allow_outside
        self._writers: dict[str, tuple[str, int]] = {}  # real path -> (entry, line)
        self._real_dirs: dict[str, str] = {}
        self._dir_paths: dict[str, Path] = {}

    def resolve(self, raw: dict[str, Any], line: int, label: str, problems: list[Problem]) -> Outputs:
        out = raw.get("output")
        if not isinstance(out, dict):
            return Outputs()
        lines = out.value_lines if isinstance(out, LineDict) else {}
        paths: dict[str, Path] = {}
        for kind in OUTPUT_KINDS:
            rel = out.get(kind)
            if not isinstance(rel, str) or not rel:
                continue
            at = lines.get(kind, line)
            path = resolve(rel, self.root)
            real = self._realpath(path)
            where = f"$.output.{kind}"
            if not self.allow_outside and not (real == self.real_root or real.startswith(self._real_root_sep)):
                message = f"{rel} lies outside the manifest's folder; pass --allow-outside-paths if that is intended"
                problems.append(Problem(self.file, at, label, where, message))
                continue
            first = self._writers.setdefault(real, (label, at))
            if first != (label, at):
                problems.append(
                    Problem(self.file, at, label, where, f"{rel} is also written by {first[0]} (line {first[1]})")
                )
                continue
            paths[kind] = self._path(path)
        return Outputs(**paths)

    def _realpath(self, path: str) -> str:
        folder, name = os.path.split(path)
        real = self._real_dirs.get(folder)
        if real is None:
            real = self._real_dirs[folder] = os.path.realpath(folder)
        return os.path.join(real, name)

    def _path(self, path: str) -> Path:
        folder, name = os.path.split(path)
        parent = self._dir_paths.get(folder)
        if parent is None:
            parent = self._dir_paths[folder] = Path(folder)
        return parent / name  # parses the name only, not the whole path again
