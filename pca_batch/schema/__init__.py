"""The JSON Schemas, loaded once from the package (installed wheel) or the checkout."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

REQUEST = "issue-certificate.schema.json"
MANIFEST = "manifest.schema.json"
REPORT = "report.schema.json"
# The manifest schema as the loader reads it: pca-batch's own keys, the request members left to
# the request schema (see pca_batch.schema.publish.for_loading). Not a file: derived from MANIFEST.
LOADER_MANIFEST = "manifest.schema.json (loader)"


def _read(name: str) -> str:
    # An installed wheel carries the schemas inside the package (pca_batch/schemas);
    # a checkout keeps them at the top level, beside the package.
    packaged = resources.files("pca_batch").joinpath("schemas", name)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parents[2] / "schemas" / name).read_text(encoding="utf-8")


def text(name: str) -> str:
    """A published schema as its file holds it (what `pca-batch schema` prints)."""
    return _read(name)


@cache
def load(name: str) -> dict[str, Any]:
    if name == LOADER_MANIFEST:
        from pca_batch.schema.publish import for_loading

        return for_loading(load(MANIFEST), set(load(REQUEST)["properties"]))
    schema: dict[str, Any] = json.loads(_read(name))
    return schema


# jsonschema is imported on first use: a valid manifest is checked by the compiled
# checks of pca_batch.schema.fastcheck, and jsonschema only explains what fails.


@cache
def validator(name: str) -> Draft202012Validator:
    """One validator per schema, built once and checked against the metaschema."""
    from jsonschema import Draft202012Validator

    schema = load(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def subschema(name: str, ref: str) -> dict[str, Any]:
    """``subschema(MANIFEST, "entry")``: a $defs member with the root's $defs, so $refs resolve."""
    root = load(name)
    return {**root["$defs"][ref], "$defs": root["$defs"]}


@cache
def def_validator(name: str, ref: str) -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(subschema(name, ref))
