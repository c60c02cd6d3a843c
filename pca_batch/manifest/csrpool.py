"""Reading and checking many CSRs on the other cores while the manifest is being read.

Verifying a CSR's signature is the one expensive step of validation (public-key
arithmetic in OpenSSL, holding the GIL). For large manifests the main process
builds entries while worker processes read the CSR files, verify them and derive
the idempotency tokens that cover them; small manifests are checked inline,
where a worker would cost more than it saves.

While the main process is still parsing the YAML, the workers already read and
check the files that the manifest's ``Csr: file://...`` lines name (a prefetch:
a guess from the raw text, used only when the entry built later asks for that
same file, so it never changes an outcome).

The workers are plain processes on two pipes each, driven by the main thread
alone: no feeder or manager threads compete with it for the GIL, and a batch's
completion is seen as soon as it arrives. When the workers fall behind, the
main process checks a batch itself, so that the cores finish together.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import re
import signal
import sys
import threading
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import NamedTuple

from pca_batch.acmpca import CSR_MAX_BYTES
from pca_batch.pki.csr import CheckedCsr, InputError, Source, inspect_csr, read_limited, resolve
from pca_batch.plan import tokens

POOL_THRESHOLD = 500  # CSRs; below this a worker does not pay for its start-up
BATCH = 100
BACKLOG = 3  # batches queued per worker before this process checks one itself
PIPE_BYTES = 1 << 20  # room for a few batches of results, so a worker rarely waits to send
PREFETCH_MAX = 8192  # checked CSRs a worker holds for entries not built yet


class Job(NamedTuple):
    """One CSR to check, and (name, canonical request without the CSR) when its token is wanted."""

    source: Source
    name: str | None = None
    body: str | None = None


class Checked(NamedTuple):
    pem: str  # the text to send as Csr
    info: CheckedCsr
    token: str | None


Outcome = Checked | str  # ... or why the CSR is refused
_Wire = tuple[str, str, str | None] | str  # (PEM, key algorithm, token): what a worker sends back

# `Csr: file://PATH` on a line of its own, as large manifests write it (quoted or not)
_CSR_LINE = re.compile(rb"""^[ \t-]*Csr[ \t]*:[ \t]*["']?fileb?://([^"'\s$#]+)["']?[ \t]*(?:#.*)?\r?$""", re.M)


def _check(source: Source) -> tuple[str, str] | str:
    """Read (when given a path) and check one CSR as AWS Private CA would: (PEM, key algorithm) or why not."""
    try:
        data = read_limited(source, CSR_MAX_BYTES, "the CSR file") if isinstance(source, str) else source
        checked = inspect_csr(data)
    except InputError as exc:
        return str(exc)
    if len(checked.pem) > CSR_MAX_BYTES:
        return f"the CSR is larger than {CSR_MAX_BYTES} bytes"
    return checked.pem, checked.key_algorithm


def _finish(job: Job, checked: tuple[str, str] | str) -> _Wire:
    if isinstance(checked, str):
        return checked
    pem, algorithm = checked
    token = tokens.derive_parts(job.name, job.body, pem) if job.name is not None and job.body is not None else None
    return pem, algorithm, token


def _from_wire(item: _Wire) -> Outcome:
    if isinstance(item, str):
        return item
    pem, algorithm, token = item
    return Checked(pem, CheckedCsr(pem, algorithm), token)


def check_one(job: Job) -> Outcome:
    return _from_wire(_finish(job, _check(job.source)))


def prefetch_paths(manifest: bytes, root: str) -> list[str]:
    """The CSR files a manifest's text names on ``Csr: file://`` lines, in order (a guess; see above)."""
    seen: dict[str, None] = {}
    for m in _CSR_LINE.finditer(manifest):
        try:
            seen.setdefault(resolve(m.group(1).decode("utf-8"), root), None)
        except UnicodeDecodeError:
            continue
    return list(seen)


def serve(tasks: Connection, results: Connection, prefetch: tuple[bytes, str, int, int] | None) -> None:
    """A worker: check each batch it is sent, until told to stop or its pipe closes.

    With ``prefetch`` (the manifest's bytes, its folder, this worker's number, workers) it checks its
    share of the files the manifest names between batches, at most PREFETCH_MAX held
    at once, so that a batch naming them is answered at once.
    """
    # Ctrl-C is for the main process, which then closes the pipes: this worker ends on EOF
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ahead: dict[str, tuple[str, str] | str] = {}
    paths: list[str] = []
    if prefetch is not None:
        manifest, root, i, n = prefetch
        # worker i takes every n-th batch of the guessed files, as CsrChecker deals batches out
        paths = [p for k, p in enumerate(prefetch_paths(manifest, root)) if (k // BATCH) % n == i]
    queue = iter(paths)
    while True:
        try:
            if len(ahead) < PREFETCH_MAX and not tasks.poll():
                path = next(queue, None)
                if path is not None:
                    ahead.setdefault(path, _check(path))
                    continue
            batch: list[Job] | None = tasks.recv()
        except (EOFError, OSError):
            return
        if batch is None:
            return
        out = []
        for job in batch:
            checked = ahead.pop(job.source, None) if isinstance(job.source, str) else None
            out.append(_finish(job, checked if checked is not None else _check(job.source)))
        try:
            results.send(out)
        except OSError:  # the main process stopped listening
            return


def _workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(cores - 1, 6))  # leave one core to the main process


_Context = multiprocessing.context.ForkContext | multiprocessing.context.SpawnContext


def _context() -> _Context | None:
    """How to start workers: on Linux, fork while this process has one thread (ready at once,
    nothing imported again); else spawn (a fork would copy other threads' locks, and macOS's
    system libraries do not survive one), or not at all."""
    if sys.platform == "linux" and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    # spawned workers re-import the main module by its path: there must be one
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return multiprocessing.get_context("spawn") if path and os.path.isfile(str(path)) else None


def _widen(conn: Connection) -> None:
    try:
        fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (AttributeError, OSError):  # not Linux, or above the system's limit: the default will do
        pass


@dataclass
class _Worker:
    process: BaseProcess
    tasks: Connection
    results: Connection
    sent: list[tuple[int, list[Job]]] = field(default_factory=list)  # (first ticket, batch), oldest first
    alive: bool = True


class CsrChecker:
    """Queue CSRs with ``add`` (returns a ticket); ``results()`` gives each ticket's outcome.

    ``manifest`` and ``root`` (the manifest's bytes, as read, and its folder) let the
    workers check the files it names before they are asked for.
    """

    def __init__(self, expected: int, *, manifest: bytes | None = None, root: str | None = None) -> None:
        self._workers: list[_Worker] = []
        ctx = _context() if expected >= POOL_THRESHOLD else None
        if ctx is not None:
            n = _workers()
            for i in range(n):
                prefetch = (manifest, root, i, n) if manifest is not None and root else None
                try:
                    self._workers.append(self._start(ctx, prefetch))
                except OSError:  # no processes to spare: check here
                    break
        self._out: list[Outcome | None] = []
        self._batch: list[Job] = []
        self._first = 0  # ticket of self._batch[0]
        self._dealt = 0  # batches dealt out so far

    @staticmethod
    def _start(ctx: _Context, prefetch: tuple[bytes, str, int, int] | None) -> _Worker:
        task_r, task_w = ctx.Pipe(duplex=False)
        result_r, result_w = ctx.Pipe(duplex=False)
        _widen(task_w)
        _widen(result_r)
        process = ctx.Process(target=serve, args=(task_r, result_w, prefetch), daemon=True, name="pca-batch-csr")
        process.start()
        task_r.close()  # the worker holds these ends now; closing ours lets EOF tell of its death
        result_w.close()
        return _Worker(process, task_w, result_r)

    def add(self, source: Source, name: str | None = None, body: str | None = None) -> int:
        """Queue one CSR; with ``name`` and ``body`` its outcome carries the derived token."""
        ticket = len(self._out)
        self._out.append(None)
        job = Job(source, name, body)
        if not self._workers:
            self._out[ticket] = check_one(job)
            return ticket
        self._batch.append(job)
        if len(self._batch) >= BATCH:
            self._dispatch()
        return ticket

    def _dispatch(self) -> None:
        if not self._batch:
            return
        batch, first = self._batch, self._first
        self._batch, self._first = [], first + len(batch)
        self._collect()
        alive = [w for w in self._workers if w.alive]
        turn = self._workers[self._dealt % len(self._workers)]
        self._dealt += 1
        if not (turn.alive and len(turn.sent) < BACKLOG):  # its turn, unless it is behind: then the least busy
            turn = min(alive, key=lambda w: len(w.sent), default=turn)
        worker = turn if turn.alive else None
        if worker is not None and len(worker.sent) < BACKLOG:
            try:
                worker.tasks.send(batch)
                worker.sent.append((first, batch))
                return
            except OSError:  # it died: its batches are checked below
                self._lost(worker)
        self._check_here(first, batch)

    def _check_here(self, first: int, batch: list[Job]) -> None:
        self._out[first : first + len(batch)] = [check_one(job) for job in batch]

    def _receive(self, worker: _Worker) -> None:
        try:
            items: list[_Wire] = worker.results.recv()
        except (EOFError, OSError):
            self._lost(worker)
            return
        first, _batch = worker.sent.pop(0)
        self._out[first : first + len(items)] = [_from_wire(item) for item in items]

    def _collect(self) -> None:
        """Take in every batch that is done, without waiting."""
        for worker in self._workers:
            while worker.alive and worker.sent and worker.results.poll():
                self._receive(worker)

    def _lost(self, worker: _Worker) -> None:
        """A worker died: check what it held here."""
        worker.alive = False
        sent, worker.sent = worker.sent, []
        for first, batch in sent:
            self._check_here(first, batch)

    def results(self) -> list[Outcome]:
        try:
            self._dispatch()
            for worker in self._workers:
                while worker.alive and worker.sent:
                    self._receive(worker)
            return [o if o is not None else "the CSR was not checked" for o in self._out]
        finally:
            self.close()

    def close(self) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:
            if worker.sent:  # abandoned mid-way (an error elsewhere): no need to wait for it
                worker.process.kill()
            try:
                worker.tasks.send(None)
            except OSError:
                pass
            worker.tasks.close()
            worker.results.close()
        for worker in workers:
            worker.process.join(timeout=2)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
