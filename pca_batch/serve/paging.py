"""NextToken and MaxResults of the List operations: an opaque token holding where the next page starts."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any, TypeVar

from pca_batch.serve.protocol import ServiceError

T = TypeVar("T")
PAGE_MAX = 100  # ListCertificateAuthorities returns at most 100 items a page, whatever MaxResults says


def page(items: Sequence[T], params: dict[str, Any], *, limit: int = PAGE_MAX) -> tuple[list[T], str | None]:
    """One page of ``items`` (MaxResults, NextToken) and the NextToken of the next, if any."""
    start = 0
    token = params.get("NextToken")
    if token is not None:
        try:
            start = int(json.loads(base64.urlsafe_b64decode(token.encode("ascii")))["offset"])
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeEncodeError):
            raise ServiceError("InvalidNextTokenException", "The token is not valid.") from None
        if not 0 <= start <= len(items):
            raise ServiceError("InvalidNextTokenException", "The token is not valid.")
    size = min(int(params.get("MaxResults") or limit), limit)
    end = start + size
    following = None
    if end < len(items):
        following = base64.urlsafe_b64encode(json.dumps({"offset": end}).encode()).decode("ascii")
    return list(items[start:end]), following
