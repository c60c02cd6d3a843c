"""Idempotency tokens derived from what an entry asks for.

The same manifest gives the same tokens on every run and machine, any change to
an entry's request gives a new token, and an explicit IdempotencyToken wins.
AWS keeps a token for five minutes: a retry, or a re-run after a crash within
that window, gets the certificate already issued instead of a second one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pca_batch.pki.keys import KeySpec

PREFIX = "pb1-"  # the derivation's version: a new scheme gets a new prefix


def canonical(request: Mapping[str, Any]) -> str:
    """A stable serialisation of a request (sorted keys, no token)."""
    body = {k: v for k, v in request.items() if k != "IdempotencyToken"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def derive(name: str, request: Mapping[str, Any], *, salt: str = "") -> str:
    """``pb1-`` and 32 base32 characters (160 bits) of SHA-256 over name, request and salt.

    The request is hashed as its canonical form without the CSR, then the CSR text.
    ``salt`` lets a renewal draw a token that differs from the one that issued the
    certificate it replaces (for example that certificate's serial).
    """
    csr = request.get("Csr")
    csr_text = csr if isinstance(csr, str) else json.dumps(csr)
    return derive_parts(name, canonical_without_csr(request), csr_text, salt)


def derive_parts(name: str, body: str, csr: str, salt: str = "") -> str:
    """:func:`derive` from its parts: the canonical request without the CSR, and the CSR's text."""
    digest = hashlib.sha256()
    digest.update(name.encode("utf-8"))
    digest.update(b"\0")
    digest.update(body.encode("ascii"))
    digest.update(b"\0")
    digest.update(csr.encode("utf-8"))
    if salt:
        digest.update(b"\0")
        digest.update(salt.encode("utf-8"))
    # 20 bytes make exactly 32 base32 characters (160 bits), no padding: 16 groups of 10 bits
    n = int.from_bytes(digest.digest()[:20], "big")
    return PREFIX + "".join([_PAIRS[(n >> shift) & 1023] for shift in _SHIFTS])


_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 base32, lower case
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # 10 bits -> two characters
_SHIFTS = range(150, -1, -10)


def canonical_without_csr(request: Mapping[str, Any]) -> str:
    return canonical({k: v for k, v in request.items() if k != "Csr"})


def key_request(request: Mapping[str, Any], spec: KeySpec, public_key: str = "") -> dict[str, Any]:
    """What the idempotency token of a key entry covers: the request without its CSR
    (made from each new key), the key block, and the public key once it is known."""
    body = {k: v for k, v in request.items() if k != "Csr"}
    body["Key"] = spec.canonical()
    if public_key:
        body["PublicKey"] = public_key
    return body


def token_for(name: str, request: Mapping[str, Any], *, salt: str = "") -> str:
    explicit = request.get("IdempotencyToken")
    if isinstance(explicit, str) and explicit:
        return explicit
    return derive(name, request, salt=salt)
