"""What every state location offers the commands: read, record, lock, compact.

A *state* is what pca-batch knows it issued and revoked: the journal's records. It lives
in a file beside the manifest (:mod:`pca_batch.state.filestate`, today's journal) or in
S3 (:mod:`pca_batch.state.s3state`), shared by runners that keep no folder between jobs.
Commands get theirs from :func:`pca_batch.state.open_state` and never know which it is.
"""

from __future__ import annotations

import abc
import getpass
import json
import os
import socket
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from pca_batch import __version__
from pca_batch.errors import PcaBatchError
from pca_batch.model import Shard
from pca_batch.run.journal import Event, JournalRecord, KeyRecord, Recorder, RevocationRecord
from pca_batch.times import utc_now

ALL = "all"  # the lock scope of a run over the whole manifest


class StateError(PcaBatchError):
    """The state cannot be read, written or locked as asked (exit 2: nothing was issued)."""


@dataclass(frozen=True)
class StateView:
    """The state as read: its events in order of recording and how many damaged lines were skipped."""

    events: tuple[Event, ...]
    damaged: int = 0
    pieces: int = 1  # objects or files read (s3: the snapshot and each log object)

    @property
    def issued(self) -> list[JournalRecord]:
        return [e for e in self.events if isinstance(e, JournalRecord)]

    @property
    def revocations(self) -> list[RevocationRecord]:
        return [e for e in self.events if isinstance(e, RevocationRecord)]

    @property
    def keys(self) -> list[KeyRecord]:
        return [e for e in self.events if isinstance(e, KeyRecord)]


@dataclass(frozen=True)
class LockInfo:
    """A lock's body, as Terraform writes its own: who holds it, since when, for what."""

    id: str
    operation: str
    who: str
    version: str
    created: str
    path: str
    scope: str = ALL

    @classmethod
    def new(cls, operation: str, path: str, scope: str) -> LockInfo:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no name for this uid (a container)
            user = f"uid {os.getuid()}"
        who = f"{user}@{socket.gethostname()}"
        return cls(id=str(uuid.uuid4()), operation=operation, who=f"{who} (pid {os.getpid()}){_ci_job(os.environ)}",
                   version=__version__, created=utc_now(), path=path, scope=scope)

    def to_json(self) -> str:
        return json.dumps({"ID": self.id, "Operation": self.operation, "Who": self.who, "Version": self.version,
                           "Created": self.created, "Path": self.path, "Info": self.scope}, indent=2) + "\n"

    @classmethod
    def from_json(cls, data: bytes, path: str) -> LockInfo | None:
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(raw, dict) or not isinstance(raw.get("ID"), str):
            return None
        return cls(id=raw["ID"], operation=str(raw.get("Operation", "?")), who=str(raw.get("Who", "?")),
                   version=str(raw.get("Version", "?")), created=str(raw.get("Created", "?")),
                   path=str(raw.get("Path", path)), scope=str(raw.get("Info", ALL)))

    def describe(self) -> str:
        return (f"held by {self.who} since {self.created} for `{self.operation}` "
                f"(lock ID {self.id}, {self.scope if self.scope != ALL else 'whole manifest'})")


def _ci_job(env: Mapping[str, str]) -> str:
    """The CI job a lock's holder runs in, when there is one: runners' host names say nothing."""
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        return f", {server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    if env.get("CI_JOB_URL"):
        return f", {env['CI_JOB_URL']}"
    return ""


class LockHeld(StateError):
    """Another run holds the lock (exit 2 at once, or after --lock-timeout)."""

    def __init__(self, where: str, holder: LockInfo | None, waited: float | None = None) -> None:
        self.holder = holder
        who = holder.describe() if holder is not None else "held by another run"
        after = f" (waited {waited:.0f} s)" if waited else ""
        unlock = f"; if that run is gone: pca-batch state unlock MANIFEST {holder.id}" if holder is not None else ""
        super().__init__(f"the state {where} is locked{after}: {who}{unlock}")


@dataclass(frozen=True)
class Compacted:
    """What a compaction did: records kept, records moved to the archive, and where that is."""

    kept: int
    archived: int
    archive: str


class State(abc.ABC):
    """One state location. ``display`` names it in messages (a path or an s3:// URL)."""

    display: str

    @abc.abstractmethod
    def read(self) -> StateView:
        """Everything a plan, a run or a revocation needs, in order of recording."""

    @abc.abstractmethod
    def open_recorder(self, view: StateView | None = None) -> Recorder:
        """Open for writing (``view``: the state as just read, to spare a second read)."""

    @abc.abstractmethod
    def acquire(self, operation: str, scope: str, timeout: float | None) -> LockInfo:
        """Take the lock for ``scope`` (ALL, or one shard's); LockHeld when another run has it."""

    @abc.abstractmethod
    def release(self, lock: LockInfo) -> None:
        """Give back a lock this process took."""

    @abc.abstractmethod
    def locks(self) -> list[LockInfo]:
        """The locks held now."""

    @abc.abstractmethod
    def unlock(self, lock_id: str) -> LockInfo:
        """Remove a stale lock by its ID; StateError when there is none such (or it cannot go)."""

    @abc.abstractmethod
    def maybe_compact(self, before: StateView, *, whole: bool, force: bool = False) -> Compacted | None:
        """Fold the history into a snapshot and an archive when it has grown (``before``: the
        state as read before this run wrote to it; ``force``: whatever its size); None when
        it was not the time or another run stood in the way. ``whole``: this process holds
        the lock of the whole state."""

    @contextmanager
    def locked(self, operation: str, scope: str, timeout: float | None) -> Iterator[LockInfo]:
        lock = self.acquire(operation, scope, timeout)
        try:
            yield lock
        finally:
            self.release(lock)

    def close(self) -> None:  # noqa: B027 - most states hold nothing open
        """Let go of what reading and locking opened."""


def scope_of(shard: Shard | None) -> str:
    return ALL if shard is None else f"shard-{shard.index}-of-{shard.count}"


def conflicts(scope: str, other: str) -> bool:
    """Whether runs over these two scopes could touch the same entries: the whole manifest
    meets every shard; shards of one split (the same N) are disjoint."""
    if ALL in (scope, other) or scope == other:
        return True
    return scope.rsplit("-", 1)[-1] != other.rsplit("-", 1)[-1]
