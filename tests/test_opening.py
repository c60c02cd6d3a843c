"""A backend opened in the background while the manifest is read (backends.Opening)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from pca_batch.backends import Opening
from pca_batch.errors import CredentialsError


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
    finished._thread.join(5)
    finished.discard()
    assert done.closed
