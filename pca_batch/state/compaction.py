"""Which records a state keeps when it is compacted, and which go to its archive.

Planning, renewing, pruning and revoking read the current certificate of each entry and
the one before it (a renewal's token is salted with the serial of the certificate it
replaces, so the newest record is found through the one before it), the revocations of
those, and every certificate a renewal replaced that is not revoked yet (``revoke_replaced``
still owes its revocation). Everything older is history: it moves to the archive, where
nothing reads it but people.

Kept, per (manifest, entry name, CA ARN): the newest :data:`KEEP` ``issued`` records;
transitively, every record a kept record ``replaces`` that has no revocation; the
revocations of kept records. The order of recording is preserved.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pca_batch.run.journal import Event, JournalRecord, RevocationRecord

KEEP = 2  # the current certificate and the one it replaced


def split(events: Sequence[Event]) -> tuple[list[Event], list[Event]]:
    """(kept, archived), each in the order of ``events``."""
    issued = [(n, e) for n, e in enumerate(events) if isinstance(e, JournalRecord)]
    revoked = {e.certificate_arn for e in events if isinstance(e, RevocationRecord)}
    newest: dict[tuple[str | None, str, str], list[int]] = {}
    for n, record in reversed(issued):
        slot = newest.setdefault((record.issued.manifest, record.name, record.ca_arn), [])
        if len(slot) < KEEP:
            slot.append(n)
    keep = {n for slot in newest.values() for n in slot}
    by_arn = {e.certificate_arn: n for n, e in issued}
    todo = list(keep)
    while todo:  # the lineage that revoke_replaced still owes a revocation
        replaces = _record(events, todo.pop()).issued.replaces
        found = by_arn.get(replaces or "")
        if found is not None and found not in keep and replaces not in revoked:
            keep.add(found)
            todo.append(found)
    kept_arns = {_record(events, n).certificate_arn for n in keep}
    kept: list[Event] = []
    archived: list[Event] = []
    for n, event in enumerate(events):
        wanted = n in keep if isinstance(event, JournalRecord) else event.certificate_arn in kept_arns
        (kept if wanted else archived).append(event)
    return kept, archived


def history(events: Sequence[Event]) -> int:
    """How many records compaction would move to the archive."""
    return len(split(events)[1])


def worth_compacting(kept: int, archived: int) -> bool:
    """Enough history that reading it costs more than a fraction of reading what is kept."""
    return archived >= 256 and archived * 8 >= kept


def _record(events: Sequence[Event], n: int) -> JournalRecord:
    event = events[n]
    assert isinstance(event, JournalRecord)
    return event


def lines(events: Iterable[Event]) -> bytes:
    return b"".join((e.to_json() + "\n").encode("ascii") for e in events)
