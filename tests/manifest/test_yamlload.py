from __future__ import annotations

import pytest
import yaml

from pca_batch.manifest import yamlload
from pca_batch.manifest.yamlload import YamlError, load


def test_lines_of_keys_values_and_items() -> None:
    doc = load("a: 1\nb:\n  - x\n  - {c: 2}\nd:\n  e: f\n")
    assert doc == {"a": 1, "b": ["x", {"c": 2}], "d": {"e": "f"}}
    assert doc.key_lines == {"a": 1, "b": 2, "d": 5}
    assert doc["b"].item_lines == [3, 4]
    assert doc["d"].value_lines == {"e": 6}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", 1), ("-7", -7), ("0x1F", 31), ("0o17", 15), ("1.5", 1.5), ("true", True), ("False", False),
        ("~", None), ("null", None), ("", None), ("NO", "NO"), ("yes", "yes"), ("on", "on"),
        ("'1'", "1"), ('"true"', "true"), ("!!str 5", "5"), ("!!int '5'", 5), ("2026-01-01", "2026-01-01"),
    ],
)
def test_yaml_1_2_core_scalars(text: str, value: object) -> None:
    assert load(f"k: {text}\n")["k"] == value


def test_matches_safe_load_on_plain_data() -> None:
    text = "a: [1, 2.5, x, 'y']\nb: {c: null, d: true}\ne: |\n  multi\n  line\n"
    assert load(text) == yaml.safe_load(text)


def test_merge_keys_and_shared_aliases() -> None:
    doc = load("base: &b {x: 1, y: 2}\nitem:\n  <<: *b\n  y: 3\n")
    assert doc["item"] == {"x": 1, "y": 3}


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("a: 1\nb: 2\na: 3\n", 3, "given twice"),
        ("a: !!python/object/apply:os.system ['true']\n", 1, "not allowed"),
        ("a: !custom x\n", 1, "not allowed"),
        ("a: !!binary aGk=\n", 1, "not allowed"),
        ("a: [1, 2\n", 2, "YAML syntax error"),
        ("a: *missing\n", 1, "alias"),
        ("a: 1\n---\nb: 2\n", 2, "one YAML document"),
        ("? [a, b]\n: 1\n", 1, "mapping key"),
        ("!!int x: 1\n", 1, "cannot be read as int"),
        ("[" * 100 + "]" * 100, 1, "nests deeper"),
    ],
)
def test_refused(text: str, line: int, needle: str) -> None:
    with pytest.raises(YamlError) as info:
        load(text)
    assert needle in info.value.message
    assert info.value.line == line


def test_billion_laughs_refused_before_memory_grows() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        refs = ",".join([f"*a{i-1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    with pytest.raises(YamlError, match="alias bomb"):
        load("\n".join(lines) + "\n")


def test_moderate_alias_use_is_fine() -> None:
    doc = load("d: &d {x: 1}\nl: [*d, *d, *d]\n")
    assert doc["l"] == [{"x": 1}] * 3


def test_decode_bom_and_bad_bytes() -> None:
    assert yamlload.decode(b"\xef\xbb\xbfa: 1\n") == "a: 1\n"
    with pytest.raises(YamlError) as info:
        yamlload.decode(b"a: 1\nb: \xc3\x28\n")
    assert info.value.line == 2


def test_oversized_text_refused() -> None:
    with pytest.raises(YamlError, match="larger than"):
        load("#" * (yamlload.MAX_BYTES + 1))
