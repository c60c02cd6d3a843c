"""What loading one manifest needs to know besides its text: where it is, the
environment and clock it is read with, what it may do, and who listens."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pca_batch.errors import ManifestError, Problem
from pca_batch.manifest.interpolate import Unset
from pca_batch.model import BackendConfig, Entry, RunSettings


@dataclass(frozen=True)
class LoadContext:
    display: str  # the manifest's path as the user gave it, for messages
    path: Path  # its absolute path
    root: Path  # its folder: relative paths start here, outputs stay in it
    env: Mapping[str, str]  # where ${VAR} values come from
    now: datetime  # the clock Validity ends are checked against
    allow_outside_paths: bool = False
    # None: a ${VAR} that is not set is a problem. A set (validate --offline, as in a pre-commit hook,
    # away from the CI's environment): it is not, its name is noted here, and the value it fills goes unchecked.
    unset_env: set[str] | None = None

    def excuses(self, message: str) -> bool:
        """Is this the message of an unset variable that need not be set? Notes its name if so."""
        if self.unset_env is None or not isinstance(message, Unset):
            return False
        self.unset_env.add(message.name)
        return True

    def fatal(self, line: int, message: str, where: str = "$") -> ManifestError:
        """The error for a manifest that cannot be read at all."""
        return ManifestError([Problem(self.display, max(line, 1), "-", where, message)])


@dataclass(frozen=True)
class Listeners:
    """For getting the backend ready while the entries are still being read.

    ``on_backend`` hears the backend's settings as soon as they are read and
    accepted, before the entries; ``on_entry`` hears each valid entry as soon as
    it is built (its CSR not yet checked).
    """

    on_backend: Callable[[BackendConfig, RunSettings], None] | None = None
    on_entry: Callable[[Entry], None] | None = None
