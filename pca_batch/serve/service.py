"""The service behind the wire: one store, its local backend, the buckets; one call at a time per thread.

:meth:`Service.call` takes an operation's checked input (see :mod:`.validation`) and returns its
answer in the output shape's JSON; every failure leaves it as a :class:`ServiceError` carrying
AWS's code. Each request's region is the one its signature is scoped to (the server's own when
unsigned): new CAs are made there, and a CA of another region is not found, as AWS's regional
endpoints answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pca_batch.acmpca import region_of
from pca_batch.backends.local.authorities import check_ca_arn
from pca_batch.backends.local.backend import LocalBackend
from pca_batch.backends.local.lifecycle import known, purge
from pca_batch.backends.local.store import AuthorityRow, Store
from pca_batch.errors import BackendError
from pca_batch.serve.buckets import Buckets, crl_configuration
from pca_batch.serve.operations import HANDLERS
from pca_batch.serve.protocol import ServiceError
from pca_batch.serve.shapes import answer


@dataclass(frozen=True)
class Settings:
    store: Path
    s3_dir: Path
    region: str
    account: str
    endpoint: str  # the server's own URL, for the CRL Distribution Points of new CAs


@dataclass(frozen=True)
class Context:
    """Where a call comes from: the region its signature names."""

    region: str
    request_id: str = ""


class Service:
    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self._clock = clock or (lambda: datetime.now(UTC))
        self.store = Store(settings.store)
        try:
            self.backend = LocalBackend(settings.store, clock=self._clock)
        except BaseException:
            self.store.close()
            raise
        self.buckets = Buckets(settings.s3_dir)
        purge(self.store, self.now())

    def now(self) -> datetime:
        return self._clock().astimezone(UTC)

    def call(self, operation: str, params: dict[str, Any], context: Context) -> dict[str, Any]:
        try:
            result = HANDLERS[operation](self, params, context)
        except BackendError as exc:
            raise ServiceError.from_backend(exc) from None
        return answer(operation, result)

    def close(self) -> None:
        self.backend.close()
        self.store.close()

    # -- what the operations share ----------------------------------------------------------

    def check_region(self, arn: str, context: Context) -> str:
        """``arn``, when its region is the call's; ResourceNotFoundException for another region's CA."""
        region = region_of(arn)
        if region is not None and region != context.region:
            raise ServiceError(
                "ResourceNotFoundException", f"certificate authority {arn} is in {region}, not in {context.region}"
            )
        return arn

    def authority(self, arn: str, context: Context) -> AuthorityRow:
        """The CA of that ARN in the call's region; ResourceNotFoundException when there is none."""
        return known(self.store, self.check_region(check_ca_arn(arn), context), self.now())

    def changed(self, arn: str) -> None:
        """The CA changed (certificate, status, revocation configuration): drop what is cached of it."""
        self.backend.forget(arn)
        self.buckets.forget(arn)

    def publish_crl(self, arn: str) -> None:
        """Make the CA's CRL anew if it has CRLs and can sign (ACTIVE with a certificate)."""
        row = self.store.authority(arn)
        if row is not None and row.has_certificate and row.status == "ACTIVE" and crl_configuration(row):
            self.buckets.crl(self.store, row, self.now())

    def new_ca_arn(self, context: Context) -> str:
        return f"arn:aws:acm-pca:{context.region}:{self.settings.account}:certificate-authority/{uuid.uuid4()}"
