"""Backends: the embedded local CA (default) and AWS Private CA (boto3)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pca_batch.backends.base import Backend, CaDescription, CertificateBundle
from pca_batch.errors import BackendError, UsageError
from pca_batch.model import BackendConfig

if TYPE_CHECKING:
    from pca_batch.run.describe import Describer

__all__ = ["Backend", "CaDescription", "CertificateBundle", "Opening", "open_backend"]


class Opening:
    """A backend opened in a background thread while the manifest is still being read.

    Only for backends whose opening changes nothing (aws: the SDK, the model, the
    credential chain). Once open, it describes the CAs it is told of with
    :meth:`foresee` (read-only DescribeCertificateAuthority calls), so that the
    preflight's round trips overlap the reading of the entries instead of
    following it. ``take()`` gives the backend, or raises what opening it raised,
    in the caller's thread; ``described()`` then gives what was described.
    ``discard()`` says it is not needed: it is closed once open, without making
    the caller wait (a credential chain can take seconds to answer, and an
    invalid manifest's problems must not wait for it).
    """

    def __init__(self, open_it: Callable[[], Backend], describer: Describer | None = None) -> None:
        self.describer = describer  # paces and retries the describing (else: one plain call each)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._backend: Backend | None = None
        self._error: BaseException | None = None
        self._discarded = False
        self._taking = False
        self._foreseen: list[str] = []  # CA ARNs to describe, in the order told
        self._told: set[str] = set()
        self._described: dict[str, CaDescription | BackendError] = {}
        self._thread = threading.Thread(target=self._run, args=(open_it,), name="pca-batch-open", daemon=True)
        self._thread.start()

    def foresee(self, ca_arn: str) -> None:
        """A CA the entries name: describe it once open, before it is asked for."""
        with self._lock:
            if ca_arn not in self._told:
                self._told.add(ca_arn)
                self._foreseen.append(ca_arn)
                self._wake.notify()

    def _run(self, open_it: Callable[[], Backend]) -> None:
        try:
            backend = open_it()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread by take()
            self._error = exc
            return
        while True:
            with self._lock:
                while not (self._foreseen or self._taking or self._discarded):
                    self._wake.wait()
                if self._discarded:
                    break
                if self._taking:  # what is still foreseen, the preflight describes itself
                    self._backend = backend
                    return
                arn = self._foreseen.pop(0)
            try:
                found: CaDescription | BackendError = (
                    self.describer.describe(backend, arn) if self.describer is not None
                    else backend.describe_certificate_authority(arn)
                )
            except BackendError as exc:
                found = exc
            except Exception:  # noqa: BLE001 - not kept: the preflight asks again and reports it
                continue
            with self._lock:
                self._described[arn] = found
        backend.close()

    def take(self) -> Backend:
        with self._lock:
            self._taking = True
            self._wake.notify()
        self._thread.join()
        if self._error is not None:
            raise self._error
        with self._lock:
            backend, self._backend = self._backend, None
        assert backend is not None, "an opening is taken once"
        return backend

    def described(self) -> dict[str, CaDescription | BackendError]:
        """The CAs described so far (an error: what describing it answered), by ARN."""
        with self._lock:
            return dict(self._described)

    def discard(self) -> None:
        with self._lock:
            self._discarded = True
            self._wake.notify()
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
        from pca_batch.backends.local.backend import LocalBackend, ensure_authorities

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
