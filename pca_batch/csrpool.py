"""Checking many CSRs on the other cores while the manifest is being read.

Verifying a CSR's signature is the one expensive step of validation (public-key
arithmetic in OpenSSL, holding the GIL). For large manifests the main process
reads files and builds entries while worker processes verify; small manifests
are checked inline, where a pool would cost more than it saves.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from pca_batch.csr import InputError, inspect_csr
from pca_batch.model import CsrInfo

POOL_THRESHOLD = 500  # entries; below this a pool does not pay for its start-up
BATCH = 200
BACKLOG = 3  # batches queued per worker before this process checks one itself


class _Done(Future):  # type: ignore[type-arg]
    """Stands for a batch this process checked itself."""

    def __init__(self) -> None:
        super().__init__()
        self.set_result([])


_DONE = _Done()

Outcome = CsrInfo | str  # what the CSR holds, or why it is refused


def check_batch(batch: list[bytes]) -> list[Outcome]:
    out: list[Outcome] = []
    for data in batch:
        try:
            out.append(inspect_csr(data)[1])
        except InputError as exc:
            out.append(str(exc))
    return out


def _workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(cores - 1, 6))  # leave one core to the main process


def _spawn_safe() -> bool:
    """Spawned workers re-import the main module by its path: there must be one."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return bool(path) and os.path.isfile(str(path))


class CsrChecker:
    """Queue CSRs with ``add`` (returns a ticket); ``results()`` gives each ticket's outcome."""

    def __init__(self, expected: int) -> None:
        workers = _workers() if expected >= POOL_THRESHOLD and _spawn_safe() else 0
        self._pool: ProcessPoolExecutor | None = None
        if workers:
            # spawn, not fork: the caller may have threads (a fork would copy their locks)
            self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        self._batch: list[bytes] = []
        self._futures: list[Future[list[Outcome]]] = []
        self._batches: list[list[bytes]] = []
        self._inline_done: dict[int, list[Outcome]] = {}  # batches this process checked itself
        self._waiting = 0  # index of the first batch not known to be done
        self._inline: list[Outcome] = []
        self._count = 0

    def add(self, data: bytes) -> int:
        ticket = self._count
        self._count += 1
        if self._pool is None:
            self._inline.extend(check_batch([data]))
            return ticket
        self._batch.append(data)
        if len(self._batch) >= BATCH:
            self._flush()
        return ticket

    def _flush(self) -> None:
        if self._batch and self._pool is not None:
            # Keep the workers a little work ahead, no more: when they fall behind, this
            # process checks the batch itself, so the cores finish together.
            while self._waiting < len(self._futures) and self._futures[self._waiting].done():
                self._waiting += 1
            if len(self._futures) - self._waiting >= BACKLOG:
                self._inline_done[len(self._futures)] = check_batch(self._batch)
                self._futures.append(_DONE)
            else:
                self._futures.append(self._pool.submit(check_batch, self._batch))
            self._batches.append(self._batch)
            self._batch = []

    def results(self) -> list[Outcome]:
        if self._pool is None:
            return self._inline
        try:
            self._flush()
            out: list[Outcome] = []
            # The main process is free now: it takes the batches no worker has started
            # (from the end, so the workers keep theirs), and waits only for the rest.
            done: dict[int, list[Outcome]] = dict(self._inline_done)
            for i in range(len(self._futures) - 1, -1, -1):
                if i not in done and self._futures[i].cancel():
                    done[i] = check_batch(self._batches[i])
            for i, (future, batch) in enumerate(zip(self._futures, self._batches, strict=True)):
                if i in done:
                    out.extend(done[i])
                    continue
                try:
                    out.extend(future.result())
                except (BrokenProcessPool, OSError):  # a worker died: check that batch here
                    out.extend(check_batch(batch))
            return out
        finally:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
