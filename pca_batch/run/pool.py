"""The worker threads of one run, entries handed over a few at a time so that a stop is prompt."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from pca_batch.model import Entry, Result


class Pool:
    """The worker threads of one run: entries handed over a few ahead, results taken as they end."""

    def __init__(self, work: Callable[[list[Entry]], list[Result]], todo: list[Entry], slots: int,
                 chunk: int = 1) -> None:
        # A few threads more than call slots, so that writing files never holds a slot; with
        # batches (the local CA), as many more as slots: a batch's files may wait on a busy disk
        # while the next batches are issued. ``work`` takes ``chunk`` entries at a time (fewer at the end).
        self.chunk = max(1, chunk)
        writers = slots if self.chunk > 1 else max(1, slots // 4)
        workers = min(-(-len(todo) // self.chunk), slots + writers)
        self.window = 2 * workers  # entries handed to the pool ahead of time: few, so stopping is prompt
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pca-batch")
        self.todo = todo
        self.work = work
        self.futures: dict[Future[list[Result]], int] = {}  # handed over, not collected yet -> first entry's index
        self.finished: queue.SimpleQueue[Future[list[Result]]] = queue.SimpleQueue()  # O(1) a result, unlike wait()
        self.submitted = 0
        self.deadline: float | None = None  # once interrupted: when to stop waiting for calls in flight

    def fill(self, stop: threading.Event) -> None:
        while self.submitted < len(self.todo) and len(self.futures) < self.window and not stop.is_set():
            chunk = self.todo[self.submitted : self.submitted + self.chunk]
            future = self.executor.submit(self.work, chunk)
            self.futures[future] = self.submitted
            future.add_done_callback(self.finished.put)
            self.submitted += len(chunk)

    def ended(self, timeout: float) -> list[Future[list[Result]]]:
        """What ended within ``timeout`` seconds: at least one, if any did, and all that did meanwhile."""
        try:
            done = [self.finished.get(timeout=timeout)]
        except queue.Empty:
            return []
        while not self.finished.empty():
            done.append(self.finished.get_nowait())
        return done

    def take(self, future: Future[list[Result]]) -> list[tuple[int, Result]]:
        """Ended entries' indexes and results; none when they were cancelled while shutting down."""
        index = self.futures.get(future)
        if index is None:
            return []
        results = future.result()  # a bug in a worker ends the run here
        del self.futures[future]
        return list(enumerate(results, start=index))

    def shut_down(self, *, wait: bool) -> tuple[dict[int, Result], bool]:
        """Stop the pool; the results of entries that ended meanwhile, and whether calls are left running."""
        self.executor.shutdown(wait=wait, cancel_futures=True)
        left_running = any(not f.done() for f in self.futures)
        ended = {
            index + offset: result
            for future, index in self.futures.items()
            if future.done() and not future.cancelled() and future.exception() is None
            for offset, result in enumerate(future.result())
        }
        return ended, left_running
