"""The domain errors of pca-batch.

Expected failures are instances of :class:`PcaBatchError` and turn into a
message and an exit status at the top (``cli.main``); anything else is a bug.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130


class PcaBatchError(Exception):
    """Base of every expected failure; ``exit_code`` says how the CLI ends."""

    exit_code = EXIT_INVALID


class UsageError(PcaBatchError):
    """A bad command line or option value."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest, located as precisely as we can.

    Rendered as ``FILE:LINE: ENTRY: $.json.path: message``.
    """

    file: str
    line: int
    entry: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.entry}: {self.path}: {self.message}"


def suggestion(word: str, choices: Iterable[str]) -> str:
    """``; did you mean 'X'?`` for the choice closest to ``word`` (case aside first), else ""."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered:
        return f"; did you mean {lowered[word.lower()]!r}?"
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class ManifestError(PcaBatchError):
    """The manifest cannot be used; carries every problem found, not only the first."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# AWS error codes that say "too many calls": the rate adapts, and no attempt is spent on them.
THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
    }
)

# AWS error codes that a retry can mend: the throttling ones and the server's. Everything else
# fails the entry at once.
RETRYABLE_CODES = THROTTLING_CODES | frozenset(
    {
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServerError",
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
        "ConnectionError",
        "ReadTimeout",
        "ConnectTimeout",
    }
)


class BackendError(PcaBatchError):
    """An error answered by a backend (AWS Private CA or the local CA).

    ``code`` is the AWS error code (``MalformedCSRException``,
    ``ThrottlingException``, ...), so the runner and the reports never care
    which backend spoke. ``status`` is the HTTP status when there was one.
    """

    exit_code = EXIT_FAILED

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        self.code = code
        self.message = message
        self.status = status
        super().__init__(f"{code}: {message}")

    @property
    def throttled(self) -> bool:
        """The service refused the call for its rate (a quota), not for what it asked."""
        return self.code in THROTTLING_CODES

    @property
    def retryable(self) -> bool:
        if self.code in RETRYABLE_CODES:
            return True
        return self.status is not None and self.status >= 500


class CredentialsError(PcaBatchError):
    """No usable AWS credentials: reported once, before any entry runs."""

