"""``${VAR}`` and ``${VAR:-default}`` in manifest strings, from the environment.

CI pipelines pass ARNs this way. An unset variable without a default is a
problem, never an empty string. ``$${`` writes a literal ``${``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from pca_batch.manifest.yamlload import LineDict, LineList

_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{([^}]*)\}?")

# report(path, line, message)
Reporter = Callable[[list[Any], int, str], None]


class Unset(str):
    """The message for a variable that is not set (and has no default): ``.name`` says which."""

    name: str

    def __new__(cls, name: str) -> Unset:
        text = f"the environment variable {name} is not set (use ${{{name}:-default}} for a default)"
        message = super().__new__(cls, text)
        message.name = name
        return message


def substitute(text: str, env: Mapping[str, str], path: list[Any], line: int, report: Reporter) -> str:
    if "${" not in text:
        return text

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$${":
            return "${"
        name = m.group(1)
        if name is None:
            report(
                path,
                line,
                f"cannot read the variable reference {m.group(0)!r}: expected ${{NAME}} or ${{NAME:-default}}",
            )
            return m.group(0)
        value = env.get(name)
        if value is None or (value == "" and m.group(2) is not None):
            if m.group(2) is not None:
                return m.group(2)
            report(path, line, Unset(name))
            return ""
        return value

    return _VAR.sub(repl, text)


def walk(node: Any, env: Mapping[str, str], path: list[Any], line: int, report: Reporter) -> Any:
    """Substitute in every string value of ``node`` (in place for containers)."""
    if isinstance(node, str):
        return substitute(node, env, path, line, report)
    if isinstance(node, dict):
        lines = node.value_lines if isinstance(node, LineDict) else {}
        for key, value in node.items():
            if isinstance(value, (str, dict, list)):
                node[key] = walk(value, env, path + [key], lines.get(key, line), report)
        return node
    if isinstance(node, list):
        lines_l = node.item_lines if isinstance(node, LineList) else []
        for i, value in enumerate(node):
            if isinstance(value, (str, dict, list)):
                node[i] = walk(value, env, path + [i], lines_l[i] if i < len(lines_l) else line, report)
        return node
    return node
