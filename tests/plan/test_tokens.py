from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from pca_batch.plan import tokens

REQ = {
    "CertificateAuthorityArn": "arn:aws:acm-pca:us-east-1:1:certificate-authority/x",
    "Csr": "PEM",
    "Validity": {"Value": 1, "Type": "DAYS"},
}
ALLOWED = re.compile(r"^[\t\n\r\x20-\xff]{1,36}$")


def test_stable_and_in_the_allowed_set() -> None:
    a = tokens.derive("web", REQ)
    assert a == tokens.derive("web", dict(reversed(list(REQ.items()))))
    assert a.startswith("pb1-") and len(a) == 36 and ALLOWED.match(a)


def test_any_change_gives_a_new_token() -> None:
    base = tokens.derive("web", REQ)
    assert tokens.derive("web2", REQ) != base
    assert tokens.derive("web", {**REQ, "Validity": {"Value": 2, "Type": "DAYS"}}) != base
    assert tokens.derive("web", REQ, salt="0a1b") != base


def test_explicit_token_wins() -> None:
    assert tokens.token_for("web", {**REQ, "IdempotencyToken": "mine"}) == "mine"
    assert tokens.token_for("web", REQ) == tokens.derive("web", REQ)


def test_known_value_does_not_drift() -> None:
    # A change here changes every token users have: it needs a new prefix (pb2-).
    assert tokens.derive("web", REQ) == "pb1-" + tokens.derive("web", REQ)[4:]
    assert tokens.derive("n", {"A": 1}) == "pb1-cskjhp5zfrivrvwxzixmgadpbobxqgc5"


@settings(max_examples=100)
@given(st.text(min_size=1, max_size=20), st.dictionaries(st.sampled_from(["A", "B", "C"]), st.integers()))
def test_always_valid_for_aws(name: str, request: dict[str, int]) -> None:
    assert ALLOWED.match(tokens.derive(name, request))


@settings(max_examples=300)
@given(name=st.text(min_size=1, max_size=20), csr=st.text(max_size=50), salt=st.text(max_size=10))
def test_the_encoding_is_rfc4648_base32_of_the_digest(name: str, csr: str, salt: str) -> None:
    import base64
    import hashlib

    request = {**REQ, "Csr": csr}
    digest = hashlib.sha256()
    for i, part in enumerate([name, tokens.canonical_without_csr(request), csr] + ([salt] if salt else [])):
        digest.update((b"\0" if i else b"") + part.encode("utf-8"))
    expected = "pb1-" + base64.b32encode(digest.digest()[:20]).decode("ascii").lower()
    assert tokens.derive(name, request, salt=salt) == expected
