"""Where pca-batch keeps what it issued and revoked: the *state*.

``state:`` in the manifest (``{type: file, path: ...}``, the default being
``.pca-batch/journal.jsonl`` beside it, or ``{type: s3, bucket, key, region, endpoint_url}``),
overridden by ``--state URL`` (``file://PATH`` or ``s3://BUCKET/KEY``) and, for the file
state, by ``--journal FILE``. Every command gets its state from :func:`open_state`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pca_batch.model import ApplyOptions, Manifest, StateConfig
from pca_batch.run.journal import default_journal_path
from pca_batch.state.base import ALL, LockHeld, LockInfo, State, StateError, StateView, scope_of

__all__ = ["ALL", "LockHeld", "LockInfo", "State", "StateError", "StateView", "open_state", "resolve_state",
           "scope_of", "state_from_url"]


def state_from_url(url: str) -> StateConfig:
    """``file://PATH`` (relative to the working folder) or ``s3://BUCKET/KEY``."""
    if url.startswith("file://"):
        path = unquote(url[len("file://"):])
        if not path:
            raise StateError(f"--state {url}: a file state needs a path (file://PATH)")
        return StateConfig(type="file", path=Path(path).expanduser().absolute())
    if url.startswith("s3://"):
        parts = urlsplit(url)
        bucket, key = parts.netloc, unquote(parts.path.lstrip("/"))
        if not bucket:
            raise StateError(f"--state {url}: no bucket; an s3 state is s3://BUCKET/KEY")
        if not key or key.endswith("/"):
            raise StateError(f"--state {url}: no object key; an s3 state is s3://BUCKET/KEY (e.g. "
                             f"s3://{bucket}/certs.state)")
        return StateConfig(type="s3", bucket=bucket, key=key)
    raise StateError(f"--state {url}: expected file://PATH or s3://BUCKET/KEY")


def resolve_state(manifest: Manifest, options: ApplyOptions) -> StateConfig:
    """--state > --journal > the manifest's ``state:`` > .pca-batch/journal.jsonl beside it.
    An s3 URL takes the region and endpoint of an s3 ``state:`` block, if the manifest has one."""
    if options.state is not None:
        config = state_from_url(options.state)
        if config.type == "s3" and manifest.state is not None and manifest.state.type == "s3":
            config = replace(config, region=manifest.state.region, endpoint_url=manifest.state.endpoint_url)
        return config
    if options.journal is not None:
        return StateConfig(type="file", path=options.journal)
    if manifest.state is None:
        raise StateError(f"{manifest.display}: its `state:` block is not valid (see its problems), so the state "
                         "cannot be found; nothing was read or issued")
    if manifest.state.type == "file" and manifest.state.path is None:
        return StateConfig(type="file", path=default_journal_path(manifest.path))
    return manifest.state


def open_state(manifest: Manifest, options: ApplyOptions) -> State:
    """The state of this manifest, as the command line and the manifest say (nothing read yet)."""
    config = resolve_state(manifest, options)
    if config.type == "s3":
        from pca_batch.state.s3state import S3State

        return S3State(config, profile=options.profile or manifest.backend.profile)
    from pca_batch.state.filestate import FileState

    assert config.path is not None
    return FileState(config.path)
