"""The manifest schema bounds every value the loader turns into a record, and the
compiled check agrees with jsonschema on it, odd numbers included."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pca_batch import schema
from pca_batch.manifest import load, sections

DEFS = schema.load(schema.LOADER_MANIFEST)["$defs"]


def _constrained(name: str, node: dict[str, Any]) -> None:
    assert {"type", "enum", "const", "$ref"} & set(node), f"{name} takes any value"
    if node.get("type") in ("integer", "number"):
        assert "minimum" in node and "maximum" in node, f"{name} has no bounds"


def test_every_value_of_backend_settings_and_key_has_a_type_or_choices() -> None:
    for block in ("backend", "authority", "settings", "key", "output"):
        assert DEFS[block]["additionalProperties"] is False, block
        for key, node in DEFS[block]["properties"].items():
            _constrained(f"{block}.{key}", node)
    for key, node in DEFS["key"]["properties"]["subject"]["properties"].items():
        _constrained(f"key.subject.{key}", node)


ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(),  # .inf, -.inf and .nan too
    st.sampled_from([0, 1, 30.0, 512, 513, 36500, 36501, 100000, 1e400]),
    st.text(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
ARN = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/11111111-2222-3333-4444-555555555555"
SETTINGS = st.dictionaries(st.sampled_from(["concurrency", "max_rate", "max_attempts", "other"]), ODD, max_size=3)
AUTHORITY = st.fixed_dictionaries(
    {"arn": st.just(ARN), "common_name": st.just("root")},
    optional={k: ODD for k in ("key_algorithm", "parent", "validity_days", "usage_mode")},
)
BACKEND = st.fixed_dictionaries(
    {},
    optional={
        "type": st.one_of(st.sampled_from(["local", "aws"]), ODD),
        "store": st.one_of(st.just("store"), ODD),
        "region": st.one_of(st.just("eu-west-1"), ODD),
        "authorities": st.lists(st.one_of(AUTHORITY, ODD), max_size=2),
    },
)


def _doc(**blocks: Any) -> dict[str, Any]:
    return {"version": 1, "certificates": [{"name": "a"}], **blocks}


@settings(max_examples=300, deadline=None)
@given(SETTINGS, BACKEND)
def test_the_compiled_check_and_jsonschema_agree_and_records_come_only_from_accepted_blocks(
    raw_settings: dict[str, Any], raw_backend: dict[str, Any]
) -> None:
    doc = _doc(settings=raw_settings, backend=raw_backend)
    accepted = load._top_ok()(doc)
    assert accepted == load._top_validator().is_valid(doc)
    built_settings, built_backend = sections.run_settings(doc), sections.backend_config(doc, Path("/m"))
    assert (built_settings is not None and built_backend is not None) == accepted
    if built_settings is not None:
        for value in (built_settings.concurrency, built_settings.max_rate, built_settings.max_attempts):
            assert value is None or math.isfinite(value)
    if built_backend is not None:
        assert all(isinstance(a.validity_days, int) for a in built_backend.authorities)


def test_infinity_and_nan_are_no_number() -> None:
    for value in (math.inf, -math.inf, math.nan):
        doc = _doc(settings={"max_rate": value})
        assert not load._top_ok()(doc)
        assert not load._top_validator().is_valid(doc)
    assert load._top_ok()(_doc(settings={"max_rate": 0.5, "concurrency": 8.0}))
