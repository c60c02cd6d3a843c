"""Backends: the embedded local CA (default) and AWS Private CA (boto3)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from pca_batch.backends.base import Backend, CaDescription, CertificateBundle
from pca_batch.errors import UsageError
from pca_batch.model import BackendConfig

__all__ = ["Backend", "CaDescription", "CertificateBundle", "Opening", "open_backend"]


class Opening:
    """A backend opened in a background thread while the manifest is still being read.

    Only for backends whose opening changes nothing (aws: the SDK, the model, the
    credential chain; no call). ``take()`` gives the backend, or raises what opening
    it raised, in the caller's thread; ``discard()`` says it is not needed: it is
    closed once open, without making the caller wait (a credential chain can take
    seconds to answer, and an invalid manifest's problems must not wait for it).
    """

    def __init__(self, open_it: Callable[[], Backend]) -> None:
        self._lock = threading.Lock()
        self._backend: Backend | None = None
        self._error: BaseException | None = None
        self._discarded = False
        self._thread = threading.Thread(target=self._run, args=(open_it,), name="pca-batch-open", daemon=True)
        self._thread.start()

    def _run(self, open_it: Callable[[], Backend]) -> None:
        try:
            backend = open_it()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread by take()
            self._error = exc
            return
        with self._lock:
            if not self._discarded:
                self._backend = backend
                return
        backend.close()

    def take(self) -> Backend:
        self._thread.join()
        if self._error is not None:
            raise self._error
        with self._lock:
            backend, self._backend = self._backend, None
        assert backend is not None, "an opening is taken once"
        return backend

    def discard(self) -> None:
        with self._lock:
            self._discarded = True
            backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()


def open_backend(
    config: BackendConfig,
    *,
    store: Path | None = None,
    region: str | None = None,
    profile: str | None = None,
    endpoint_url: str | None = None,
    max_pool_connections: int = 32,
) -> Backend:
    """The backend a manifest asks for; command-line values win over the manifest's."""
    if config.type == "local":
        from pca_batch.backends.local import LocalBackend, ensure_authorities

        folder = store or config.store
        if folder is None:
            raise UsageError("the local backend needs a store folder (backend.store or --store)")
        if config.authorities:
            ensure_authorities(folder, config.authorities)
        return LocalBackend(folder)
    if config.type == "aws":
        from pca_batch.backends.aws import AwsBackend

        aws = AwsBackend(
            region=region or config.region,
            profile=profile or config.profile,
            endpoint_url=endpoint_url or config.endpoint_url,
            max_pool_connections=max_pool_connections,
        )
        aws.check_credentials()  # no credentials: one message before any entry runs (exit 2)
        return aws
    raise UsageError(f"unknown backend type {config.type!r} (expected local or aws)")
