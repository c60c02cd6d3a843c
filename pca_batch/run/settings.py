"""A run's settings and backend: command line > manifest ``settings:`` > defaults.

The defaults: concurrency 32 for the aws backend and 256 for the local one (whose
entries go in batches of up to half the concurrency), max_attempts 8, throttle_timeout
15 minutes, max_rate a ceiling of 200 a second for the aws backend, whose rate is learned
below it (pca_batch.run.ratelimit), and unlimited for the local one (0 lifts the ceiling,
never the adaptation).
"""

from __future__ import annotations

from pca_batch.backends import Backend, open_backend
from pca_batch.model import ApplyOptions, BackendConfig, RunSettings
from pca_batch.run.ratelimit import DEFAULT_AWS_RATE
from pca_batch.run.retry import DEFAULT_MAX_ATTEMPTS, DEFAULT_THROTTLE_TIMEOUT
from pca_batch.run.runner import DEFAULT_AWS_CONCURRENCY, DEFAULT_LOCAL_CONCURRENCY, RunConfig
from pca_batch.state import open_state

# A run's state (its journal, in a file or S3) comes from open_state(manifest, options), as its backend
# comes from open_for_run: every command that reads or records certificates gets it there.
__all__ = ["open_for_run", "open_state", "resolve_config"]


def resolve_config(backend: BackendConfig, settings: RunSettings, options: ApplyOptions) -> RunConfig:
    """Command line > manifest settings > defaults."""

    def pick(cli: float | None, file: float | None, default: float | None) -> float | None:
        return cli if cli is not None else file if file is not None else default

    rate_default = DEFAULT_AWS_RATE if backend.type == "aws" else None
    max_rate = pick(options.max_rate, settings.max_rate, rate_default)
    concurrency_default = DEFAULT_AWS_CONCURRENCY if backend.type == "aws" else DEFAULT_LOCAL_CONCURRENCY
    concurrency = pick(options.concurrency, settings.concurrency, concurrency_default)
    attempts = pick(options.max_attempts, settings.max_attempts, DEFAULT_MAX_ATTEMPTS)
    return RunConfig(
        concurrency=max(1, int(concurrency or 1)),
        max_attempts=max(1, int(attempts or 1)),
        max_rate=max_rate if max_rate else None,  # 0 lifts the ceiling
        adaptive=backend.type == "aws",
        throttle_timeout=float(pick(options.throttle_timeout, settings.throttle_timeout, DEFAULT_THROTTLE_TIMEOUT)
                               or 0.0),
        fail_fast=options.fail_fast,
    )


def open_for_run(config: BackendConfig, settings: RunSettings, options: ApplyOptions) -> Backend:
    """The run's backend: command-line values over the manifest's, a connection pool as large
    as the concurrency."""
    return open_backend(
        config, store=options.store, region=options.region, profile=options.profile,
        endpoint_url=options.endpoint_url,
        max_pool_connections=max(resolve_config(config, settings, options).concurrency, 10),
    )

