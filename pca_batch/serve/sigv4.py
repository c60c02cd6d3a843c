"""AWS Signature Version 4 on the server's side: check a request as AWS does, and read its region.

Given credentials (``--credentials ACCESS_KEY_ID:SECRET``), every request must carry an
``Authorization: AWS4-HMAC-SHA256 Credential=.../DATE/REGION/acm-pca/aws4_request,
SignedHeaders=..., Signature=...`` header whose signature this module recomputes (canonical
request, string to sign, the derived key) and compares in constant time. Refusals are AWS's,
all HTTP 403: MissingAuthenticationTokenException (no signature), IncompleteSignatureException
(a malformed one), UnrecognizedClientException (an unknown access key),
InvalidSignatureException (a signature that does not match, another service's scope, or a date
more than 15 minutes off). Without credentials nothing is checked; the region is still read.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from pca_batch.serve.protocol import ServiceError
from pca_batch.serve.shapes import SERVICE_NAME

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=15)
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)
_SPACES = re.compile(r"\s+")
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str = ""

    def __repr__(self) -> str:  # never show the secret
        return f"Credentials(access_key_id={self.access_key_id!r})"


def parse_credentials(text: str) -> Credentials:
    """``ACCESS_KEY_ID:SECRET``; ValueError when it is not that."""
    key, sep, secret = text.partition(":")
    if not sep or not re.fullmatch(r"[A-Za-z0-9]{1,128}", key) or not secret:
        raise ValueError("expected ACCESS_KEY_ID:SECRET_ACCESS_KEY (the key ID of letters and digits)")
    return Credentials(key, secret)


@dataclass(frozen=True)
class SignedRequest:
    """What a signature covers: the request line, the headers as received, the body."""

    method: str
    path: str  # with the query string, as on the request line
    headers: Sequence[tuple[str, str]]
    body: bytes

    @functools.cached_property
    def _by_name(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for k, v in self.headers:
            found.setdefault(k.lower(), v)
        return found

    def header(self, name: str) -> str | None:
        return self._by_name.get(name.lower())


@dataclass(frozen=True)
class Authorization:
    access_key_id: str
    date: str  # YYYYMMDD
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


def read_authorization(request: SignedRequest) -> Authorization | None:
    """The Authorization header's parts; None without one; IncompleteSignatureException if malformed."""
    value = request.header("Authorization")
    if value is None:
        return None
    m = _AUTH.match(value.strip())
    parts = m.group("credential").split("/") if m else []
    if m is None or len(parts) != 5 or parts[4] != "aws4_request":
        raise ServiceError(
            "IncompleteSignatureException",
            f"Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' ({ALGORITHM})",
        )
    signed = tuple(m.group("signed").split(";"))
    return Authorization(parts[0], parts[1], parts[2], parts[3], signed, m.group("signature"))


def _canonical_path(path: str) -> tuple[str, str]:
    """The canonical URI and query string as SigV4 makes them for services other than S3 (and as
    botocore's signer does): the path with dot segments and empty segments removed, URI-encoded
    once more; the query's pairs sorted as sent."""
    raw_path, _, query = path.partition("?")
    kept: list[str] = []
    for segment in raw_path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    normalized = "/" + "/".join(kept) + ("/" if kept and raw_path.endswith("/") else "")
    pairs = sorted(tuple(item.partition("=")[::2]) for item in query.split("&") if item)
    return quote(normalized, safe="/~"), "&".join(f"{k}={v}" for k, v in pairs)


def canonical_request(request: SignedRequest, signed_headers: Sequence[str]) -> str:
    values: dict[str, list[str]] = {}
    for name, value in request.headers:
        values.setdefault(name.lower(), []).append(_SPACES.sub(" ", value.strip()))
    headers = "".join(f"{name}:{','.join(values.get(name, []))}\n" for name in signed_headers)
    payload = request.header("X-Amz-Content-Sha256") or hashlib.sha256(request.body).hexdigest()
    path, query = _canonical_path(request.path)
    return "\n".join([request.method, path, query, headers, ";".join(signed_headers), payload])


def signature(secret: str, auth: Authorization, amz_date: str, canonical: str) -> str:
    to_sign = "\n".join([ALGORITHM, amz_date, auth.scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    key = ("AWS4" + secret).encode("utf-8")
    for part in (auth.date, auth.region, auth.service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def _check_date(amz_date: str | None, auth: Authorization, now: datetime) -> str:
    try:
        moment = datetime.strptime(amz_date or "", "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise ServiceError("IncompleteSignatureException", "the request has no valid X-Amz-Date header") from None
    assert amz_date is not None
    if not amz_date.startswith(auth.date):
        raise ServiceError(
            "InvalidSignatureException", f"Date in Credential scope does not match YYYYMMDD from {amz_date}"
        )
    stamp = "%Y%m%dT%H%M%SZ"
    if moment < now - MAX_SKEW:
        raise ServiceError(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than {(now - MAX_SKEW).strftime(stamp)} "
            f"({now.strftime(stamp)} - 15 min.)",
        )
    if moment > now + MAX_SKEW:
        raise ServiceError(
            "InvalidSignatureException",
            f"Signature not yet current: {amz_date} is still later than {(now + MAX_SKEW).strftime(stamp)} "
            f"({now.strftime(stamp)} + 15 min.)",
        )
    return amz_date


def verify(request: SignedRequest, known: Mapping[str, Credentials], now: datetime) -> Authorization:
    """The request's authorization, once its signature checks out with one of ``known`` (by key ID)."""
    auth = read_authorization(request)
    if auth is None:
        raise ServiceError("MissingAuthenticationTokenException", "Missing Authentication Token")
    credentials = known.get(auth.access_key_id)
    if credentials is None:
        raise ServiceError("UnrecognizedClientException", "The security token included in the request is invalid.")
    if auth.service != SERVICE_NAME:
        raise ServiceError(
            "InvalidSignatureException", f"Credential should be scoped to correct service: '{SERVICE_NAME}'."
        )
    if "host" not in auth.signed_headers:
        raise ServiceError("InvalidSignatureException", "'Host' must be a signed header.")
    amz_date = _check_date(request.header("X-Amz-Date"), auth, now)
    expected = signature(credentials.secret_access_key, auth, amz_date, canonical_request(request, auth.signed_headers))
    if not hmac.compare_digest(expected, auth.signature):
        raise ServiceError("InvalidSignatureException", MISMATCH)
    return auth
