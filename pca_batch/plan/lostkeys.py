"""Keys made by a run on another runner: what became of the certificate asked for them.

A ``key`` record says a run made a new key for an entry (kept as ``<private_key>.pending`` on
its runner) and was about to call IssueCertificate with the record's token. Without an
``issued`` record for that CA and token, the run died (or could not record the answer) in
between. On the runner that has the pending key, the usual path finishes the job: same key,
same token. On any other runner the key is lost: the entry gets a new key and certificate,
and the certificate the dead run may have got for the lost key must not be lost from the record.

**Re-sending.** AWS Private CA and the local CA answer a token, within five minutes of the call
that used it, with the certificate that call issued, and issue nothing new; after that, the same
token issues a new certificate. So the recorded request (its CSR and token) is sent again only
while the key record is younger than :data:`RESEND_WINDOW` (four minutes: one of margin for
the two runners' clocks, and the key was recorded before the call): the answer is the dead
run's certificate, recorded as issued with its key lost (``key_lost``), and the new
certificate replaces it (``revoke_replaced`` revokes it like any replaced certificate).
Had the dead run died before its request reached the CA, that answer is the one certificate
its request would have made: still one certificate for the token, recorded and replaced.

Older than that, nothing is sent (it would issue a new certificate for a key nobody has):
the plan says a certificate may exist for the lost key, under which token, and that the
CA's audit report (the only listing of what a CA issued) lists it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from pca_batch.run.journal import Event, JournalRecord, KeyRecord

RESEND_WINDOW = timedelta(minutes=4)
NOT_HERE = "the key made by an earlier run on another runner is not here: a new key and certificate"


def unsettled(events: Iterable[Event]) -> dict[tuple[str, str], list[KeyRecord]]:
    """Per (entry name, CA ARN), in order: the key records no ``issued`` record answers (none for
    their token) and no later certificate of the entry followed (the entry did not move on)."""
    out: dict[tuple[str, str], list[KeyRecord]] = {}
    for event in events:
        if isinstance(event, KeyRecord):
            out.setdefault((event.name, event.ca_arn), []).append(event)
        elif isinstance(event, JournalRecord) and (event.name, event.ca_arn) in out:
            # a certificate asked for again for a lost key answers that key; any other is the
            # entry moving on: the keys before it are settled, whatever became of them
            waiting = out[(event.name, event.ca_arn)]
            left = [k for k in waiting if k.token != event.token] if event.issued.key_lost else []
            if left:
                out[(event.name, event.ca_arn)] = left
            else:
                del out[(event.name, event.ca_arn)]
    return out


def unanswered(events: Iterable[Event]) -> list[KeyRecord]:
    """Every key record no ``issued`` record answers (for ``state list``), in order."""
    events = list(events)
    tokens = {(e.ca_arn, e.token) for e in events if isinstance(e, JournalRecord)}
    return [e for e in events if isinstance(e, KeyRecord) and (e.ca_arn, e.token) not in tokens]


def resendable(record: KeyRecord, now: datetime) -> bool:
    """Whether the CA still answers the record's token with what the dead run got (see above)."""
    try:
        made = datetime.fromisoformat(record.time.replace("Z", "+00:00"))
    except ValueError:
        return False
    return timedelta(0) <= now - made < RESEND_WINDOW


def plan_reason(lost: Iterable[KeyRecord], now: datetime) -> str:
    """What the plan says of an entry whose earlier run's key is not here."""
    parts = [NOT_HERE]
    for record in lost:
        if resendable(record, now):
            parts.append(f"the certificate issued for the lost key (token {record.token}) is asked for again "
                         "and recorded as replaced")
        else:
            parts.append(unasked(record))
    return "; ".join(parts)


def unasked(record: KeyRecord) -> str:
    """What the plan and the report say of a lost key too old to ask for its certificate again."""
    return (f"a certificate may exist for the lost key (token {record.token}, asked for at {record.time}): "
            "the CA's audit report lists it")
