"""The JSON request files that entries name with ``cli_input_json: file://PATH``.

Many entries may name the same file: each file is read and parsed once per manifest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pca_batch.manifest import yamlload
from pca_batch.pki import csr as csrmod

PREFIX = "file://"


def read_json_request(path: Path) -> Any:
    """A --cli-input-json file; csr.InputError when unreadable or not JSON."""
    data = csrmod.read_limited(path, csrmod.JSON_MAX_BYTES, "the cli_input_json file")
    try:
        return json.loads(yamlload.decode(data))
    except yamlload.YamlError as exc:
        raise csrmod.InputError(f"the cli_input_json file {path}: {exc.message}") from None
    except json.JSONDecodeError as exc:
        raise csrmod.InputError(
            f"the cli_input_json file {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None


class RequestFiles:
    """The request files of one manifest, relative to its folder, each read once."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self._read: dict[Path, Any] = {}

    def path(self, ref: str) -> Path:
        """The file a ``file://PATH`` reference names."""
        return Path(csrmod.resolve(ref[len(PREFIX) :], self.root))

    def read(self, path: Path) -> dict[str, Any]:
        """The JSON object in ``path`` (shared: copy it before changing it); InputError when there is none."""
        if path not in self._read:
            try:
                self._read[path] = read_json_request(path)
            except csrmod.InputError as exc:
                self._read[path] = exc
        data = self._read[path]
        if isinstance(data, csrmod.InputError):
            raise data
        if not isinstance(data, dict):
            raise csrmod.InputError(f"the cli_input_json file {path} must hold a JSON object")
        return data
