"""What the commands' parsers share: argument types (argparse calls them on the text of one
argument) and the options that choose and reach a backend."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

from pca_batch.model import Shard
from pca_batch.times import parse_duration


def shard(text: str) -> Shard:
    m = re.fullmatch(r"(\d+)/(\d+)", text)
    if not m or not (1 <= int(m.group(1)) <= int(m.group(2))):
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N, not {text!r}")
    return Shard(int(m.group(1)), int(m.group(2)))


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, not {value}")
    return value


def count(text: str) -> int:
    """A whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, not {value}")
    return value


def rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError(f"expected 0 or more, not {text!r}")
    return value


def duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``1h30m``, ``2.5s``."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_throttle_timeout(p: argparse.ArgumentParser) -> None:
    p.add_argument("--throttle-timeout", type=duration, metavar="DURATION",
                   help="how long a call may go on being throttled before its entry fails, e.g. 90s, 15m, 1h "
                        "(default 15m; throttled calls spend no attempt; 0: fail at the first throttle)")


def days(low: int, high: int, bound: str = "") -> Callable[[str], int]:
    """The type of a whole number of days from ``low`` to ``high`` (``bound`` says whose bound)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number of days, not {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {low} to {high} days{bound}, not {value}")
        return value

    return parse


def add_state_options(p: argparse.ArgumentParser, *, lock: bool = True) -> None:
    """Where the state is, as the command line may override the manifest's ``state:``."""
    p.add_argument("--state", metavar="URL",
                   help="the state: file://PATH or s3://BUCKET/KEY (default: the manifest's state:, else "
                   ".pca-batch/journal.jsonl beside it)")
    p.add_argument("--journal", type=Path, metavar="FILE", help="the file state (default .pca-batch/journal.jsonl)")
    if lock:
        p.add_argument("--lock-timeout", type=duration, metavar="DURATION",
                       help="wait this long for a state another run has locked (e.g. 60s, 5m; default: fail at once)")


def add_backend_options(p: argparse.ArgumentParser) -> None:
    """The state, and the backend the manifest names as the command line may override it."""
    add_state_options(p)
    p.add_argument("--store", type=Path, metavar="DIR", help="local backend: the store folder")
    p.add_argument("--region", help="aws backend: the region (default: each CA ARN's)")
    p.add_argument("--profile", help="aws backend: the named profile")
    p.add_argument("--endpoint-url", help="aws backend: the endpoint")
