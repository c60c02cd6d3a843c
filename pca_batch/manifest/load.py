"""Loading a manifest: parse, check, merge defaults, read CSRs, derive tokens.

``load_manifest`` turns a YAML file into a frozen :class:`~pca_batch.model.Manifest`
whose entries are each valid or carry every problem found in them. Problems
that make the whole file unusable (bad YAML, not a mapping, unknown version)
raise :class:`~pca_batch.errors.ManifestError` at once.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from pca_batch import schema
from pca_batch.errors import Problem
from pca_batch.manifest import interpolate, sections, yamlload
from pca_batch.manifest.context import Listeners, LoadContext
from pca_batch.manifest.csrpool import CsrChecker
from pca_batch.manifest.entries import EntryBuilder
from pca_batch.manifest.problems import Source, json_path, problems_from_errors
from pca_batch.model import BackendConfig, Entry, Manifest, RunSettings
from pca_batch.pki import csr as csrmod
from pca_batch.schema import fastcheck

SUPPORTED_VERSIONS = (1,)


def _top_schema() -> dict[str, Any]:
    """The manifest schema without the entries, which are checked one by one."""
    top = copy.deepcopy(schema.load(schema.LOADER_MANIFEST))
    top["properties"]["certificates"] = {"type": "array", "minItems": 1}
    return top


@cache
def _top_ok() -> fastcheck.Check:
    return fastcheck.compile_schema(_top_schema())


@cache
def _top_validator() -> Any:
    from jsonschema import Draft202012Validator, validators

    # JSON has no infinity or NaN, so YAML's .inf and .nan are no number here: the same
    # types as the compiled check's, so that what it refuses is always explained.
    types = Draft202012Validator.TYPE_CHECKER.redefine_many(
        {kind: (lambda _, value, kind=kind: fastcheck.is_type(value, kind)) for kind in ("number", "integer")}
    )
    return validators.extend(Draft202012Validator, type_checker=types)(_top_schema())


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
    ctx = _context(path, allow_outside_paths, env, now)
    return _load_file(ctx, Listeners(on_backend, on_entry))


def load_without_env(path: Path | str, *, allow_outside_paths: bool = False) -> Manifest:
    """As :func:`load_manifest`, away from the environment of a run (validate --offline, a pre-commit
    hook): a ``${VAR}`` that is not set is no problem, the value it fills goes unchecked, and the
    manifest's ``unset_env`` names it."""
    ctx = replace(_context(path, allow_outside_paths, None, None), unset_env=set())
    return _load_file(ctx, Listeners())


def _context(
    path: Path | str, allow_outside_paths: bool, env: Mapping[str, str] | None, now: datetime | None
) -> LoadContext:
    file = Path(os.path.abspath(path))
    return LoadContext(
        display=str(path),
        path=file,
        root=file.parent,
        env=os.environ if env is None else env,
        now=now or datetime.now(UTC),
        allow_outside_paths=allow_outside_paths,
    )


def _load_file(ctx: LoadContext, listeners: Listeners) -> Manifest:
    file = ctx.path
    try:
        data = csrmod.read_limited(file, yamlload.MAX_BYTES, "the manifest")
    except csrmod.InputError as exc:
        raise ctx.fatal(1, str(exc)) from None
    # Start the CSR workers now, so that they are ready when the entries have been read.
    checker = CsrChecker(data.count(b"Csr"), manifest=data, root=str(ctx.root))
    try:
        return _load(data, ctx, checker, listeners)
    finally:
        checker.close()


def _load(data: bytes, ctx: LoadContext, checker: CsrChecker, listeners: Listeners) -> Manifest:
    text, doc = _parse(data, ctx)
    problems, unfilled = _top_problems(doc, ctx)
    backend, settings = sections.backend_config(doc, ctx.root), sections.run_settings(doc)
    if backend is not None and settings is not None and listeners.on_backend is not None:
        listeners.on_backend(backend, settings)  # e.g. start opening the AWS backend while the entries are read
    defaults = doc.get("defaults") if isinstance(doc.get("defaults"), yamlload.LineDict) else None
    builder = EntryBuilder(ctx, defaults=defaults, checker=checker, interpolate="${" in text)
    builder.unfilled |= unfilled
    problems += builder.check_defaults()
    entries = builder.finish(_build_entries(doc, builder, listeners.on_entry))
    version = doc.get("version")
    return Manifest(
        path=ctx.path,
        display=ctx.display,
        root=ctx.root,
        version=version if isinstance(version, int) else 0,
        backend=backend or sections.default_backend(ctx.root),  # a refused block: the manifest is invalid anyway
        settings=settings or RunSettings(),
        state=sections.state_config(doc, ctx.root),
        entries=tuple(entries),
        problems=tuple(sorted(problems, key=lambda p: p.line)),
        unset_env=tuple(sorted(ctx.unset_env or ())),
    )


def _parse(data: bytes, ctx: LoadContext) -> tuple[str, yamlload.LineDict]:
    """The manifest's text and its top-level mapping; ManifestError when it is not one of a version we read."""
    try:
        text = yamlload.decode(data)
        doc = yamlload.load(text)
    except yamlload.YamlError as exc:
        raise ctx.fatal(exc.line, exc.message) from None
    if not isinstance(doc, yamlload.LineDict):
        raise ctx.fatal(getattr(doc, "line", 1), "the manifest must be a mapping with `version` and `certificates`")
    version = doc.get("version")
    if "version" in doc and version not in SUPPORTED_VERSIONS:
        raise ctx.fatal(
            doc.value_lines["version"],
            f"unknown manifest version {version!r}; this pca-batch reads version "
            + ", ".join(str(v) for v in SUPPORTED_VERSIONS),
            "$.version",
        )
    return text, doc


def _top_problems(doc: yamlload.LineDict, ctx: LoadContext) -> tuple[list[Problem], set[tuple[str, int]]]:
    """Problems outside the entries, and the (path, line) of defaults whose ${VAR} could not be filled.

    The blocks are checked as they will be used, their ${VAR}s filled in; a value whose
    variable is not set is reported as that, not again as the empty value it became.
    """
    filled: list[Problem] = []
    excused: set[tuple[str, int]] = set()  # (path, line) of values whose unset ${VAR} is no problem
    unfilled: set[tuple[str, int]] = set()  # as the entries see the defaults' paths
    for key in ("backend", "settings", "state", "defaults"):
        if isinstance(doc.get(key), dict):

            def note(p: list[Any], line: int, message: str) -> None:
                # a defaults value: entries see it at the same line, without the "defaults" step
                unfilled.add(("$" + json_path(p[1:])[1:], line))
                if ctx.excuses(message):
                    excused.add((json_path(p), line))
                else:
                    filled.append(Problem(ctx.display, line, "-", json_path(p), message))

            interpolate.walk(doc[key], ctx.env, [key], doc.value_lines[key], note)
    problems: list[Problem] = []
    if not _top_ok()(doc):
        echoes = {(p.path, p.line) for p in filled} | excused
        found = problems_from_errors(
            _top_validator().iter_errors(doc),
            file=ctx.display,
            entry="-",
            sources=[Source(doc, doc.line, True)],
            fallback_line=doc.line,
        )
        problems += [p for p in found if (p.path, p.line) not in echoes]
    extra = sections.undeclared_parents(doc, ctx.display) + sections.state_problems(doc, ctx.display)
    return problems + filled + extra, unfilled


def _build_entries(
    doc: yamlload.LineDict, builder: EntryBuilder, on_entry: Callable[[Entry], None] | None
) -> list[Entry]:
    certificates = doc.get("certificates")
    if not isinstance(certificates, list):
        return []
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    lines = certificates.item_lines if isinstance(certificates, yamlload.LineList) else []
    for index, raw in enumerate(certificates):
        line = lines[index] if index < len(lines) else doc.line
        entry = builder.build(index, raw, line, seen)
        entries.append(entry)
        if on_entry is not None and entry.valid:
            on_entry(entry)
    return entries
