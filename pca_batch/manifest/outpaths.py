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

from pca_batch.errors import Problem
from pca_batch.manifest.yamlload import LineDict
from pca_batch.model import OUTPUT_KINDS, Outputs
from pca_batch.pki.csr import resolve


class OutputPaths:
    """Resolves the ``output:`` blocks of one manifest, remembering which entry writes what."""

    def __init__(self, file: str, root: Path, *, allow_outside: bool) -> None:
        self.file = file
        self.root = str(root)
        self.real_root = os.path.realpath(root)
        self._real_root_sep = self.real_root.rstrip(os.sep) + os.sep
        self.allow_outside = allow_outside
        self._writers: dict[str, tuple[str, int]] = {}  # real path -> (entry, line)
        self._real_dirs: dict[str, tuple[str, Path]] = {}  # folder -> (its real path, its Path)
        self._folders: dict[str, tuple[str, Path]] = {}  # folder as written -> the same

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
            name, real, folder = self._locate(rel)
            if not self.allow_outside and not (real == self.real_root or real.startswith(self._real_root_sep)):
                message = f"{rel} lies outside the manifest's folder; pass --allow-outside-paths if that is intended"
                problems.append(Problem(self.file, at, label, f"$.output.{kind}", message))
                continue
            first = self._writers.setdefault(real, (label, at))
            if first != (label, at):
                message = f"{rel} is also written by {first[0]} (line {first[1]})"
                problems.append(Problem(self.file, at, label, f"$.output.{kind}", message))
                continue
            paths[kind] = folder / name  # parses the name only, not the whole path again
        return Outputs(**paths)

    def _locate(self, rel: str) -> tuple[str, str, Path]:
        """The output's file name, its real path (folders resolved) and its folder as a Path."""
        cut = rel.rfind("/") + 1
        name = rel[cut:]
        if name in ("", ".", "..") or rel.startswith("~"):
            # the general case: normalise the whole path
            folder_text, name = os.path.split(resolve(rel, self.root))
            real_prefix, folder = self._folder(folder_text)
            return name, real_prefix + name, folder
        # the usual case: a plain file name in a folder that other outputs share
        found = self._folders.get(rel[:cut])
        if found is None:
            found = self._folders[rel[:cut]] = self._folder(resolve(rel[:cut] or ".", self.root))
        return name, found[0] + name, found[1]

    def _folder(self, folder: str) -> tuple[str, Path]:
        """A folder's real path (symlinks resolved, ending in a separator) and its Path, each found once."""
        found = self._real_dirs.get(folder)
        if found is None:
            real = os.path.realpath(folder)
            found = self._real_dirs[folder] = (real.rstrip(os.sep) + os.sep, Path(folder))
        return found
