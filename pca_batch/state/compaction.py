"""Which records a state keeps when it is compacted, and which go to its archive.

Planning, renewing, pruning and revoking read the current certificate of each entry and
the one before it (a renewal's token is salted with the serial of the certificate it
replaces, so the newest record is found through the one before it), the revocations of
those, and every certificate a renewal replaced that is not revoked yet (``revoke_replaced``
still owes its revocation). Everything older is history: it moves to the archive, where
nothing reads it but people.

Kept, per (manifest, entry name, CA ARN): the newest :data:`KEEP` ``issued`` records, and the
newest one not revoked with the one before it (a run finds an entry's certificate by it when
its files are gone and the newest were revoked); every record some record ``replaces`` that
has no revocation, with that record; the revocations of kept records; every ``key`` record
(a new key's existence) until an ``issued`` record for its CA and token exists (a run on
another runner asks the CA for that certificate by it); every record of an event this
version does not know. The order of recording is preserved.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pca_batch.run.journal import Event, JournalRecord, KeyRecord, RevocationRecord

KEEP = 2  # the current certificate and the one it replaced


def split(events: Sequence[Event]) -> tuple[list[Event], list[Event]]:
    """(kept, archived), each in the order of ``events``."""
    issued = [(n, e) for n, e in enumerate(events) if isinstance(e, JournalRecord)]
    revoked = {e.certificate_arn for e in events if isinstance(e, RevocationRecord)}
    lineages: dict[tuple[str | None, str, str], list[int]] = {}
    for n, record in issued:
        lineages.setdefault((record.issued.manifest, record.name, record.ca_arn), []).append(n)
    keep: set[int] = set()
    for lineage in lineages.values():
        keep.update(lineage[-KEEP:])
        current = next((i for i in range(len(lineage) - 1, -1, -1)
                        if _record(events, lineage[i]).certificate_arn not in revoked), None)
        if current is not None:  # the newest one not revoked, and the one before it (its token's salt)
            keep.update(lineage[max(0, current - 1): current + 1])
    by_arn = {e.certificate_arn: n for n, e in issued}
    for n, record in issued:  # a replaced certificate revoke_replaced still owes a revocation, and who replaced it
        owed = by_arn.get(record.issued.replaces or "")
        if owed is not None and record.issued.replaces not in revoked:
            keep.update((n, owed))
    kept_arns = {_record(events, n).certificate_arn for n in keep}
    tokens = {(e.ca_arn, e.token) for _, e in issued}
    kept: list[Event] = []
    archived: list[Event] = []
    for n, event in enumerate(events):
        if isinstance(event, JournalRecord):
            wanted = n in keep
        elif isinstance(event, RevocationRecord):
            wanted = event.certificate_arn in kept_arns
        elif isinstance(event, KeyRecord):
            wanted = (event.ca_arn, event.token) not in tokens
        else:
            wanted = True
        (kept if wanted else archived).append(event)
    return kept, archived


def worth_it(events: Sequence[Event]) -> bool:
    """Whether compacting these records would pay (one pass of :func:`split`, for after a run)."""
    kept, archived = split(events)
    return worth_compacting(len(kept), len(archived))


def worth_compacting(kept: int, archived: int) -> bool:
    """Enough history that reading it costs more than a fraction of reading what is kept."""
    return archived >= 256 and archived * 8 >= kept


def _record(events: Sequence[Event], n: int) -> JournalRecord:
    event = events[n]
    assert isinstance(event, JournalRecord)
    return event


def lines(events: Iterable[Event]) -> bytes:
    return b"".join((e.to_json() + "\n").encode("ascii") for e in events)
