"""Signing certificates in worker processes, so that a run of the local CA uses every core.

Building and signing a certificate (reading the CSR, the template's extensions,
the CA key's signature) holds the GIL; one process signs on one core however
many threads it runs. A :class:`Signers` pool starts worker processes that each
read the CA keys from the store themselves, exactly as the main process does
(the key file stays 0600 and is decrypted with ``PCA_BATCH_STORE_PASSPHRASE``
when set): no key ever crosses a pipe. The main process sends batches of
:class:`SignJob` (the request, the CA's row, the times, the serial) and gets
PEM text back; it alone writes the store.

The workers are plain processes on two pipes each (no feeder or manager
threads), started by fork while the process has one thread (else by spawn).
They ignore SIGINT and SIGTERM (the main process decides how a run stops) and
die with the main process (PR_SET_PDEATHSIG), so a SIGKILL leaves none behind.
A worker that dies or fails unexpectedly is not trusted again: its batch is
signed in the main process, which reports a bug as a bug.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import queue
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from pca_batch.backends.local.authorities import Authority, authority_of, pem
from pca_batch.backends.local.issuance import certificate_contents
from pca_batch.backends.local.store import AuthorityRow
from pca_batch.backends.local.templates import resolve_template
from pca_batch.backends.local.x509 import SIGNING_ALGORITHMS, ToBeSigned, parse_csr
from pca_batch.errors import BackendError

BATCH_MIN = 8  # jobs; a smaller batch is signed where it is, a pipe round trip would cost more
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class SignJob:
    """One certificate to build and sign: everything but the CA key, as plain values."""

    request: Mapping[str, Any]  # the IssueCertificate request (Csr, TemplateArn, ApiPassthrough, ...)
    authority: AuthorityRow  # the CA as the main process knows it (a worker reloads when it differs)
    not_before: datetime
    not_after: datetime
    algorithm: str  # a SigningAlgorithm name, checked already against the CA's key
    serial: int


# What a worker answers for a job: PEM text, (code, message) of a BackendError, or None:
# something unexpected happened, the main process signs that job itself.
Signed = str | tuple[str, str] | None


def build(authority: Authority, job: SignJob) -> str:
    """The PEM certificate of ``job``, signed by ``authority``; BackendError when the request
    cannot be issued (a malformed CSR, a template's rule)."""
    request = job.request
    template = resolve_template(request.get("TemplateArn"))
    csr, public_key = parse_csr(request["Csr"])
    subject, extensions = certificate_contents(request, template, authority, csr, public_key)
    signer = ToBeSigned(
        subject=subject,
        issuer=authority.certificate.subject,
        public_key=public_key,
        not_before=job.not_before,
        not_after=job.not_after,
        extensions=extensions,
        signing_key=authority.key,
        algorithm=SIGNING_ALGORITHMS[job.algorithm],
    )
    return pem(signer.sign(job.serial))


class _Keys:
    """A worker's CAs: each as the main process's row says (its certificate, its key file), the
    key read from the store on first use, as the main process reads it."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._loaded: dict[tuple[str, str, str], Authority] = {}

    def get(self, row: AuthorityRow) -> Authority:
        which = (row.arn, row.key_file, row.certificate_pem)
        found = self._loaded.get(which)
        if found is None:
            found = self._loaded[which] = authority_of(self._folder, row, chain_pem="")
        elif found.row != row:  # the same key and certificate; the rest (CRLs, usage) as now said
            found = replace(found, row=row)
        return found


def _sign_one(keys: _Keys, job: SignJob) -> Signed:
    try:
        return build(keys.get(job.authority), job)
    except BackendError as exc:
        return exc.code, exc.message
    except Exception:  # noqa: BLE001 - not ours to judge: the main process signs it again and sees
        return None


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def serve(tasks: Connection, results: Connection, folder: str, parent: int) -> None:
    """A worker's loop: batches of jobs in, their answers out, until None or the pipe's end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()
    if os.getppid() != parent:  # the main process died before the line above took effect
        return
    keys = _Keys(Path(folder))
    while True:
        try:
            batch: list[SignJob] | None = tasks.recv()
        except (EOFError, OSError):
            return
        if batch is None:
            return
        results.send([_sign_one(keys, job) for job in batch])


@dataclass
class _Worker:
    process: BaseProcess
    tasks: Connection
    results: Connection


def _context() -> multiprocessing.context.BaseContext | None:
    """Fork while this process has one thread (ready at once, nothing imported again); else spawn
    (a fork would copy other threads' locks), where the main module can be found again."""
    if sys.platform == "linux" and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return multiprocessing.get_context("spawn") if path and os.path.isfile(str(path)) else None


def worker_count() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class Signers:
    """A pool of signing processes, shared by many threads: each batch goes to an idle worker."""

    def __init__(self, store_folder: Path, workers: int) -> None:
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        ctx = _context()
        if ctx is None:
            return
        for _ in range(workers):
            try:
                worker = self._start(ctx, str(store_folder.absolute()))
            except OSError:  # no processes to spare: sign in this one
                break
            self._all.append(worker)
            self._idle.put(worker)

    @staticmethod
    def _start(ctx: multiprocessing.context.BaseContext, folder: str) -> _Worker:
        task_r, task_w = ctx.Pipe(duplex=False)  # type: ignore[attr-defined]
        result_r, result_w = ctx.Pipe(duplex=False)  # type: ignore[attr-defined]
        process = ctx.Process(  # type: ignore[attr-defined]
            target=serve, args=(task_r, result_w, folder, os.getpid()), daemon=True, name="pca-batch-signer"
        )
        process.start()
        task_r.close()  # the worker holds these ends now
        result_w.close()
        return _Worker(process, task_w, result_r)

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._all)

    def sign(self, jobs: Sequence[SignJob]) -> list[Signed]:
        """The answers for ``jobs``, from an idle worker (waiting for one); [None, ...] when there
        is no worker left (the caller then signs them itself)."""
        worker = self._take() if jobs else None
        if worker is None:
            return [None] * len(jobs)
        try:
            worker.tasks.send(list(jobs))
            answers: list[Signed] = worker.results.recv()
        except (EOFError, OSError):
            self._drop(worker)
            return [None] * len(jobs)
        self._idle.put(worker)
        return answers

    def _take(self) -> _Worker | None:
        while self.running:
            try:
                worker = self._idle.get(timeout=0.05)
            except queue.Empty:
                continue
            with self._lock:
                if worker in self._all:
                    return worker
        return None

    def _drop(self, worker: _Worker) -> None:
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
        worker.process.kill()
        for end in (worker.tasks, worker.results):
            with contextlib.suppress(OSError):
                end.close()

    def close(self) -> None:
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            with contextlib.suppress(OSError):
                worker.tasks.send(None)
            for end in (worker.tasks, worker.results):
                with contextlib.suppress(OSError):
                    end.close()
        for worker in workers:
            worker.process.join(timeout=2)
            if worker.process.is_alive():
                worker.process.kill()
