"""The last step of ``apply``: revoke what renewals replaced, and with ``--prune`` the orphans.

It runs once the outputs are durable, so a replaced certificate is never revoked before
its successor's files are in place; an interrupted run skips it (the next run does it:
both lists are read from the journal). A replaced certificate's revocation is reported on
its entry's row (``revoked_replaced``; the row fails when it could not be revoked); an
orphan gets a row of its own, ``revoked``, after the manifest's entries.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pca_batch.model import FAILED, ISSUED, RECOVERED, REVOKED, UNCHANGED, Entry, Result, Retired
from pca_batch.plan.prune import Revocation, replaced
from pca_batch.plan.renewal import IssuedIndex
from pca_batch.run.revoke import RevokeConfig, Revoker

if TYPE_CHECKING:
    from pca_batch.backends import Backend
    from pca_batch.state import State

_HOLDS = (ISSUED, RECOVERED, UNCHANGED)  # statuses after which the entry's files hold result.certificate_arn


@dataclass(frozen=True)
class Retirement:
    """What the phase needs from the session."""

    state: State
    manifest_file: str  # the manifest's file name, as the journal records it
    config: RevokeConfig
    open_backend: Callable[[], Backend]  # called once, only when some revocation needs a call; the caller closes it


def replaced_after(entries: Mapping[str, Entry], results: Sequence[Result], index: IssuedIndex,
                   manifest_file: str) -> list[Revocation]:
    """The replaced certificates to revoke now: for each entry with ``revoke_replaced`` whose
    files hold a certificate, the ones its lineage replaced that are not revoked yet."""
    out: list[Revocation] = []
    for result in results:
        entry = entries.get(result.name)
        if entry is None or entry.revoke_replaced is None or result.status not in _HOLDS:
            continue
        if result.certificate_arn:
            out += replaced(entry, result.certificate_arn, index, manifest_file)
    return out


def retire(
    how: Retirement,
    entries: Sequence[Entry],
    results: list[Result],
    orphans: Sequence[Revocation],
    *,
    on_result: Callable[[Result], None] | None = None,
    stop: threading.Event | None = None,
) -> list[Result]:
    """The results with the replaced certificates' revocations on their entries' rows and a
    row for each orphan. ``stop``, once set, starts no further revocation."""
    with_replacing = {e.name: e for e in entries if e.revoke_replaced is not None}
    todo: list[Revocation] = []
    if with_replacing:
        index = IssuedIndex.from_events(how.state.read().events)  # this run's lines included
        todo = replaced_after(with_replacing, results, index, how.manifest_file)
    todo += orphans
    if not todo:
        return results
    backend = how.open_backend() if any(t.needs_call for t in todo) else None
    with contextlib.closing(how.state.open_recorder()) as journal:
        outcomes = Revoker(backend, journal, how.config, stop=stop).run(todo, on_result=on_result)
    by_entry: dict[str, list[Result]] = {}
    for item, outcome in zip(todo, outcomes, strict=True):
        if item.replaced_by is not None:
            by_entry.setdefault(item.name, []).append(outcome)
    merged = [_with_retired(r, by_entry[r.name]) if r.name in by_entry else r for r in results]
    return merged + [o for item, o in zip(todo, outcomes, strict=True) if item.replaced_by is None]


def _with_retired(result: Result, outcomes: list[Result]) -> Result:
    retired = tuple(
        Retired(o.certificate_arn or "", o.serial or "", o.revocation_reason or "") for o in outcomes
        if o.status == REVOKED
    )
    out = replace(result, revoked_replaced=result.revoked_replaced + retired)
    failed = [o for o in outcomes if o.status != REVOKED]
    if not failed:
        return out
    first = failed[0]
    message = (f"its new certificate is in place, but the one it replaced (serial {first.serial}) was not revoked: "
               f"{first.error_message}; the next run tries again")
    return replace(out, status=FAILED, error_code=first.error_code, error_message=message)
