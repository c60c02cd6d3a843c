"""A backend opened in the background while the manifest is read (backends.Opening)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from pca_batch.backends import Opening
from pca_batch.backends.base import CaDescription
from pca_batch.errors import BackendError, CredentialsError
from pca_batch.model import Entry, Outputs
from pca_batch.plan.preflight import preflight


def _entry(name: str, ca_arn: str) -> Entry:
    request = {"CertificateAuthorityArn": ca_arn, "SigningAlgorithm": "SHA256WITHRSA",
               "Validity": {"Value": 1, "Type": "DAYS"}}
    return Entry(name=name, index=0, line=1, request=request, token="t", csr=None, outputs=Outputs())


class Closable:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_take_gives_the_backend_or_raises_what_opening_raised() -> None:
    backend = Closable()
    assert Opening(lambda: backend).take() is backend  # type: ignore[arg-type,return-value]

    def fails() -> Any:
        raise CredentialsError("no AWS credentials")

    with pytest.raises(CredentialsError, match="no AWS credentials"):
        Opening(fails).take()


def test_discard_does_not_wait_for_a_slow_opening_and_closes_it_once_open() -> None:
    release = threading.Event()
    backend = Closable()

    def slow() -> Any:
        release.wait(10)  # a credential chain that takes its time
        return backend

    opening = Opening(slow)
    started = time.monotonic()
    opening.discard()
    assert time.monotonic() - started < 1 and not backend.closed
    release.set()
    opening._thread.join(5)
    assert backend.closed

    done = Closable()
    finished = Opening(lambda: done)  # type: ignore[arg-type,return-value]
    time.sleep(0.05)  # open by now, waiting to be taken
    finished.discard()
    finished._thread.join(5)
    assert done.closed and not finished._thread.is_alive()


class Describing(Closable):
    """Describes from a table, slowly, as a CA a round trip away; counts what it was asked."""

    def __init__(self, answers: dict[str, Any]) -> None:
        super().__init__()
        self.answers = answers
        self.asked: list[str] = []

    def describe_certificate_authority(self, ca_arn: str) -> CaDescription:
        self.asked.append(ca_arn)
        time.sleep(0.02)
        answer = self.answers[ca_arn]
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, CaDescription)
        return answer


def _ca(arn: str) -> CaDescription:
    return CaDescription(arn=arn, status="ACTIVE", key_algorithm="RSA_2048", usage_mode="GENERAL_PURPOSE",
                         not_after=None)


def test_foreseen_cas_are_described_once_in_the_background_before_take() -> None:
    missing = BackendError("ResourceNotFoundException", "no such CA", status=400)
    backend = Describing({"ca-1": _ca("ca-1"), "ca-2": missing, "ca-3": RuntimeError("a bug")})
    release = threading.Event()

    def slow() -> Any:
        release.wait(10)
        return backend

    opening = Opening(slow)
    opening.foresee("ca-1")  # told while the backend is still opening
    release.set()
    for arn in ("ca-1", "ca-2", "ca-3", "ca-2"):
        opening.foresee(arn)
    deadline = time.monotonic() + 5
    while len(backend.asked) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert opening.take() is backend
    assert backend.asked == ["ca-1", "ca-2", "ca-3"]  # each once, in the order told
    described = opening.described()
    assert described["ca-1"] == _ca("ca-1")
    assert described["ca-2"] is missing  # an AWS answer is kept for the preflight
    assert "ca-3" not in described  # anything else is not: the preflight asks again and reports it
    opening.foresee("ca-4")  # once taken, the preflight describes what is left itself
    time.sleep(0.05)
    assert backend.asked == ["ca-1", "ca-2", "ca-3"] and not backend.closed


def test_take_does_not_wait_for_cas_not_yet_described() -> None:
    backend = Describing({f"ca-{i}": _ca(f"ca-{i}") for i in range(50)})
    opening = Opening(lambda: backend)  # type: ignore[arg-type,return-value]
    for i in range(50):
        opening.foresee(f"ca-{i}")
    assert opening.take() is backend
    described = opening.described()
    assert len(backend.asked) < 50 and set(described) == set(backend.asked)  # the rest: the preflight's


def test_the_preflight_uses_what_was_described_and_describes_only_the_rest() -> None:
    backend = Describing({"ca-1": _ca("ca-1"), "ca-2": _ca("ca-2")})
    entries = [_entry("a", "ca-1"), _entry("b", "ca-2"), _entry("c", "ca-3")]
    missing = BackendError("ResourceNotFoundException", "no such CA ca-3", status=400)
    findings = preflight(entries, backend, described={"ca-1": _ca("ca-1"), "ca-3": missing})  # type: ignore[arg-type]
    assert backend.asked == ["ca-2"]
    assert set(findings) == {"c"} and findings["c"].code == "ResourceNotFoundException"
    assert "no such CA ca-3" in findings["c"].message
