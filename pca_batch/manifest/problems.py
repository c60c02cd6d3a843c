"""Turning schema errors into problems a person can act on: file, line, entry, path.

A value's line is found by walking the composed YAML (``LineDict``/``LineList``)
along the error's JSON path. An entry's request is merged from several sources
(the entry, its cli_input_json file, the manifest's defaults); the line comes
from the source the value came from.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pca_batch.errors import Problem, suggestion
from pca_batch.manifest.yamlload import LineDict, LineList
from pca_batch.times import DURATION_PATTERN

if TYPE_CHECKING:  # jsonschema is imported only when there is something to explain
    from jsonschema.exceptions import ValidationError
    from rich.console import Console

_JSON_TYPES = {
    dict: "a mapping",
    LineDict: "a mapping",
    list: "a list",
    LineList: "a list",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true/false",
    type(None): "null",
}
_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


@dataclass(frozen=True)
class Source:
    """One place a merged value may come from."""

    node: Any  # LineDict of that source, or None when it has no lines (a JSON file)
    line: int  # the line to use when ``node`` has none (e.g. the cli_input_json key)
    echo: bool  # may messages quote values from here? (never for referenced files)
    data: Any = None  # the source's data, for sources without lines
    note: str = ""  # appended to messages, e.g. "(in requests/orders.json)"


def json_path(parts: Iterable[Any]) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _descend(node: Any, path: Sequence[Any]) -> tuple[int, int]:
    """How deep ``path`` goes into ``node`` and the line reached there."""
    line = getattr(node, "line", 0)
    depth = 0
    for part in path:
        if isinstance(node, LineDict) and isinstance(part, str) and part in node:
            line = node.value_lines.get(part, line)
            node = node[part]
        elif isinstance(node, LineList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.item_lines[part]
            node = node[part]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            break
        depth += 1
    return depth, line


def locate(sources: Sequence[Source], path: Sequence[Any], fallback: int) -> tuple[int, Source | None]:
    """The line of ``path`` in the source it most likely came from (the deepest match wins)."""
    best: tuple[int, int, Source | None] = (0, fallback, None)
    for source in sources:
        root = source.node if source.node is not None else source.data
        if root is None:
            continue
        depth, line = _descend(root, path)
        if source.node is None:
            line = source.line
        if depth > best[0]:
            best = (depth, line or fallback, source)
    return best[1], best[2]


def key_line(node: Any, key: str, default: int) -> int:
    if isinstance(node, LineDict):
        return node.key_lines.get(key, default)
    return default


# patterns whose regular expression says less to a reader than what they stand for
_PATTERN_NAMES = {DURATION_PATTERN: "a duration such as 90s, 15m or 1h30m (or a number of seconds)"}


def _type_of(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else ".inf" if value > 0 else "-.inf"  # as YAML writes them
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe(error: ValidationError, echo: bool) -> list[tuple[list[Any], str]]:
    """(relative path, message) pairs for one schema error; values quoted only when ``echo``."""
    path = list(error.absolute_path)
    kind = error.validator
    value = error.instance
    shown = _show(value) if echo else "the value"
    if kind == "additionalProperties" and isinstance(value, dict):
        allowed = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        return [
            (path + [key], f"unknown key {key!r}{suggestion(key, allowed)}")
            for key in value
            if key not in allowed
        ]
    if kind == "required" and isinstance(value, dict):
        # jsonschema reports one error per missing key, named at the start of its message
        missing = [k for k in error.validator_value if k not in value and error.message.startswith(repr(k))]
        return [(path, f"the required key {key!r} is missing") for key in missing[:1]]
    if kind == "enum":
        options = [str(o) for o in error.validator_value]
        hint = suggestion(value, options) if isinstance(value, str) else ""
        return [(path, f"{shown} is not one of {', '.join(options)}{hint}")]
    if kind == "const":
        return [(path, f"{shown} is not allowed here; expected {error.validator_value!r}")]
    if kind == "type":
        want = error.validator_value
        wants = [want] if isinstance(want, str) else list(want)
        words = " or ".join(_TYPE_WORDS.get(w, w) for w in wants)
        return [(path, f"must be {words}, not {_type_of(value)}")]
    if kind == "pattern":
        named = _PATTERN_NAMES.get(error.validator_value)
        if named is not None:
            return [(path, f"{shown} is not {named}")]
        return [(path, f"{shown} does not match the pattern {error.validator_value}")]
    if kind in ("minLength", "maxLength"):
        bound = "at least" if kind == "minLength" else "at most"
        return [(path, f"must be {bound} {error.validator_value} characters long (it has {len(value)})")]
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = {"minimum": "at least", "maximum": "at most"}.get(kind, "beyond")
        return [(path, f"must be {bound} {error.validator_value}{f' (it is {value})' if echo else ''}")]
    if kind in ("minItems", "maxItems"):
        bound = "at least" if kind == "minItems" else "at most"
        return [(path, f"must have {bound} {error.validator_value} items (it has {len(value)})")]
    if echo:
        return [(path, error.message[:200])]
    return [(path, f"is not valid ({kind})")]


def problems_from_errors(
    errors: Iterable[ValidationError],
    *,
    file: str,
    entry: str,
    sources: Sequence[Source],
    fallback_line: int,
    prefix: Sequence[Any] = (),
) -> list[Problem]:
    """Problems for schema errors on a value merged from ``sources``."""
    out: list[Problem] = []
    for error in errors:
        full = list(prefix) + list(error.absolute_path)
        _, origin = locate(sources, full, fallback_line)
        echo = origin.echo if origin is not None else True
        if full and full[0] == "Csr":
            echo = False  # the CSR comes from a file more often than not
        for rel, message in describe(error, echo):
            path = list(prefix) + rel
            line, src = locate(sources, path, fallback_line)
            if error.validator == "additionalProperties" and src is not None and src.node is not None:
                parent_depth, _ = _descend(src.node, path[:-1])
                if parent_depth == len(path) - 1:
                    parent = src.node
                    for part in path[:-1]:
                        parent = parent[part]
                    line = key_line(parent, path[-1], line)
            note = src.note if src is not None and src.note else ""
            out.append(Problem(file, line, entry, json_path(path), message + note))
    return out


def print_problems(problems: Sequence[Problem], err: Console) -> None:
    from pca_batch.report.text import write_lines

    entries = {p.entry for p in problems if p.entry != "-"}
    total = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}" + (
        f" in {len(entries)} entr{'ies' if len(entries) != 1 else 'y'}" if entries else ""
    )
    write_lines(err, [*(str(p) for p in problems), total])
