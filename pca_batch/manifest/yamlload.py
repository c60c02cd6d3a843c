"""Safe, bounded YAML loading that remembers where every value stands.

The manifest is parsed with libyaml's C event parser when present (PyYAML's
pure-Python one otherwise) and composed here, iteratively, into plain dicts
and lists that carry line numbers. Composing ourselves lets us refuse what
``yaml.safe_load`` would accept or choke on:

- tags that would build objects (only the core ``!!str``/``!!int``/... pass),
- a key given twice in one mapping,
- alias bombs ("billion laughs"): aliases are shared, never copied, and the
  total size they expand to is bounded before anything grows,
- deep nesting, oversized files, non-UTF-8 bytes, several documents.

Plain scalars resolve by the YAML 1.2 core schema (``true``/``false`` only,
so ``Country: NO`` stays the string "NO").
"""

from __future__ import annotations

import re
from typing import Any

import yaml

MAX_BYTES = 32 * 1024 * 1024
MAX_DEPTH = 64
# Aliases may reuse a subtree, but the document they expand to stays within
# this many nodes beyond the ones written out.
MAX_ALIAS_EXPANSION = 100_000

_Parser: Any = getattr(yaml, "CParser", None)
try:
    from yaml import CSafeLoader as _EventLoader
except ImportError:  # pragma: no cover - libyaml missing
    from yaml import SafeLoader as _EventLoader  # type: ignore[assignment]

_CORE = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {
    None,
    "!",
    _CORE + "str",
    _CORE + "int",
    _CORE + "float",
    _CORE + "bool",
    _CORE + "null",
    _CORE + "map",
    _CORE + "seq",
}
_INT = re.compile(r"^[-+]?[0-9]+$")
_OCT = re.compile(r"^0o[0-7]+$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})
_INF = {".inf": float("inf"), ".Inf": float("inf"), ".INF": float("inf")}


class YamlError(Exception):
    """A document we refuse; ``line`` is 1-based (0 when unknown)."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}")


class LineDict(dict):  # type: ignore[type-arg]
    """A mapping that knows its own line and the line of each key and value."""

    __slots__ = ("line", "key_lines", "value_lines")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[str, int] = {}
        self.value_lines: dict[str, int] = {}


class LineList(list):  # type: ignore[type-arg]
    """A sequence that knows its own line and the line of each item."""

    __slots__ = ("line", "item_lines")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []


def decode(data: bytes) -> str:
    """UTF-8 (an optional byte-order mark is fine) or a YamlError naming the line."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise YamlError(line, f"the file is not UTF-8 text (bad byte at offset {exc.start})") from None


def _resolve_plain(value: str, line: int) -> Any:
    if value in _NULLS:
        return None
    first = value[0]
    if first in "tTfF":
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        return value
    if first.isdigit() or first in "+-.":
        return _resolve_number(value)
    return value


def _resolve_number(value: str) -> Any:
    """A plain scalar that starts like a number: YAML 1.2's core schema int, float, inf or nan, else the text."""
    if _INT.match(value):
        return int(value)
    if _OCT.match(value):
        return int(value[2:], 8)
    if _HEX.match(value):
        return int(value[2:], 16)
    if _FLOAT.match(value):
        return float(value)
    if value in _INF:
        return _INF[value]
    if value in ("-.inf", "-.Inf", "-.INF"):
        return float("-inf")
    if value in (".nan", ".NaN", ".NAN"):
        return float("nan")
    return value


def _scalar(event: Any) -> Any:
    tag = event.tag
    value = event.value
    line = event.start_mark.line + 1
    if tag not in _ALLOWED_TAGS:
        raise YamlError(line, f"the YAML tag {tag} is not allowed (manifests hold plain data only)")
    if tag is None:
        return _resolve_plain(value, line) if event.implicit[0] else value
    if tag in ("!", _CORE + "str"):
        return value
    resolved = _resolve_plain(value, line)
    want = {
        _CORE + "int": int,
        _CORE + "float": float,
        _CORE + "bool": bool,
        _CORE + "null": type(None),
    }.get(tag)
    if want is None or type(resolved) is not want:
        if want is float and type(resolved) is int:
            return float(resolved)
        raise YamlError(line, f"{value!r} cannot be read as {tag.rsplit(':', 1)[-1]}")
    return resolved


class _Frame:
    __slots__ = ("node", "is_map", "key", "key_line", "size", "anchor", "merges")

    def __init__(self, node: Any, is_map: bool, anchor: str | None) -> None:
        self.node = node
        self.is_map = is_map
        self.key: Any = _NO_KEY
        self.key_line = 0
        self.size = 1
        self.anchor = anchor
        self.merges: list[tuple[Any, int]] = []


_NO_KEY = object()


class _Composer:
    """What composing one document keeps: the open collections, the anchors, the root.

    :func:`load` handles scalars itself (most events are scalars); the rarer events
    come here."""

    __slots__ = ("anchors", "stack", "root", "documents", "expanded")

    def __init__(self) -> None:
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.stack: list[_Frame] = []
        self.root: Any = _NO_KEY
        self.documents = 0
        self.expanded = 0

    def place(self, value: Any, line: int, size: int) -> None:
        if self.stack:
            _add(self.stack[-1], value, line, size)
        else:
            self.root = value

    def alias(self, event: Any) -> None:
        line = event.start_mark.line + 1
        if event.anchor not in self.anchors:
            raise YamlError(line, f"unknown alias *{event.anchor}")
        value, size = self.anchors[event.anchor]
        self.expanded += size
        if self.expanded > MAX_ALIAS_EXPANSION:
            raise YamlError(
                line,
                "YAML aliases expand to too many nodes (an alias bomb?); write the values out or use `defaults`",
            )
        self.place(value, line, size)

    def open(self, event: Any, is_map: bool) -> None:
        line = event.start_mark.line + 1
        if event.tag not in _ALLOWED_TAGS:
            raise YamlError(line, f"the YAML tag {event.tag} is not allowed (manifests hold plain data only)")
        if len(self.stack) >= MAX_DEPTH:
            raise YamlError(line, f"the YAML nests deeper than {MAX_DEPTH} levels")
        node: Any = LineDict(line) if is_map else LineList(line)
        if self.stack and self.stack[-1].is_map and self.stack[-1].key is _NO_KEY:
            raise YamlError(line, "a mapping key must be a plain value, not a mapping or a list")
        self.stack.append(_Frame(node, is_map, event.anchor))

    def close(self) -> None:
        frame = self.stack.pop()
        if frame.merges:
            _apply_merges(frame)
        if frame.anchor is not None:
            self.anchors[frame.anchor] = (frame.node, frame.size)
        self.place(frame.node, frame.node.line, frame.size)

    def document(self, event: Any) -> None:
        self.documents += 1
        if self.documents > 1:
            raise YamlError(event.start_mark.line + 1, "a manifest holds one YAML document, not several")


def load(text: str) -> Any:
    """Compose one YAML document into LineDict/LineList/scalars; YamlError on anything refused."""
    if len(text) > MAX_BYTES:
        raise YamlError(0, f"the manifest is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    composer = _Composer()
    anchors, stack = composer.anchors, composer.stack
    try:
        for event in yaml.parse(text, Loader=_EventLoader):
            cls = type(event)
            if cls is yaml.ScalarEvent:  # the common case, inline
                value = _scalar(event)
                if event.anchor is not None:
                    anchors[event.anchor] = (value, 1)
                if stack:
                    _add(stack[-1], value, event.start_mark.line + 1, 1)
                else:
                    composer.root = value
            elif cls is yaml.MappingStartEvent or cls is yaml.SequenceStartEvent:
                composer.open(event, cls is yaml.MappingStartEvent)
            elif cls is yaml.MappingEndEvent or cls is yaml.SequenceEndEvent:
                composer.close()
            elif cls is yaml.AliasEvent:
                composer.alias(event)
            elif cls is yaml.DocumentStartEvent:
                composer.document(event)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc) from None
    except RecursionError:
        raise YamlError(0, f"the YAML nests deeper than {MAX_DEPTH} levels") from None
    return None if composer.root is _NO_KEY else composer.root


def _syntax_error(exc: yaml.YAMLError) -> YamlError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        return YamlError(line, f"YAML syntax error: {exc.problem or exc.context or 'invalid YAML'}")
    return YamlError(0, f"YAML error: {exc}")


def _add(frame: _Frame, value: Any, line: int, size: int) -> None:
    frame.size += size
    node = frame.node
    if not frame.is_map:
        node.append(value)
        node.item_lines.append(line)
        return
    if frame.key is _NO_KEY:
        if isinstance(value, (dict, list)):
            raise YamlError(line, "a mapping key must be a plain value, not a mapping or a list")
        if value is None or isinstance(value, (bool, float)):
            raise YamlError(line, f"the mapping key {value!r} must be a string")
        frame.key = value if isinstance(value, str) else str(value)
        frame.key_line = line
        return
    key = frame.key
    frame.key = _NO_KEY
    if key == "<<":
        frame.merges.append((value, line))
        return
    if key in node:
        first = node.key_lines[key]
        raise YamlError(frame.key_line, f"the key {key!r} is given twice in one mapping (first on line {first})")
    node[key] = value
    node.key_lines[key] = frame.key_line
    node.value_lines[key] = line


def _apply_merges(frame: _Frame) -> None:
    """YAML merge keys (``<<: *base``): keys written in the mapping win."""
    node = frame.node
    for value, line in frame.merges:
        sources = value if isinstance(value, list) else [value]
        for source in sources:
            if not isinstance(source, LineDict):
                raise YamlError(line, "a merge key (<<) takes a mapping or a list of mappings")
            for k, v in source.items():
                if k not in node:
                    node[k] = v
                    node.key_lines[k] = source.key_lines.get(k, line)
                    node.value_lines[k] = source.value_lines.get(k, line)
