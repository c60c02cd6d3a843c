"""AWS Private CA through boto3: the production backend.

One boto3 session per backend (for its profile) and one client per region,
shared by every worker thread: a botocore client is thread-safe, a session is
not, so clients are only ever created while holding the backend's lock.
botocore's own retries are off (one attempt per call): the runner alone
retries, always with the entry's idempotency token, so retries never stack and
a timed-out IssueCertificate is repeated with the same token.

Every failure leaves this module as a domain error: an AWS answer or a broken
connection as :class:`BackendError` carrying the AWS code (``ReadTimeout`` and
``ConnectionError`` for the network), missing credentials as
:class:`CredentialsError`, a region nobody named as :class:`UsageError`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
    SSLError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from pca_batch import __version__
from pca_batch.acmpca import GENERAL_PURPOSE, RevocationReason, colon_serial, region_of
from pca_batch.backends.base import CaDescription, CertificateBundle
from pca_batch.errors import BackendError, CredentialsError, UsageError

SERVICE = "acm-pca"

NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
    "or name a profile (--profile, backend.profile or AWS_PROFILE), "
    "or run where an instance or container role is available"
)

def _credentials_error(exc: Exception) -> CredentialsError:
    if isinstance(exc, NoCredentialsError):
        return CredentialsError(NO_CREDENTIALS)
    return CredentialsError(f"cannot use the AWS credentials: {exc}")


def translate(exc: Exception) -> Exception:
    """The domain error for a botocore exception, or ``exc`` itself when it is a bug."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(error.get("Code") or (f"HTTP{status}" if status else "UnknownError"))
        message = str(error.get("Message") or exc)
        return BackendError(code, message, status=status if isinstance(status, int) else None)
    if isinstance(exc, ReadTimeoutError):
        return BackendError("ReadTimeout", str(exc))
    if isinstance(exc, ConnectTimeoutError):
        return BackendError("ConnectTimeout", str(exc))
    if isinstance(exc, SSLError):  # a certificate that does not verify: no retry mends it
        return BackendError("SSLError", str(exc))
    # EndpointConnectionError and friends (BotoConnectionError), a connection
    # closed before the answer (ConnectionClosedError, an HTTPClientError) or an
    # answer cut short: the network, not the request, so a retry may mend it.
    if isinstance(exc, BotoConnectionError | HTTPClientError | IncompleteReadError):
        return BackendError("ConnectionError", str(exc))
    if isinstance(
        exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError | ProfileNotFound
    ):
        return _credentials_error(exc)
    if isinstance(exc, NoRegionError):
        return UsageError("no AWS region: give --region or backend.region")
    if isinstance(exc, ParamValidationError):
        # botocore refused the request before sending it (a required member missing, a wrong type).
        return BackendError("ValidationException", str(exc))
    return exc


class AwsBackend:
    """AWS Private CA (IssueCertificate, GetCertificate, DescribeCertificateAuthority).

    ``region`` overrides the region read from each request's CA ARN;
    ``endpoint_url`` points every client at one endpoint (a VPC endpoint, or a
    test server). ``max_pool_connections`` should be at least the runner's
    concurrency, so that no worker waits for a connection.
    """

    name = "aws"

    def __init__(
        self,
        *,
        region: str | None = None,
        profile: str | None = None,
        endpoint_url: str | None = None,
        max_pool_connections: int = 32,
        connect_timeout: float = 5,
        read_timeout: float = 30,
    ) -> None:
        self.region = region
        self.profile = profile
        self.endpoint_url = endpoint_url
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str | None, str | None], BaseClient] = {}
        self._config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max(1, max_pool_connections),
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            user_agent_extra=f"pca-batch/{__version__}",
        )
        try:
            self._session = boto3.Session(profile_name=profile)
        except ProfileNotFound as exc:
            raise CredentialsError(f"unknown AWS profile {profile!r}: {exc}") from None

    # -- set-up ---------------------------------------------------------------

    def check_credentials(self) -> None:
        """Resolve credentials once, before any entry runs; CredentialsError when there are none.

        Makes no AWS call: it only walks the credential chain (a role's
        temporary credentials are fetched later, when first needed).
        """
        with self._lock:
            try:
                credentials = self._session.get_credentials()
            except (PartialCredentialsError, CredentialRetrievalError, ProfileNotFound) as exc:
                raise _credentials_error(exc) from None
        if credentials is None:
            raise CredentialsError(NO_CREDENTIALS)

    def prepare(self, ca_arns: Iterable[str]) -> None:
        """Create the clients these CAs need now, in the calling thread."""
        for arn in ca_arns:
            self._client_for(arn)

    def _region_for(self, ca_arn: str) -> str:
        region = self.region or region_of(ca_arn)
        if not region:
            with self._lock:  # the session's configured region (AWS_REGION, the profile's region)
                region = self._session.region_name
        if not region:
            raise UsageError(
                f"no AWS region for {ca_arn}: the ARN names none; give --region or backend.region"
            )
        return region

    def warm(self) -> None:
        """Build a client now (in the background, while the manifest is read): the first
        costs some 70 ms of model loading; later ones, for any region, a few."""
        with self._lock:
            region = self.region or self._session.region_name or "us-east-1"
        self._client_in(region)

    def _client_for(self, ca_arn: str) -> BaseClient:
        return self._client_in(self._region_for(ca_arn))

    def _client_in(self, region: str) -> BaseClient:
        key = (region, self.profile, self.endpoint_url)
        client = self._clients.get(key)
        if client is not None:
            return client
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._session.client(
                    SERVICE, region_name=region, endpoint_url=self.endpoint_url, config=self._config
                )
                self._clients[key] = client
            return client

    def _call(self, ca_arn: str, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        client = self._client_for(ca_arn)
        try:
            answer: dict[str, Any] = getattr(client, operation)(**params)
        except Exception as exc:
            translated = translate(exc)
            if translated is exc:
                raise
            raise translated from exc
        return answer

    # -- the Backend protocol -------------------------------------------------

    def issue_certificate(self, request: Mapping[str, Any]) -> str:
        params = dict(request)
        csr = params.get("Csr")
        if isinstance(csr, str):
            params["Csr"] = csr.encode("ascii")
        ca_arn = str(params.get("CertificateAuthorityArn", ""))
        answer = self._call(ca_arn, "issue_certificate", params)
        return str(answer["CertificateArn"])

    def get_certificate(self, ca_arn: str, certificate_arn: str) -> CertificateBundle:
        answer = self._call(
            ca_arn,
            "get_certificate",
            {"CertificateAuthorityArn": ca_arn, "CertificateArn": certificate_arn},
        )
        return CertificateBundle(
            certificate=str(answer["Certificate"]), chain=str(answer.get("CertificateChain") or "")
        )

    def describe_certificate_authority(self, ca_arn: str) -> CaDescription:
        answer = self._call(ca_arn, "describe_certificate_authority", {"CertificateAuthorityArn": ca_arn})
        ca = answer["CertificateAuthority"]
        configuration = ca.get("CertificateAuthorityConfiguration") or {}
        not_after = ca.get("NotAfter")
        return CaDescription(
            arn=str(ca.get("Arn") or ca_arn),
            status=str(ca.get("Status", "")),
            key_algorithm=str(configuration.get("KeyAlgorithm", "")),
            usage_mode=str(ca.get("UsageMode") or GENERAL_PURPOSE),
            not_after=not_after.astimezone(UTC) if isinstance(not_after, datetime) else None,
        )

    def get_certificate_authority_certificate(self, ca_arn: str) -> CertificateBundle:
        answer = self._call(ca_arn, "get_certificate_authority_certificate", {"CertificateAuthorityArn": ca_arn})
        return CertificateBundle(
            certificate=str(answer["Certificate"]), chain=str(answer.get("CertificateChain") or "")
        )

    def revoke_certificate(self, ca_arn: str, serial: str, reason: RevocationReason) -> None:
        """RevokeCertificate, the serial as the AWS CLI sends it (lowercase hex with colons).
        RequestAlreadyProcessedException means it is revoked already, as asked: done."""
        params = {
            "CertificateAuthorityArn": ca_arn,
            "CertificateSerial": colon_serial(serial),
            "RevocationReason": reason,
        }
        try:
            self._call(ca_arn, "revoke_certificate", params)
        except BackendError as exc:
            if exc.code != "RequestAlreadyProcessedException":
                raise

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
