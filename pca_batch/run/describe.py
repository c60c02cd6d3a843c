"""DescribeCertificateAuthority for the preflight, paced and retried like every other call.

The preflight describes each distinct CA once (some in the background while the
manifest is still read, see :class:`pca_batch.backends.Opening`). Those calls go
through the same rate control (:mod:`pca_batch.run.ratelimit`, its own limiter per
account and region) and the same retries (:mod:`pca_batch.run.retry`: throttling
spends no attempt, only ``--throttle-timeout``) as IssueCertificate, so a preflight
of many CAs, or of many shards at once, makes no call storm either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pca_batch.run.ratelimit import DESCRIBE, LearnedRate, RateLimits
from pca_batch.run.retry import Retrier, RetryPolicy

if TYPE_CHECKING:
    from pca_batch.backends.base import Backend, CaDescription
    from pca_batch.run.runner import RunConfig


class Describer:
    """Describes CAs for one run; thread-safe (the background opening and the preflight share it)."""

    def __init__(self, config: RunConfig) -> None:
        self._limits = RateLimits(config.max_rate, adaptive=config.adaptive)
        self._retrier = Retrier(RetryPolicy(max_attempts=max(1, config.max_attempts),
                                            throttle_timeout=max(0.0, config.throttle_timeout)))

    def describe(self, backend: Backend, ca_arn: str) -> CaDescription:
        return self._retrier.call(
            lambda: self._limits.call(ca_arn, DESCRIBE, lambda: backend.describe_certificate_authority(ca_arn))
        )

    def learned_rates(self) -> list[LearnedRate]:
        return self._limits.learned()
