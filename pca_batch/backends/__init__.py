"""Backends: the embedded local CA (default) and AWS Private CA (boto3)."""

from __future__ import annotations

from pathlib import Path

from pca_batch.backends.base import Backend, CaDescription, CertificateBundle
from pca_batch.errors import UsageError
from pca_batch.model import BackendConfig

__all__ = ["Backend", "CaDescription", "CertificateBundle", "open_backend"]


def warm_up(config: BackendConfig) -> None:
    """Start importing the AWS SDK and loading acm-pca's model in the background (a few
    hundred milliseconds of start-up) while the manifest's entries are still being read."""
    if config.type == "aws":
        import threading

        threading.Thread(target=_warm_aws, args=(config.profile,), name="pca-batch-warm-up", daemon=True).start()


def _warm_aws(profile: str | None) -> None:
    try:
        from pca_batch.backends.aws import warm  # imports boto3 and botocore
    except Exception:  # noqa: BLE001 - a failure shows again, with its message, when the backend opens
        return
    warm(profile)


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
