"""A compiled yes/no check for the JSON Schema subset pca-batch's schemas use.

jsonschema gives the precise, every-error messages a person needs, but costs
tens of microseconds per object; on a 10,000-entry manifest that dominates
validation. This compiles a schema once into nested closures that only answer
"valid?" -- jsonschema runs only for the objects that fail, to explain why.
Keywords outside the subset make ``compile_schema`` raise, so a schema that
grows a new keyword cannot be checked wrongly in silence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]

_SUPPORTED = {
    "$schema", "$id", "$defs", "$ref", "title", "description", "type", "properties", "required",
    "additionalProperties", "items", "enum", "const", "pattern", "minLength", "maxLength",
    "minimum", "maximum", "minItems", "maxItems", "format", "oneOf",
}


def is_type(value: Any, kind: str) -> bool:
    """JSON Schema's types, for JSON data: a float is a number only when finite
    (YAML's ``.inf`` and ``.nan`` have no JSON form), an integer also when whole (``30.0``)."""
    if kind == "string":
        return isinstance(value, str)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind == "number":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and math.isfinite(value)
        )
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    raise ValueError(f"unknown JSON type {kind!r}")


def compile_schema(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Check:
    root = root if root is not None else schema
    return _Compiler(root).compile(schema)


class _Compiler:
    """Compiles the nodes of one schema; ``$defs`` members are compiled once and shared."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.defs: dict[str, Check] = {}

    def compile(self, node: Any) -> Check:
        if node is True or node == {}:
            return lambda value: True
        if node is False:
            return lambda value: False
        unknown = set(node) - _SUPPORTED
        if unknown:
            raise ValueError(f"fastcheck does not know the keywords {sorted(unknown)}")
        checks: list[Check] = []
        if "$ref" in node:
            checks.append(self._ref(node["$ref"]))
        if "type" in node:
            checks.append(_type(node["type"]))
        checks += _value_checks(node)
        checks += self._container_checks(node)
        if "oneOf" in node:
            options = [self.compile(o) for o in node["oneOf"]]
            checks.append(lambda value: sum(1 for o in options if o(value)) == 1)
        return _all_of(checks)

    def _ref(self, ref: str) -> Check:
        if not ref.startswith("#/$defs/"):
            raise ValueError(f"unsupported $ref {ref}")
        name = ref[len("#/$defs/") :]
        if name not in self.defs:
            self.defs[name] = lambda value: True  # stands in while a recursive definition compiles
            self.defs[name] = self.compile(self.root["$defs"][name])
        defs = self.defs

        def by_ref(value: Any) -> bool:  # looked up late: the definition may recurse
            return defs[name](value)

        return by_ref

    def _container_checks(self, node: dict[str, Any]) -> list[Check]:
        checks: list[Check] = []
        if "items" in node:
            item = self.compile(node["items"])
            checks.append(lambda value: not isinstance(value, list) or all(item(v) for v in value))
        if "required" in node:
            required = tuple(node["required"])
            checks.append(lambda value: not isinstance(value, dict) or all(k in value for k in required))
        if "properties" in node or "additionalProperties" in node:
            checks.append(self._properties(node))
        return checks

    def _properties(self, node: dict[str, Any]) -> Check:
        props = {k: self.compile(v) for k, v in node.get("properties", {}).items()}
        extra = node.get("additionalProperties", True)
        extra_check = self.compile(extra) if isinstance(extra, dict) else None

        def check_props(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            for key, item in value.items():
                check = props.get(key)
                if check is not None:
                    if not check(item):
                        return False
                elif extra is False:
                    return False
                elif extra_check is not None and not extra_check(item):
                    return False
            return True

        return check_props


def _type(wanted: str | list[str]) -> Check:
    kinds = [wanted] if isinstance(wanted, str) else list(wanted)
    if len(kinds) == 1:
        kind = kinds[0]
        return lambda value: is_type(value, kind)
    return lambda value: any(is_type(value, k) for k in kinds)


def _value_checks(node: dict[str, Any]) -> list[Check]:
    """enum, const, pattern and the bounds of strings, numbers and lists; each passes values of other types."""
    checks: list[Check] = []
    if "enum" in node:
        options = node["enum"]
        checks.append(lambda value: any(value == o and type(value) is type(o) for o in options))
    if "const" in node:
        const = node["const"]
        checks.append(lambda value: value == const and type(value) is type(const))
    if "pattern" in node:
        search = re.compile(node["pattern"]).search
        checks.append(lambda value: not isinstance(value, str) or search(value) is not None)
    if "minLength" in node or "maxLength" in node:
        lo, hi = node.get("minLength", 0), node.get("maxLength", float("inf"))
        checks.append(lambda value: not isinstance(value, str) or lo <= len(value) <= hi)
    if "minimum" in node or "maximum" in node:
        lo_n, hi_n = node.get("minimum", float("-inf")), node.get("maximum", float("inf"))
        checks.append(
            lambda value: isinstance(value, bool) or not isinstance(value, (int, float)) or lo_n <= value <= hi_n
        )
    if "minItems" in node or "maxItems" in node:
        lo_i, hi_i = node.get("minItems", 0), node.get("maxItems", float("inf"))
        checks.append(lambda value: not isinstance(value, list) or lo_i <= len(value) <= hi_i)
    return checks


def _all_of(checks: list[Check]) -> Check:
    """One check for all of ``checks``; the common short lists without a loop."""
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda value: first(value) and second(value)

    def check_all(value: Any) -> bool:
        for check in checks:
            if not check(value):
                return False
        return True

    return check_all
