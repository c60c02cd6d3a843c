"""The compiled check says yes exactly when jsonschema does, for every member of the request schema.

Validation trusts fastcheck's yes: a request it wrongly accepts would reach AWS. So
every place in schemas/issue-certificate.schema.json is tried with values of every
type and at and beyond each bound, pattern and enum, one place at a time in an
otherwise valid request, and generated requests mix such values everywhere.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pca_batch import schema
from pca_batch.manifest import entries
from pca_batch.schema import fastcheck

REQUEST = schema.load(schema.REQUEST)
DEFS = REQUEST["$defs"]
VALIDATOR = schema.validator(schema.REQUEST)
FAST_OK = fastcheck.compile_schema(REQUEST)
ARN = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/abc"

# values of every JSON type, and the numbers YAML has beyond JSON's
ODD: list[Any] = [None, True, False, 0, 1, -1, 1.0, 2.5, math.inf, -math.inf, math.nan]
ODD += ["", "x", [], ["x"], {}, {"x": 1}]


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = DEFS[node["$ref"].rsplit("/", 1)[-1]]
    return node


def _example(node: dict[str, Any]) -> Any:
    """A valid value of ``node``, as small as it can be."""
    node = _resolve(node)
    if "enum" in node:
        return node["enum"][0]
    kind = node["type"]
    if kind == "object":
        return {k: _example(node["properties"][k]) for k in node.get("required", [])}
    if kind == "array":
        return [_example(node["items"])] * node.get("minItems", 0)
    if kind == "integer":
        return max(node.get("minimum", 1), 1)
    if kind == "boolean":
        return True
    pattern = node.get("pattern", "")
    if "acm-pca" in pattern:
        return ARN
    if "[0-2]" in pattern:
        return "1.2.3"
    if "A-Za-z0-9+/" in pattern:
        return "AAAA"
    if "A-Za-z]{2}" in pattern:
        return "US"
    return "a" * max(node.get("minLength", 0), 1)


def _places(node: dict[str, Any], path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Every place in the schema: (path in a request, its schema node); list items at index 0."""
    node = _resolve(node)
    yield path, node
    if node.get("type") == "object":
        for key, sub in node["properties"].items():
            yield from _places(sub, path + (key,))
    elif node.get("type") == "array":
        yield from _places(node["items"], path + (0,))


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A valid request that holds ``value`` at ``path`` (the containers on the way made valid)."""
    request = _example(REQUEST)
    obj, node = request, REQUEST
    for step in path[:-1]:
        node = _resolve(node)
        sub = node["properties"][step] if isinstance(step, str) else node["items"]
        if isinstance(step, str) and step not in obj:
            obj[step] = _example(sub)
        elif isinstance(step, int) and not obj:
            obj.append(_example(sub))
        obj, node = obj[step], sub
    if path:
        obj[path[-1]] = value
        return request
    return value  # type: ignore[no-any-return]


def _values(node: dict[str, Any]) -> list[Any]:
    """Values at and beyond each bound, pattern and enum of ``node``, and of every other type."""
    values = list(ODD)
    example = _example(node)
    kind = node.get("type")
    if "enum" in node:
        for option in node["enum"]:
            values += [option, option.lower(), option + " ", option[:-1]]
    if kind == "string":
        lo, hi = node.get("minLength", 0), node.get("maxLength", 64)
        for n in (lo - 1, lo, hi, hi + 1):
            if n >= 0:
                values += ["a" * n, (example * (n // max(len(example), 1) + 1))[:n]]
        values += [example, example + "\n", "\n" + example, example + "€", "é" + example, example + "\x00", " "]
    if kind == "integer":
        lo = node.get("minimum", 0)
        values += [lo - 1, lo, float(lo), lo + 0.5, float(lo - 1), 10**20, -(10**20), str(lo)]
    if kind == "array":
        lo, hi = node.get("minItems", 0), node.get("maxItems", 5)
        item = _example(node["items"])
        values += [[item] * n for n in (lo - 1, lo, hi, hi + 1) if n >= 0] + [[None], [item, None]]
    if kind == "object":
        values += [example, {**example, "Unknown": 1}, {**example, "unknown": None}]
        values += [{k: v for k, v in example.items() if k != gone} for gone in node.get("required", [])]
    return values


PLACES = list(_places(REQUEST))


def test_every_member_is_tried() -> None:
    paths = {path for path, _ in PLACES}
    assert ("IdempotencyToken",) in paths and ("Validity", "Value") in paths
    assert ("ApiPassthrough", "Extensions", "CustomExtensions", 0, "Value") in paths
    assert ("ApiPassthrough", "Extensions", "SubjectAlternativeNames", 0, "DirectoryName", "Country") in paths
    assert len(PLACES) == 92  # a schema that grows a member: check that it is tried


@pytest.mark.parametrize("path, node", PLACES, ids=lambda v: ".".join(map(str, v)) if isinstance(v, tuple) else "")
def test_fastcheck_agrees_with_jsonschema_at_every_place(path: tuple[Any, ...], node: dict[str, Any]) -> None:
    assert FAST_OK(_with(path, _example(node))), "the example request must be valid"
    answers: dict[str, bool] = {}  # the loader caches answers by exact_form: one form, one answer
    for value in _values(node):
        request = _with(path, copy.deepcopy(value))
        ok = FAST_OK(request)
        assert ok == VALIDATOR.is_valid(request), (path, value)
        assert answers.setdefault(entries.exact_form(request), ok) == ok, (path, value)


# -- generated requests: such values anywhere, several at once --------------------------


def _near(node: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Valid values of ``node`` most of the time, else one of its near-misses."""
    node = _resolve(node)
    wrong = st.sampled_from(_values(node))
    if node.get("type") == "object" and depth < 4:
        props = node["properties"]
        required = node.get("required", [])
        built = st.fixed_dictionaries(
            {k: _near(props[k], depth + 1) for k in required},
            optional={k: _near(v, depth + 1) for k, v in props.items() if k not in required},
        )
        return st.one_of(built, built, wrong)
    if node.get("type") == "array" and depth < 4:
        lo, hi = node.get("minItems", 0), node.get("maxItems", 5)
        return st.one_of(st.lists(_near(node["items"], depth + 1), min_size=lo, max_size=min(hi, lo + 2)), wrong)
    return st.one_of(st.just(_example(node)), wrong)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_near(REQUEST))
def test_fastcheck_agrees_with_jsonschema_on_generated_requests(request: Any) -> None:
    assert FAST_OK(request) == VALIDATOR.is_valid(request)
