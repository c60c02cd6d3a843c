"""Plain text lines for logs and messages, written cheaply and safely.

rich renders every ``print`` (wrapping, markup, emoji, segments): about a
millisecond a line, which a run of thousands of entries pays on its critical
path. Plain lines need none of it; they need only that text from a manifest
or a server cannot steer the terminal or split a log line.

Where the output is not a terminal (CI logs, pipes, files), pca-batch does not
even import rich (some 50 ms of every start): :class:`PlainConsole` stands in
for rich's Console with the little of it that plain output uses.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import IO, TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rich.console import Console

# Control characters (C0 but tab, DEL, C1) shown as "?": text from a manifest or a server
# must not steer a terminal or split a log line. A line break becomes a space.
_CONTROLS = {c: "?" for c in (*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F, *range(0x80, 0xA0))}
_CONTROLS[0x0A] = _CONTROLS[0x0D] = " "


_ANY_CONTROL = re.compile("[" + "".join(re.escape(chr(c)) for c in _CONTROLS) + "]")


def shown(line: str) -> str:
    """``line`` with its control characters replaced (most lines have none: then unchanged, at once)."""
    return line.translate(_CONTROLS) if _ANY_CONTROL.search(line) else line


def write_lines(console: Console, lines: Iterable[str]) -> None:
    """Plain lines on ``console``'s stream, one write and one flush: for logs and plain
    messages, where rich's rendering would cost a millisecond a line and add nothing."""
    text = "".join(shown(line) + "\n" for line in lines)
    if text:
        console.file.write(text)
        console.file.flush()


# Control characters but tab and line break, shown as "?", for messages that may span lines.
_MESSAGE_CONTROLS = {c: v for c, v in _CONTROLS.items() if c != 0x0A}


class PlainConsole:
    """What pca-batch uses of rich's Console, for output that is not a terminal: text as it
    is (no wrapping, no markup, no colour), control characters shown as "?"."""

    is_terminal = False
    width = 80

    def __init__(self, *, stderr: bool = False, file: IO[str] | None = None) -> None:
        self._stderr = stderr
        self._file = file

    @property
    def file(self) -> IO[str]:
        """The stream, looked up at each use as rich does (tests replace sys.stdout)."""
        if self._file is not None:
            return self._file
        return sys.stderr if self._stderr else sys.stdout

    def print(self, *objects: Any, sep: str = " ", end: str = "\n", **_options: Any) -> None:
        if not all(isinstance(o, str) for o in objects):  # a table, say: rich renders it
            from rich.console import Console

            Console(file=self.file, highlight=False, color_system=None).print(*objects, sep=sep, end=end)
            return
        self.file.write(sep.join(objects).translate(_MESSAGE_CONTROLS) + end)
        self.file.flush()

    def out(self, *objects: Any, sep: str = " ", end: str = "\n", **_options: Any) -> None:
        self.print(*(str(o) for o in objects), sep=sep, end=end)


def make_console(*, stderr: bool = False, env: Mapping[str, str] | None = None) -> Console:
    """rich's Console on a terminal (or where the environment asks for one, as rich reads
    FORCE_COLOR and TTY_COMPATIBLE), else the plain stand-in, without importing rich."""
    env = os.environ if env is None else env
    stream = sys.stderr if stderr else sys.stdout
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):
        terminal = False
    if terminal or "FORCE_COLOR" in env or "TTY_COMPATIBLE" in env:
        from rich.console import Console

        return Console(stderr=stderr, highlight=False)
    return cast("Console", PlainConsole(stderr=stderr))
