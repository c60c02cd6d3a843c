"""Plain lines: the fast path (lines without a control character go out as they are) against the
slow one (every line through the translation table)."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st

from pca_batch.report.text import _CONTROLS, PlainConsole, write_lines


@given(st.lists(st.text(alphabet=st.characters(max_codepoint=0x2FF)) | st.sampled_from(["ok", "a\nb", "\x1b[31m"])))
def test_write_lines_writes_what_translating_every_line_writes(lines: list[str]) -> None:
    out = io.StringIO()
    write_lines(PlainConsole(file=out), lines)  # type: ignore[arg-type]
    assert out.getvalue() == "".join(line.translate(_CONTROLS) + "\n" for line in lines)
    assert all(ord(c) >= 0x20 or c in "\t\n" for c in out.getvalue())
