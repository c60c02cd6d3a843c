"""The worker threads of one run, entries handed over a few at a time so that a stop is prompt."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from pca_batch.model import Entry, Result


class Pool:
    """The worker threads of one run: entries handed over a few ahead, results taken as they end."""

    def __init__(self, work: Callable[[Entry], Result], todo: list[Entry], slots: int) -> None:
        # A few threads more than call slots, so that writing files never holds a slot.
        workers = min(len(todo), slots + max(1, slots // 4))
        self.window = 2 * workers  # entries handed to the pool ahead of time: few, so stopping is prompt
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pca-batch")
        self.todo = todo
        self.work = work
        self.futures: dict[Future[Result], int] = {}  # handed over, not collected yet -> entry index
        self.finished: queue.SimpleQueue[Future[Result]] = queue.SimpleQueue()  # O(1) a result, unlike wait()
        self.submitted = 0
        self.deadline: float | None = None  # once interrupted: when to stop waiting for calls in flight

    def fill(self, stop: threading.Event) -> None:
        while self.submitted < len(self.todo) and len(self.futures) < self.window and not stop.is_set():
            future = self.executor.submit(self.work, self.todo[self.submitted])
            self.futures[future] = self.submitted
            future.add_done_callback(self.finished.put)
            self.submitted += 1

    def ended(self, timeout: float) -> list[Future[Result]]:
        """What ended within ``timeout`` seconds: at least one, if any did, and all that did meanwhile."""
        try:
            done = [self.finished.get(timeout=timeout)]
        except queue.Empty:
            return []
        while not self.finished.empty():
            done.append(self.finished.get_nowait())
        return done

    def take(self, future: Future[Result]) -> tuple[int, Result] | None:
        """An ended entry's index and result; None when it was cancelled while shutting down."""
        index = self.futures.get(future)
        if index is None:
            return None
        result = future.result()  # a bug in a worker ends the run here
        del self.futures[future]
        return index, result

    def shut_down(self, *, wait: bool) -> tuple[dict[int, Result], bool]:
        """Stop the pool; the results of entries that ended meanwhile, and whether calls are left running."""
        self.executor.shutdown(wait=wait, cancel_futures=True)
        left_running = any(not f.done() for f in self.futures)
        ended = {
            index: future.result()
            for future, index in self.futures.items()
            if future.done() and not future.cancelled() and future.exception() is None
        }
        return ended, left_running
