"""The request schema against botocore's acm-pca model, and property-based checks of it."""

from __future__ import annotations

import copy
import json
from typing import Any

import botocore.session
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pca_batch import schema
from pca_batch.schema import fastcheck
from tests.support.common import REPO, Cli

REQUEST = schema.load(schema.REQUEST)
DEFS = REQUEST["$defs"]
VALIDATOR = schema.validator(schema.REQUEST)
FAST_OK = fastcheck.compile_schema(REQUEST)
# `aws acm-pca issue-certificate --generate-cli-skeleton`, as printed with the botocore of the test extra
SKELETON = REPO / "tests" / "data" / "issue-certificate.cli-skeleton.json"


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = DEFS[node["$ref"].rsplit("/", 1)[-1]]
    return node


def _compare(shape: Any, node: dict[str, Any], path: str, seen: set[str]) -> None:
    node = _resolve(node)
    md = shape.metadata
    kind = shape.type_name
    if kind == "structure":
        assert node["type"] == "object", path
        assert node["additionalProperties"] is False, path
        assert set(node["properties"]) == set(shape.members), f"{path}: members differ"
        assert set(node.get("required", [])) == set(shape.required_members), f"{path}: required differ"
        if shape.name in seen:
            return
        seen = seen | {shape.name}
        for name, member in shape.members.items():
            _compare(member, node["properties"][name], f"{path}.{name}", seen)
    elif kind == "list":
        assert node["type"] == "array", path
        assert node.get("minItems") == md.get("min"), f"{path}: minItems"
        assert node.get("maxItems") == md.get("max"), f"{path}: maxItems"
        _compare(shape.member, node["items"], f"{path}[]", seen)
    elif kind in ("string", "blob"):
        assert node["type"] == "string", path
        assert node.get("enum") == (list(shape.enum) if getattr(shape, "enum", None) else None), f"{path}: enum"
        assert node.get("minLength") == md.get("min"), f"{path}: minLength"
        assert node.get("maxLength") == md.get("max"), f"{path}: maxLength"
        want = f"^(?:{md['pattern']})$" if "pattern" in md else None
        assert node.get("pattern") == want, f"{path}: pattern"
    elif kind in ("long", "integer"):
        assert node["type"] == "integer", path
        assert node.get("minimum") == md.get("min"), f"{path}: minimum"
        assert node.get("maximum") == md.get("max"), f"{path}: maximum"
    elif kind == "boolean":
        assert node["type"] == "boolean", path
    else:  # a new kind of member: the schema must learn it
        pytest.fail(f"{path}: unhandled botocore type {kind}")


def _input_shape() -> Any:
    model = botocore.session.get_session().get_service_model("acm-pca")
    return model.operation_model("IssueCertificate").input_shape


def test_schema_matches_the_botocore_model() -> None:
    _compare(_input_shape(), REQUEST, "$", set())


def test_all_thirteen_signing_algorithms() -> None:
    algorithms = REQUEST["properties"]["SigningAlgorithm"]["enum"]
    assert len(algorithms) == 13
    assert {"SHA256WITHRSA_PSS", "SM3WITHSM2", "ML_DSA_87"} <= set(algorithms)


def _placeholders(skeleton: Any, shape: Any, path: str) -> Any:
    """``skeleton`` with each enum value replaced by the shape's whole enum, after checking it is one of them:
    the CLI picks an enum's placeholder at random (botocore's ArgumentGenerator calls random.choice)."""
    if shape.type_name == "structure":
        assert isinstance(skeleton, dict) and set(skeleton) <= set(shape.members), path
        return {k: _placeholders(v, shape.members[k], f"{path}.{k}") for k, v in skeleton.items()}
    if shape.type_name == "list":
        assert isinstance(skeleton, list), path
        return [_placeholders(v, shape.member, f"{path}[]") for v in skeleton]
    if getattr(shape, "enum", None):
        assert skeleton in shape.enum, f"{path}: {skeleton!r} is not one of the model's values"
        return {"one of": sorted(shape.enum)}
    return skeleton


def test_the_skeleton_copy_is_what_the_cli_prints_for_this_botocore() -> None:
    # What `aws acm-pca issue-certificate --generate-cli-skeleton` prints: awscli builds it with
    # botocore's ArgumentGenerator from the operation's input shape. A botocore whose request
    # changed fails here; refresh the copy with that command (see tests/data/README.md).
    from botocore.utils import ArgumentGenerator

    shape = _input_shape()
    generated = ArgumentGenerator().generate_skeleton(shape)
    copy = json.loads(SKELETON.read_text())
    assert _placeholders(copy, shape, "$") == _placeholders(generated, shape, "$")


def test_schema_has_the_cli_skeleton_shape() -> None:
    skeleton = json.loads(SKELETON.read_text())

    def keys(obj: Any, node: dict[str, Any], path: str) -> None:
        node = _resolve(node)
        if isinstance(obj, dict):
            assert set(obj) == set(node["properties"]), path
            for k, v in obj.items():
                keys(v, node["properties"][k], f"{path}.{k}")
        elif isinstance(obj, list):
            keys(obj[0], node["items"], f"{path}[]")

    keys(skeleton, REQUEST, "$")


def test_skeleton_command_prints_the_same_shape(cli: Cli) -> None:
    result = cli("skeleton", "--request")
    assert result.code == 0
    printed = json.loads(result.out)
    assert set(printed) == set(REQUEST["properties"])
    assert printed["Csr"] is None


# -- property-based: requests built from the schema --------------------------

_OID = st.from_regex(r"\A[0-2]\.([0-9]|[0-3][0-9])(\.[0-9]{1,4}){0,3}\Z")


def _strategy(node: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    node = _resolve(node)
    kind = node.get("type")
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if kind == "object":
        props = node["properties"]
        required = node.get("required", [])
        optional = [k for k in props if k not in required]
        if depth > 3:
            optional = []
        return st.fixed_dictionaries(
            {k: _strategy(props[k], depth + 1) for k in required},
            optional={k: _strategy(props[k], depth + 1) for k in optional},
        )
    if kind == "array":
        lo = node.get("minItems", 0)
        return st.lists(_strategy(node["items"], depth + 1), min_size=lo, max_size=lo + 1)
    if kind == "integer":
        return st.integers(min_value=node.get("minimum", 0), max_value=10**12)
    if kind == "boolean":
        return st.booleans()
    lo, hi = node.get("minLength", 0), node.get("maxLength", 40)
    pattern = node.get("pattern", "")
    if "[0-2]" in pattern:  # OIDs
        return _OID.filter(lambda s: lo <= len(s) <= hi)
    if "A-Za-z0-9+/" in pattern:  # base64
        return st.binary(min_size=1, max_size=30).map(lambda b: __import__("base64").b64encode(b).decode())
    if "acm-pca" in pattern:
        return st.just("arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/abc")
    if "A-Za-z]{2}" in pattern:
        return st.sampled_from(["US", "de", "Fr"])
    if pattern:
        return st.from_regex(r"\A[a-zA-Z0-9 ]*\Z").filter(lambda s: lo <= len(s) <= min(hi, 30))
    return st.text(alphabet="abcxyz019 -.", min_size=lo, max_size=min(hi, 20))


REQUESTS = _strategy(REQUEST)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(REQUESTS)
def test_generated_requests_are_valid(request: dict[str, Any]) -> None:
    assert list(VALIDATOR.iter_errors(request)) == []
    assert FAST_OK(request)


def _sites(obj: Any, node: dict[str, Any], path: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    node = _resolve(node)
    out = [(path, node)]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _sites(v, node["properties"][k], path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _sites(v, node["items"], path + (i,))
    return out


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> None:
    for part in path[:-1]:
        obj = obj[part]
    obj[path[-1]] = value


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        obj = obj[part]
    return obj


@FAST
@given(REQUESTS, st.data())
def test_single_mutations_fail_at_the_right_path(request: dict[str, Any], data: st.DataObject) -> None:
    sites = _sites(request, REQUEST, ())
    mutable = []
    for path, node in sites:
        kind = node.get("type")
        if kind == "object":
            mutable.append(("add-key", path, node))
        if "enum" in node and path:
            mutable.append(("misspell", path, node))
        if kind == "integer" and "minimum" in node and path:
            mutable.append(("below-min", path, node))
        if kind == "string" and "maxLength" in node and path:
            mutable.append(("too-long", path, node))
        if kind == "array" and "maxItems" in node and path:
            mutable.append(("too-many", path, node))
    how, path, node = data.draw(st.sampled_from(mutable))
    broken = copy.deepcopy(request)
    if how == "add-key":
        target = _get(broken, path)
        target["UnknownMember"] = 1
        expected_validator = "additionalProperties"
    elif how == "misspell":
        _set(broken, path, _get(broken, path) + "X")
        expected_validator = "enum"
    elif how == "below-min":
        _set(broken, path, node["minimum"] - 1)
        expected_validator = "minimum"
    elif how == "too-long":
        _set(broken, path, "A" * (node["maxLength"] + 1))
        expected_validator = "maxLength"
    else:
        items = _get(broken, path)
        _set(broken, path, (items * (node["maxItems"] + 1))[: node["maxItems"] + 1])
        expected_validator = "maxItems"
    errors = list(VALIDATOR.iter_errors(broken))
    assert not FAST_OK(broken)  # the fast check agrees with jsonschema
    assert any(tuple(e.absolute_path) == path and e.validator == expected_validator for e in errors), (
        how,
        path,
        [(list(e.absolute_path), e.validator) for e in errors],
    )


def test_fastcheck_refuses_keywords_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="anyOf"):
        fastcheck.compile_schema({"anyOf": [{"type": "string"}]})


def test_fastcheck_agrees_on_the_manifest_entry_schema() -> None:
    entry = schema.subschema(schema.LOADER_MANIFEST, "entry")
    ok = fastcheck.compile_schema(entry)
    check = schema.def_validator(schema.LOADER_MANIFEST, "entry")
    cases = [
        {"name": "a"},
        {"name": "-a"},
        {"name": "a", "output": {"certificate": "x"}},
        {"name": "a", "output": {"cert": "x"}},
        {"name": "a", "Validity": "Value=1,Type=DAYS"},
        {"name": "a", "Validity": 3},
        {"name": 5},
        {},
        {"name": "a", "cli_input_json": "x.json"},
        {"name": "a", "cli_input_json": "file://x.json"},
        {"name": "a", "Csr": 1},
    ]
    for case in cases:
        assert ok(case) == check.is_valid(case), case


def test_every_schema_passes_its_metaschema() -> None:
    from jsonschema import Draft202012Validator

    for name in (schema.REQUEST, schema.MANIFEST, schema.REPORT):
        Draft202012Validator.check_schema(schema.load(name))
