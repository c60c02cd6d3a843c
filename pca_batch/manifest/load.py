"""Loading a manifest: parse, check, merge defaults, read CSRs, derive tokens.

``load_manifest`` turns a YAML file into a frozen :class:`~pca_batch.model.Manifest`
whose entries are each valid or carry every problem found in them. Problems
that make the whole file unusable (bad YAML, not a mapping, unknown version)
raise :class:`~pca_batch.errors.ManifestError` at once.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from pca_batch import schema
from pca_batch.acmpca import GENERAL_PURPOSE, USAGE_MODES
from pca_batch.errors import ManifestError, Problem
from pca_batch.manifest import interpolate, yamlload
from pca_batch.manifest.csrpool import CsrChecker
from pca_batch.manifest.entries import EntryBuilder
from pca_batch.manifest.problems import Source, json_path, problems_from_errors
from pca_batch.model import DEFAULT_STORE, AuthoritySpec, BackendConfig, Entry, Manifest, RunSettings
from pca_batch.pki import csr as csrmod
from pca_batch.pki.algorithms import DEFAULT_KEY_ALGORITHM, KEY_ALGORITHMS
from pca_batch.schema import fastcheck

SUPPORTED_VERSIONS = (1,)


def _top_schema() -> dict[str, Any]:
    """The manifest schema without the entries, which are checked one by one."""
    top = copy.deepcopy(schema.load(schema.MANIFEST))
    top["properties"]["certificates"] = {"type": "array", "minItems": 1}
    return top


@cache
def _top_ok() -> fastcheck.Check:
    return fastcheck.compile_schema(_top_schema())


@cache
def _top_validator() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(_top_schema())


def load_manifest(
    path: Path | str,
    *,
    allow_outside_paths: bool = False,
    env: Mapping[str, str] | None = None,
    now: datetime | None = None,
    on_backend: Callable[[BackendConfig, RunSettings], None] | None = None,
    on_entry: Callable[[Entry], None] | None = None,
) -> Manifest:
    """Read, interpolate and validate a manifest: the entries' problems are in the result, and one
    that cannot be read at all raises ManifestError.

    ``on_backend`` hears the backend's settings as soon as they are read, before
    the entries; ``on_entry`` hears each valid entry as soon as it is built (its
    CSR not yet checked). Both are for getting the backend ready while the
    entries are still being read.
    """
    display = str(path)
    file = Path(os.path.abspath(path))
    root = file.parent
    env = os.environ if env is None else env
    now = now or datetime.now(UTC)

    def fatal(line: int, message: str, where: str = "$") -> ManifestError:
        return ManifestError([Problem(display, max(line, 1), "-", where, message)])

    try:
        data = csrmod.read_limited(file, yamlload.MAX_BYTES, "the manifest")
    except csrmod.InputError as exc:
        raise fatal(1, str(exc)) from None
    # Start the CSR workers now, so that they are ready when the entries have been read.
    checker = CsrChecker(data.count(b"Csr"), manifest=data, root=str(root))
    try:
        return _load(data, file, display, root, env, now, fatal, checker, allow_outside_paths, on_backend, on_entry)
    finally:
        checker.close()


def _load(
    data: bytes,
    file: Path,
    display: str,
    root: Path,
    env: Mapping[str, str],
    now: datetime,
    fatal: Callable[..., ManifestError],
    checker: CsrChecker,
    allow_outside_paths: bool,
    on_backend: Callable[[BackendConfig, RunSettings], None] | None,
    on_entry: Callable[[Entry], None] | None,
) -> Manifest:
    try:
        text = yamlload.decode(data)
        doc = yamlload.load(text)
    except yamlload.YamlError as exc:
        raise fatal(exc.line, exc.message) from None
    if not isinstance(doc, yamlload.LineDict):
        raise fatal(getattr(doc, "line", 1), "the manifest must be a mapping with `version` and `certificates`")
    version = doc.get("version")
    if "version" in doc and version not in SUPPORTED_VERSIONS:
        raise fatal(
            doc.value_lines["version"],
            f"unknown manifest version {version!r}; this pca-batch reads version "
            + ", ".join(str(v) for v in SUPPORTED_VERSIONS),
            "$.version",
        )

    problems: list[Problem] = []

    def report(entry: str) -> interpolate.Reporter:
        def add(p: list[Any], line: int, message: str) -> None:
            problems.append(Problem(display, line, entry, json_path(p), message))

        return add

    top_source = [Source(doc, doc.line, True)]
    if not _top_ok()(doc):
        problems += problems_from_errors(
            _top_validator().iter_errors(doc), file=display, entry="-", sources=top_source, fallback_line=doc.line
        )
    unfilled: set[tuple[str, int]] = set()
    for key in ("backend", "settings", "defaults"):
        if isinstance(doc.get(key), dict):
            add = report("-")

            def note(p: list[Any], line: int, message: str, add: interpolate.Reporter = add) -> None:
                # a defaults value: entries see it at the same line, without the "defaults" step
                unfilled.add(("$" + json_path(p[1:])[1:], line))
                add(p, line, message)

            interpolate.walk(doc[key], env, [key], doc.value_lines[key], note)

    backend = _backend(doc, root, display, problems)
    settings = _settings(doc)
    if on_backend is not None:
        on_backend(backend, settings)  # e.g. start opening the AWS backend while the entries are read
    defaults = doc.get("defaults") if isinstance(doc.get("defaults"), yamlload.LineDict) else None
    certificates = doc.get("certificates")
    builder = EntryBuilder(
        file=display,
        root=root,
        env=env,
        now=now,
        defaults=defaults,
        allow_outside_paths=allow_outside_paths,
        checker=checker,
        interpolate="${" in text,
    )
    builder.unfilled |= unfilled
    problems += builder.check_defaults()

    entries: list[Entry] = []
    if isinstance(certificates, list):
        seen: dict[str, int] = {}
        lines = certificates.item_lines if isinstance(certificates, yamlload.LineList) else []
        for index, raw in enumerate(certificates):
            line = lines[index] if index < len(lines) else doc.line
            entry = builder.build(index, raw, line, seen)
            entries.append(entry)
            if on_entry is not None and entry.valid:
                on_entry(entry)
    entries = builder.finish(entries)
    return Manifest(
        path=file,
        display=display,
        root=root,
        version=version if isinstance(version, int) else 0,
        backend=backend,
        settings=settings,
        entries=tuple(entries),
        problems=tuple(sorted(problems, key=lambda p: p.line)),
    )


def _backend(doc: yamlload.LineDict, root: Path, display: str, problems: list[Problem]) -> BackendConfig:
    raw = doc.get("backend")
    if not isinstance(raw, dict):
        return BackendConfig(type="local", store=root / DEFAULT_STORE)
    kind = raw.get("type", "local")
    store = raw.get("store")
    store_path = None
    if kind == "local":
        store_path = Path(os.path.expanduser(store)) if isinstance(store, str) else Path(DEFAULT_STORE)
        if not store_path.is_absolute():
            store_path = root / store_path
    authorities: list[AuthoritySpec] = []
    items = raw.get("authorities")
    if isinstance(items, list):
        item_lines = items.item_lines if isinstance(items, yamlload.LineList) else []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("arn"), str):
                continue
            authorities.append(
                AuthoritySpec(
                    arn=item["arn"],
                    common_name=str(item.get("common_name", "")),
                    # a value the schema refuses (reported) stands as the default here
                    key_algorithm=_one_of(item.get("key_algorithm"), KEY_ALGORITHMS, DEFAULT_KEY_ALGORITHM),
                    parent=item.get("parent") if isinstance(item.get("parent"), str) else None,
                    validity_days=int(item.get("validity_days", 3650)),
                    usage_mode=_one_of(item.get("usage_mode"), USAGE_MODES, GENERAL_PURPOSE),
                    line=item_lines[i] if i < len(item_lines) else 0,
                )
            )
        known = {a.arn for a in authorities}
        for a in authorities:
            if a.parent and a.parent not in known:
                problems.append(
                    Problem(display, a.line, "-", "$.backend.authorities", f"the parent {a.parent} is not declared")
                )
    return BackendConfig(
        type="aws" if kind == "aws" else "local",  # the schema reports any other type
        store=store_path,
        region=raw.get("region") if isinstance(raw.get("region"), str) else None,
        profile=raw.get("profile") if isinstance(raw.get("profile"), str) else None,
        endpoint_url=raw.get("endpoint_url") if isinstance(raw.get("endpoint_url"), str) else None,
        authorities=tuple(authorities),
    )


_Name = TypeVar("_Name", bound=str)


def _one_of(value: object, names: tuple[_Name, ...], default: _Name) -> _Name:
    """``value`` when it is one of ``names`` (a closed set's), else ``default``."""
    return next((name for name in names if name == value), default)


def _settings(doc: yamlload.LineDict) -> RunSettings:
    raw = doc.get("settings")
    if not isinstance(raw, dict):
        return RunSettings()

    def num(key: str, kind: type) -> Any:
        value = raw.get(key)
        return kind(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    return RunSettings(
        concurrency=num("concurrency", int), max_rate=num("max_rate", float), max_attempts=num("max_attempts", int)
    )


def read_json_request(path: Path) -> Any:
    """A --cli-input-json file; csr.InputError when unreadable or not JSON."""
    data = csrmod.read_limited(path, csrmod.JSON_MAX_BYTES, "the cli_input_json file")
    try:
        return json.loads(yamlload.decode(data))
    except yamlload.YamlError as exc:
        raise csrmod.InputError(f"the cli_input_json file {path}: {exc.message}") from None
    except json.JSONDecodeError as exc:
        raise csrmod.InputError(
            f"the cli_input_json file {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
