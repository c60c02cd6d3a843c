"""Argument types the commands share: argparse calls them on the text of one argument."""

from __future__ import annotations

import argparse
import re

from pca_batch.model import Shard


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


def rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError(f"expected 0 or more, not {text!r}")
    return value
