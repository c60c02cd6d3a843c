"""The issue guard (``--max-issue N``, ``settings.max_issue``) and the plan's count of what it issues.

Every certificate issued on a general-purpose AWS Private CA is billed. When the state that
proves what was issued is lost (a CI cache missed), every entry looks unrecorded and a plain
apply renews them all. The guard counts, from the decided steps alone (no call), the entries
that would make an IssueCertificate call, and apply refuses before the first call when they
are more than the limit, saying how many and why.

An entry whose certificate the state already holds under the token it would send (a lost
output file, an interrupted renewal) is fetched again, not issued: it does not count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from pca_batch.acmpca import GENERAL_PURPOSE, SHORT_LIVED
from pca_batch.errors import EXIT_FAILED, PcaBatchError
from pca_batch.plan.converge import Step
from pca_batch.plan.renewal import NO_RECORD, IssuedIndex
from pca_batch.run.journal import JournalRecord

USAGE_WORDS: dict[str, str] = {GENERAL_PURPOSE: "general purpose", SHORT_LIVED: "short-lived"}


class IssueGuardError(PcaBatchError):
    """apply would issue more certificates than ``--max-issue`` allows: nothing was issued."""

    exit_code = EXIT_FAILED


def recorded(step: Step, index: IssuedIndex) -> JournalRecord | None:
    """The certificate the state holds under the token this step would send (a lost output
    file, an interrupted renewal): apply fetches it again instead of issuing. None otherwise."""
    decision, entry = step.decision, step.entry
    if decision.action == "unchanged" or decision.refusal is not None or entry.ca_arn is None:
        return None
    token = decision.token or (entry.token if entry.key is None else None)
    return None if token is None else index.by_token.get((entry.ca_arn, token))


def issues(step: Step, index: IssuedIndex) -> bool:
    """Would apply call IssueCertificate for this step? (Not when the state holds the
    certificate under the token it would send: that one is fetched again.)"""
    decision = step.decision
    if decision.action == "unchanged" or decision.refusal is not None or step.entry.ca_arn is None:
        return False
    return recorded(step, index) is None


def to_issue(steps: Sequence[Step], index: IssuedIndex) -> list[Step]:
    return [s for s in steps if issues(s, index)]


def per_ca(steps: Sequence[Step]) -> dict[str, int]:
    """How many of ``steps`` each CA issues, in the order the CAs first appear."""
    counts: Counter[str] = Counter()
    for step in steps:
        if step.entry.ca_arn is not None:
            counts[step.entry.ca_arn] += 1
    return dict(counts)


def usage_words(mode: str | None) -> str:
    if mode is None:
        return "usage mode unknown"
    return USAGE_WORDS.get(mode, mode)


def issue_line(counts: Mapping[str, int], modes: Mapping[str, str | None]) -> str:
    """``to issue: 7 from arn:…/ca-1 (general purpose), 3 from arn:…/ca-2 (short-lived)``; "" for none."""
    if not counts:
        return ""
    parts = [f"{n:,} from {arn} ({usage_words(modes.get(arn))})" for arn, n in counts.items()]
    return "to issue: " + ", ".join(parts)


REVOKED_BEFORE = "its certificate was revoked"  # an issue under a new token: one was issued, then revoked


def _plural(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def why(steps: Sequence[Step], state: str) -> list[str]:
    """What the certificates to issue are, grouped by why: renewals the state has no record of
    (the sign of a lost state), new entries, renewals that are due, forced, or for other reasons
    (each reason counted)."""
    kinds: Counter[str] = Counter()
    others: Counter[str] = Counter()
    for step in steps:
        d = step.decision
        if d.reason.startswith("forced"):  # also an issue: --force with the file gone (issued before)
            kinds["forced"] += 1
        elif d.action == "issue" and not d.reason.startswith(REVOKED_BEFORE):
            kinds["new"] += 1
        elif d.reason.startswith(NO_RECORD):
            kinds["unrecorded"] += 1
        elif d.reason.startswith("expire"):
            kinds["due"] += 1
        else:
            kinds["other"] += 1
            others[d.reason] += 1
    texts = {
        "unrecorded": lambda n: f"{_plural(n, 'renewal', 'renewals')}: the state at {state} has no record of "
        f"{'it' if n == 1 else 'them'}; was the state lost? (apply --adopt checks the files on disk instead)",
        "new": lambda n: _plural(n, "new certificate (never issued)", "new certificates (never issued)"),
        "due": lambda n: f"{_plural(n, 'renewal', 'renewals')} due (expiring)",
        "forced": lambda n: f"{_plural(n, 'renewal', 'renewals')} forced (--force)",
        "other": lambda n: f"{_plural(n, 'renewal', 'renewals')} ("
        + ", ".join(f"{reason}: {count:,}" for reason, count in others.most_common(3))
        + (", ..." if len(others) > 3 else "") + ")",
    }
    return [texts[k](kinds[k]) for k in ("unrecorded", "new", "due", "forced", "other") if kinds[k]]


def refusal(steps: Sequence[Step], index: IssuedIndex, *, limit: int | None, source: str, state: str) -> str | None:
    """Why apply must not run (more than ``limit`` of ``steps`` would be issued), or None.
    ``source`` names where the limit came from (``--max-issue`` or ``settings.max_issue``),
    ``state`` the state the steps were judged by."""
    if limit is None:
        return None
    issued = to_issue(steps, index)
    if len(issued) <= limit:
        return None
    return (f"{_plural(len(issued), 'certificate', 'certificates')} would be issued, more than {source} {limit:,} "
            f"allows: {'; '.join(why(issued, state))}")


def check(steps: Sequence[Step], index: IssuedIndex, *, limit: int | None, source: str, state: str) -> None:
    """IssueGuardError when more than ``limit`` of ``steps`` would be issued (see :func:`refusal`)."""
    text = refusal(steps, index, limit=limit, source=source, state=state)
    if text is not None:
        raise IssueGuardError(
            f"refusing to run: {text}. Nothing was issued; if this is meant, run again with a higher {source}."
        )


def limit_of(cli: int | None, manifest: int | None) -> tuple[int | None, str]:
    """The limit in force and where it came from: the command line wins over the manifest."""
    if cli is not None:
        return cli, "--max-issue"
    return manifest, "settings.max_issue"
