"""The published manifest schema, as editors and check-jsonschema read it: up to date with the
request schema, every request member described and constrained, and check-jsonschema (the real
tool, run as users run it) accepting the valid corpora and refusing the schema-level mistakes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from pca_batch import schema
from pca_batch.schema import publish
from tests.manifest.test_manifest_corpus import EXPECT
from tests.support.common import CORPUS, REPO, Cli

MANIFEST = schema.load(schema.MANIFEST)
REQUEST = schema.load(schema.REQUEST)
SCHEMA_FILE = REPO / "schemas" / "manifest.schema.json"
VALID = sorted((CORPUS / "valid").glob("*.yaml")) + sorted((REPO / "manifests").glob("*.yaml"))
# Mistakes a schema can see: unknown keys, enums, bounds, types, patterns, nulls, missing keys.
SCHEMA_LEVEL = {
    "backend-authorities-null", "backend-authority-crl", "backend-authority-nulls", "backend-authority-wrong-types",
    "backend-nulls", "backend-out-of-bounds", "backend-unknown-keys", "backend-wrong-types", "bad-arn", "bad-enum",
    "bad-name", "csr-inline-not-pem", "key-nulls", "key-out-of-bounds", "key-unknown-keys", "key-wrong-type",
    "key-wrong-types", "misspelled-key", "nested-unknown", "no-entries", "no-name", "not-a-mapping",
    "settings-max-rate-infinite", "settings-not-finite", "settings-nulls", "settings-out-of-bounds",
    "settings-wrong-types", "shorthand-bad", "state-wrong-values", "token-too-long", "too-many-sans", "top-level-typo",
    "unknown-runner-key", "unknown-version", "validity-zero", "wrong-type",
}
# Files that are no YAML a strict reader takes (check-jsonschema says it cannot parse them).
NOT_YAML = {"duplicate-key", "not-utf8", "python-tag", "yaml-syntax"}
# Refused by pca-batch for their shape as YAML (aliases, depth); what a schema says of them is beside the point.
YAML_SAFETY = {"alias-bomb", "deep-nesting"}


def check_jsonschema(*files: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "-o", "json", "--schemafile", str(SCHEMA_FILE), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (0, 1), proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_the_file_is_what_the_generator_makes_of_it() -> None:
    assert publish.build(MANIFEST, REQUEST) == MANIFEST, "run: python -m pca_batch.schema.publish"
    assert publish.main(["--check"]) == 0


def test_the_schema_passes_its_metaschema() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--check-metaschema", str(SCHEMA_FILE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _leaves(node: dict[str, Any], defs: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    """(path, node) of every constrained leaf of the request schema."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return [] if path.count(name) > 1 else _leaves(defs[name], defs, f"{path}<{name}>")
    if node.get("type") == "object":
        return [leaf for k, v in node["properties"].items() for leaf in _leaves(v, defs, f"{path}.{k}")]
    if node.get("type") == "array":
        return _leaves(node["items"], defs, f"{path}[]")
    return [(path, node)]


def _published(path: str) -> dict[str, Any]:
    """The published node at a path of ``_leaves``, as the manifest's entries see it."""
    node: dict[str, Any] = MANIFEST["$defs"]["entry"]
    for step in path.replace("[]", ".[]").replace("<", ".<").split(".")[1:]:
        if step == "[]":
            node = node["items"]
        elif step.startswith("<"):
            node = MANIFEST["$defs"][publish.REQUEST_PREFIX + step[1:-1]]
        else:
            node = node["properties"][step]
            if step in ("Validity", "ValidityNotBefore") and "anyOf" in node:
                node = {"$ref": node["anyOf"][0]["$ref"]}
        while "$ref" in node and not step.startswith("<"):
            node = MANIFEST["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def test_every_request_member_carries_the_request_schemas_rule() -> None:
    leaves = _leaves(REQUEST, REQUEST["$defs"], "$")
    assert len(leaves) > 60
    for path, leaf in leaves:
        if path == "$.Csr":
            continue  # a path or PEM text: its own alternatives (below)
        node = _published(path)
        rule = {k: v for k, v in leaf.items() if k != "type"}
        assert node.get("type") == leaf["type"], path
        if rule and leaf["type"] == "string":
            assert node["anyOf"] == [rule, {"$ref": "#/$defs/variable"}], path
        else:
            assert {k: node[k] for k in rule} == rule, path


def test_every_request_member_has_hover_help_in_entries_and_defaults() -> None:
    for block in ("entry", "defaults"):
        props = MANIFEST["$defs"][block]["properties"]
        for key in REQUEST["properties"]:
            assert props[key]["description"] and props[key]["markdownDescription"], (block, key)
            assert "API_IssueCertificate.html" in props[key]["markdownDescription"]
    assert MANIFEST["$defs"]["entry"]["defaultSnippets"]


def test_the_loader_reads_its_own_keys_only() -> None:
    loader = schema.load(schema.LOADER_MANIFEST)
    text = json.dumps(loader)
    assert "anyOf" not in text and "markdownDescription" not in text and "defaultSnippets" not in text
    for key in REQUEST["properties"]:
        assert loader["$defs"]["entry"]["properties"][key] == {}


@pytest.mark.parametrize("text", ["", "manifest", "request", "report"])
def test_the_schema_command_prints_the_published_files(text: str, cli: Cli) -> None:
    result = cli("schema", *([text] if text else []))
    assert result.code == 0
    name = {"": "manifest", "manifest": "manifest", "request": "issue-certificate", "report": "report"}[text]
    assert result.out == (REPO / "schemas" / f"{name}.schema.json").read_text()


def test_the_schema_command_names_the_choices(cli: Cli) -> None:
    result = cli("schema", "manifests")
    assert result.code == 2
    assert "choose from 'manifest', 'request', 'report'" in result.err


def test_check_jsonschema_accepts_every_valid_manifest() -> None:
    result = check_jsonschema(*VALID)
    assert result["status"] == "ok", json.dumps(result, indent=1)


def test_check_jsonschema_accepts_variables_shorthand_and_file_references(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "version: 1\n"
        "backend: {type: '${BACKEND:-aws}', region: '${AWS_REGION}'}\n"
        "defaults:\n"
        "  CertificateAuthorityArn: ${PCA_CA_ARN}\n"
        "  SigningAlgorithm: ${ALG:-SHA256WITHRSA}\n"
        "  Validity: Value=${DAYS:-30},Type=DAYS\n"
        "certificates:\n"
        "  - name: a\n"
        "    Csr: fileb://csr/a.der\n"
        "    ValidityNotBefore: {Value: 1767225600, Type: ABSOLUTE}\n"
        "  - name: b\n"
        "    Csr: |\n"
        "      -----BEGIN CERTIFICATE REQUEST-----\n"
        "      MIIB\n"
        "      -----END CERTIFICATE REQUEST-----\n"
        "    Validity: Type=YEARS, Value=1\n"
    )
    assert check_jsonschema(manifest)["status"] == "ok"


def _expected_paths(path: Path) -> list[str]:
    """Where the corpus says the problems are, as paths in the whole document."""
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = EXPECT.match(line)
        # NaN has no JSON form and compares false with every bound: no JSON Schema can refuse it; pca-batch does
        if m and not m.group(4).endswith(".nan"):
            out.append(m.group(3)[1:])
    return out


def test_check_jsonschema_refuses_the_schema_level_mistakes_of_the_invalid_corpus() -> None:
    files = sorted((CORPUS / "invalid").glob("*.yaml"))
    assert SCHEMA_LEVEL | NOT_YAML | YAML_SAFETY <= {f.stem for f in files}
    result = check_jsonschema(*files)
    errors: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for error in result["errors"]:
        for found in (error, error.get("best_match") or error):
            errors[Path(error["filename"]).stem].append((found["path"], found["message"]))
    unparsed = {Path(e["filename"]).stem for e in result["parse_errors"]}
    assert unparsed == NOT_YAML
    assert SCHEMA_LEVEL <= set(errors), SCHEMA_LEVEL - set(errors)
    # the others are mistakes only pca-batch can see (a CSR, the environment, the clock, two entries)
    assert set(errors) - SCHEMA_LEVEL <= YAML_SAFETY, set(errors) - SCHEMA_LEVEL
    for stem in sorted(SCHEMA_LEVEL):
        for tail in _expected_paths(CORPUS / "invalid" / f"{stem}.yaml"):
            assert any(_same_place(tail, path, message) for path, message in errors[stem]), (stem, tail, errors[stem])


def _same_place(tail: str, path: str, message: str) -> bool:
    """Does check-jsonschema's error point where pca-batch's problem does? An unknown key is an
    error of its mapping that names it; a member of the Validity shorthand, an error of the string."""
    parent, _, key = tail.rpartition(".")
    return path.endswith(tail) or (
        path.endswith(parent) and (f"'{key}'" in message or parent.endswith((".Validity", ".ValidityNotBefore")))
    )
