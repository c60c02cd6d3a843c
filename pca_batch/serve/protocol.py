"""acm-pca's wire protocol, JSON 1.1, as botocore speaks it.

A call is ``POST /`` with ``X-Amz-Target: ACMPrivateCA.<Operation>``, ``Content-Type:
application/x-amz-json-1.1`` and the input as a JSON object. The answer is HTTP 200 with the
output as a JSON object, or an error: an HTTP status and ``{"__type": CODE, "message": TEXT}``,
from which botocore raises the modelled exception class of that code (``client.exceptions.X``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pca_batch.errors import BackendError
from pca_batch.serve.shapes import TARGET_PREFIX, operation_names

CONTENT_TYPE = "application/x-amz-json-1.1"
# AWS's front end refuses a request body over its limit before the service sees it. The largest
# acm-pca request (ImportCertificateAuthorityCertificate: a 32 KB certificate and a 2 MB chain,
# base64) is under 2.9 MB.
MAX_BODY_BYTES = 3 * 1024 * 1024

# HTTP statuses of the errors that are not 400.
_STATUSES = {
    "AccessDeniedException": 400,
    "UnrecognizedClientException": 403,
    "InvalidSignatureException": 403,
    "MissingAuthenticationTokenException": 403,
    "IncompleteSignatureException": 403,
    "InternalFailure": 500,
    "ServiceUnavailable": 503,
    "RequestEntityTooLargeException": 413,
    "UnknownOperationException": 400,
}


class ServiceError(Exception):
    """An error answer: AWS's code, a message, and the HTTP status AWS gives it."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status if status is not None else _STATUSES.get(code, 400)

    @classmethod
    def from_backend(cls, error: BackendError) -> ServiceError:
        return cls(error.code, error.message)

    def body(self) -> bytes:
        return json.dumps({"__type": self.code, "message": self.message}).encode("utf-8")


@dataclass(frozen=True)
class Call:
    """One API call: the operation and its input (a JSON object), as sent."""

    operation: str
    params: dict[str, Any]


def parse_call(target: str | None, content_type: str | None, body: bytes) -> Call:
    """The call a POST carries; ServiceError as AWS answers a request it cannot read."""
    if not target or "." not in target:
        raise ServiceError("UnknownOperationException", "the request has no X-Amz-Target header")
    prefix, _, name = target.partition(".")
    if prefix != TARGET_PREFIX or name not in operation_names():
        raise ServiceError("UnknownOperationException", f"{target} is not an operation of this service")
    if content_type is not None and not content_type.split(";")[0].strip().startswith("application/x-amz-json"):
        raise ServiceError("SerializationException", f"Content-Type {content_type!r} is not {CONTENT_TYPE}")
    if not body.strip():
        return Call(name, {})
    try:
        params = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ServiceError("SerializationException", "the request body is not JSON") from None
    if not isinstance(params, dict):
        raise ServiceError("SerializationException", "the request body is not a JSON object")
    return Call(name, params)


def encode(answer: dict[str, Any]) -> bytes:
    return json.dumps(answer, separators=(",", ":")).encode("utf-8")
