"""The manifest's ``backend:`` and ``settings:`` blocks as records.

A record is built only from a block the manifest schema accepted: a value of the
wrong type, null or out of bounds never reaches ``int()``, ``Path()`` or a
record's constructor. A refused block gives None here; the top-level schema
check has already reported why, at the value's line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from pca_batch import schema
from pca_batch.acmpca import GENERAL_PURPOSE
from pca_batch.errors import Problem
from pca_batch.manifest import yamlload
from pca_batch.manifest.yamlload import LineList
from pca_batch.model import (
    DEFAULT_CRL_DAYS,
    DEFAULT_CRL_URL,
    DEFAULT_STORE,
    AuthoritySpec,
    BackendConfig,
    BackendType,
    CrlConfig,
    RunSettings,
    StateConfig,
)
from pca_batch.pki.algorithms import DEFAULT_KEY_ALGORITHM
from pca_batch.schema import fastcheck
from pca_batch.times import parse_duration


@cache
def accepts(definition: str) -> fastcheck.Check:
    """The compiled check of one ``$defs`` member of the manifest schema."""
    return fastcheck.compile_schema(schema.subschema(schema.LOADER_MANIFEST, definition))


def default_backend(root: Path) -> BackendConfig:
    return BackendConfig(type="local", store=root / DEFAULT_STORE)


def backend_config(doc: Mapping[str, Any], root: Path) -> BackendConfig | None:
    """The backend a manifest names (the local one when it names none); None when its block is refused."""
    if "backend" not in doc:
        return default_backend(root)
    raw = doc["backend"]
    if not accepts("backend")(raw):
        return None
    kind: BackendType = "aws" if raw.get("type") == "aws" else "local"  # the schema allows these two
    store = None
    if kind == "local":
        store = Path(os.path.expanduser(raw.get("store", DEFAULT_STORE)))
        if not store.is_absolute():
            store = root / store
    items = raw.get("authorities", [])
    lines = _item_lines(items)
    return BackendConfig(
        type=kind,
        store=store,
        region=raw.get("region"),
        profile=raw.get("profile"),
        endpoint_url=raw.get("endpoint_url"),
        authorities=tuple(_authority(item, lines[i]) for i, item in enumerate(items)),
    )


def _authority(item: Mapping[str, Any], line: int) -> AuthoritySpec:
    return AuthoritySpec(
        arn=item["arn"],
        common_name=item["common_name"],
        key_algorithm=item.get("key_algorithm", DEFAULT_KEY_ALGORITHM),
        parent=item.get("parent"),
        validity_days=int(item.get("validity_days", 3650)),  # an integral number: 30.0 is 30
        usage_mode=item.get("usage_mode", GENERAL_PURPOSE),
        line=line,
        crl=_crl(item.get("crl")),
    )


def _crl(block: Mapping[str, Any] | None) -> CrlConfig | None:
    """An authority's ``crl:`` block (accepted by the schema); None when absent or not enabled."""
    if block is None or not block.get("enabled", True):
        return None
    return CrlConfig(url=block.get("url", DEFAULT_CRL_URL), days=int(block.get("days", DEFAULT_CRL_DAYS)))


def undeclared_parents(doc: Mapping[str, Any], display: str) -> list[Problem]:
    """Authorities whose parent the manifest does not declare (read from the block as written,
    so that this is reported beside the block's other problems, not after they are fixed)."""
    raw = doc.get("backend")
    items = raw.get("authorities") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        return []
    lines = _item_lines(items)
    declared = [(item, lines[i]) for i, item in enumerate(items) if isinstance(item, dict)]
    known = {item["arn"] for item, _ in declared if isinstance(item.get("arn"), str)}
    return [
        Problem(display, line, "-", "$.backend.authorities", f"the parent {item['parent']} is not declared")
        for item, line in declared
        if isinstance(item.get("arn"), str) and isinstance(item.get("parent"), str) and item["parent"]
        and item["parent"] not in known
    ]


_S3_ONLY = ("bucket", "key", "region", "endpoint_url")


def state_problems(doc: Mapping[str, Any], display: str) -> list[Problem]:
    """What the schema of ``state:`` does not say by itself: an s3 state needs a bucket and a key,
    a file state has no S3 settings."""
    raw = doc.get("state")
    if not isinstance(raw, dict) or raw.get("type") not in ("file", "s3"):
        return []
    line = raw.line if isinstance(raw, yamlload.LineDict) else 0
    if raw["type"] == "s3":
        return [Problem(display, line, "-", f"$.state.{k}", f"an s3 state needs `{k}`")
                for k in ("bucket", "key") if k not in raw]
    return [Problem(display, line, "-", f"$.state.{k}", f"`{k}` is for an s3 state (type: s3), not a file state")
            for k in _S3_ONLY if k in raw]


def run_settings(doc: Mapping[str, Any]) -> RunSettings | None:
    """The runner knobs a manifest sets (none when it has no block); None when its block is refused."""
    if "settings" not in doc:
        return RunSettings()
    raw = doc["settings"]
    if not accepts("settings")(raw):
        return None
    rate = raw.get("max_rate")
    return RunSettings(
        concurrency=_whole(raw.get("concurrency")),
        max_rate=float(rate) if rate is not None else None,
        max_attempts=_whole(raw.get("max_attempts")),
        max_issue=_whole(raw.get("max_issue")),
        throttle_timeout=_seconds(raw.get("throttle_timeout")),
    )


def _seconds(value: Any) -> float | None:
    """A duration the schema accepted (90s, 15m, or a number of seconds) in seconds."""
    if value is None:
        return None
    return parse_duration(value) if isinstance(value, str) else float(value)


def state_config(doc: Mapping[str, Any], root: Path) -> StateConfig | None:
    """The manifest's ``state:`` block (the default file state when it has none); None when refused."""
    if "state" not in doc:
        return StateConfig()
    raw = doc["state"]
    if not accepts("state")(raw):
        return None
    if state_problems(doc, ""):
        return None
    if raw["type"] == "file":
        path = raw.get("path")
        if path is None:
            return StateConfig()
        resolved = Path(os.path.expanduser(path))
        return StateConfig(type="file", path=resolved if resolved.is_absolute() else root / resolved)
    return StateConfig(type="s3", bucket=raw["bucket"], key=raw["key"], region=raw.get("region"),
                       endpoint_url=raw.get("endpoint_url"))


def _whole(value: int | float | None) -> int | None:
    return int(value) if value is not None else None


def _item_lines(items: list[Any]) -> list[int]:
    lines = items.item_lines if isinstance(items, LineList) else []
    return lines + [0] * (len(items) - len(lines))
