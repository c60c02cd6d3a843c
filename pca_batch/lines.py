"""Plain text lines for logs and messages, written cheaply and safely.

rich renders every ``print`` (wrapping, markup, emoji, segments): about a
millisecond a line, which a run of thousands of entries pays on its critical
path. Plain lines need none of it; they need only that text from a manifest
or a server cannot steer the terminal or split a log line.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

# Control characters (C0 but tab, DEL, C1) shown as "?": text from a manifest or a server
# must not steer a terminal or split a log line. A line break becomes a space.
_CONTROLS = {c: "?" for c in (*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F, *range(0x80, 0xA0))}
_CONTROLS[0x0A] = _CONTROLS[0x0D] = " "


def write_lines(console: Console, lines: Iterable[str]) -> None:
    """Plain lines on ``console``'s stream, one write and one flush: for logs and plain
    messages, where rich's rendering would cost a millisecond a line and add nothing."""
    text = "".join(line.translate(_CONTROLS) + "\n" for line in lines)
    if text:
        console.file.write(text)
        console.file.flush()
