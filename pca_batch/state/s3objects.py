"""The S3 objects of an s3 state: one client, and S3's answers as the state's own errors.

Every call goes through :meth:`Objects.call`, which turns what botocore raises (no
credentials, no such bucket, access denied, an endpoint that does not answer) into a
StateError naming the state; botocore retries what is worth retrying first.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from pca_batch.model import StateConfig
from pca_batch.state.base import StateError

T = TypeVar("T")


class Objects:
    """The bucket of an s3 state, as the state uses it (the client is made on first use)."""

    def __init__(self, config: StateConfig, display: str, *, profile: str | None = None) -> None:
        assert config.bucket is not None
        self.config = config
        self.bucket = config.bucket
        self.display = display
        self._profile = profile
        self._client: Any = None
        self._client_lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> Any:
        import boto3
        import botocore.config
        import botocore.exceptions

        try:
            session = boto3.session.Session(profile_name=self._profile)
            region = self.config.region or session.region_name or "us-east-1"
            config = botocore.config.Config(
                retries={"max_attempts": 8, "mode": "standard"}, connect_timeout=10, read_timeout=60,
                s3={"addressing_style": "path"} if self._custom_endpoint(session) else None,
            )
            return session.client("s3", region_name=region, endpoint_url=self.config.endpoint_url, config=config)
        except botocore.exceptions.BotoCoreError as exc:
            raise StateError(f"cannot reach the state {self.display}: {exc}") from None

    def _custom_endpoint(self, session: Any) -> bool:
        """An endpoint other than AWS's (moto, MinIO...): path-style addressing, which they all take."""
        if self.config.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"):
            return True
        try:
            return bool(session._session.get_scoped_config().get("endpoint_url")
                        or (session._session.get_scoped_config().get("s3") or {}).get("endpoint_url"))
        except Exception:  # noqa: BLE001 - a profile that does not read: boto3 will say so when called
            return False

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """One S3 call; its failures as StateError naming the state (botocore retried already)."""
        import botocore.exceptions

        try:
            return fn()
        except botocore.exceptions.NoCredentialsError:
            raise StateError(f"no AWS credentials to reach the state {self.display} (set AWS_ACCESS_KEY_ID and "
                             "AWS_SECRET_ACCESS_KEY, AWS_PROFILE or a role)") from None
        except botocore.exceptions.ClientError as exc:
            raise self._client_error(what, exc) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise StateError(f"cannot {what} the state {self.display}: {exc}") from None

    def _client_error(self, what: str, exc: Any) -> StateError:
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        if code == "NoSuchBucket":
            return StateError(f"the bucket {self.bucket} does not exist (state {self.display}); create it first")
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
            return StateError(f"access denied to the state {self.display} ({code}): the credentials in use may "
                              f"not {what} it")
        return StateError(f"cannot {what} the state {self.display}: {code} {message}".rstrip())

    @staticmethod
    def _code(exc: Any) -> str:
        return str(exc.response.get("Error", {}).get("Code", ""))

    def get(self, key: str) -> bytes | None:
        """An object's bytes; None when it does not exist."""
        import botocore.exceptions

        def get() -> bytes | None:
            try:
                body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                return body
            except botocore.exceptions.ClientError as exc:
                if self._code(exc) in ("NoSuchKey", "404"):
                    return None
                raise

        return self.call("read", get)

    def list(self, prefix: str) -> list[str]:
        def listing() -> list[str]:
            names: list[str] = []
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                names += [o["Key"] for o in page.get("Contents", ())]
            return sorted(names)

        return self.call("list", listing)

    def put_new(self, key: str, body: bytes) -> str | None:
        """Create an object that must not exist yet; its ETag, or None when it exists already (412)."""
        import botocore.exceptions

        def put() -> str | None:
            try:
                etag: str = self.client.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")["ETag"]
                return etag
            except botocore.exceptions.ClientError as exc:
                if self._code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                    return None
                raise

        return self.call("write", put)

    def put(self, key: str, body: bytes) -> None:
        self.call("write", lambda: self.client.put_object(Bucket=self.bucket, Key=key, Body=body))

    def delete(self, key: str, etag: str | None = None) -> bool:
        """Delete ``key`` (only if it still has ``etag``, when given); False when it had another."""
        import botocore.exceptions

        def delete() -> bool:
            try:
                if etag is None:
                    self.client.delete_object(Bucket=self.bucket, Key=key)
                else:
                    self.client.delete_object(Bucket=self.bucket, Key=key, IfMatch=etag)
                return True
            except botocore.exceptions.ClientError as exc:
                if self._code(exc) in ("PreconditionFailed", "412"):
                    return False
                if self._code(exc) in ("NoSuchKey", "404"):
                    return True
                raise

        return self.call("delete from", delete)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
