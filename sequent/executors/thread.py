"""The thread backend: steps run in a pool of daemon threads of the orchestrating process.

The threads are daemons, unlike ``concurrent.futures.ThreadPoolExecutor``'s (which Python
joins at exit): a step abandoned by a timeout or an interruption never keeps the process from
ending. SIGINT then ends a thread run as SIGTERM does: the run is recorded, ``run()`` raises
``KeyboardInterrupt``, and the process exits without waiting for the abandoned steps.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from .base import WrappedExecutor
from .worker import Task, execute, machine_failure

_STOP = None


class DaemonThreadPool(Executor):
    """Mutates its queue and threads: runs calls in up to ``max_workers`` daemon threads.

    A thread starts when a call arrives and no thread is free for it (up to the limit);
    threads live until ``shutdown``.
    """

    def __init__(self, max_workers: int, name: str = "sequent-step") -> None:
        self.max_workers = max_workers
        self.name = name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._queued = 0  # calls put in the queue and not yet taken by a thread
        self._waiting = 0  # threads waiting for a call (or about to)
        self._cancelled: set[Any] = set()
        self._closed = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._put((future, fn, args, kwargs))
        return future

    def post(self, fn: Callable[[Any], Any], arg: Any, tag: Any, outbox: Any) -> None:
        """Run ``fn(arg)`` in a thread and ``outbox.put(("outcome", tag, result))``: one
        hand-off each way, no future. ``fn`` must not raise (``worker.execute`` does not)."""
        self._put((None, fn, arg, (tag, outbox)))

    def cancel(self, tag: Any) -> None:
        """A posted call with ``tag`` that has not started yet will not run."""
        self._cancelled.add(tag)

    def _put(self, item: tuple[Any, ...]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit to a thread pool that was shut down")
            self._queue.put(item)
            self._queued += 1
            if self._queued > self._waiting and len(self._threads) < self.max_workers:
                self._waiting += 1
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP and item[0] is not None:
                    item[0].cancel()
        for _ in threads:
            self._queue.put(_STOP)
        if wait:
            for thread in threads:
                thread.join()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            with self._lock:
                self._waiting -= 1
                self._queued -= 1
            future, fn, args, kwargs = item
            if future is None:  # posted: kwargs is (tag, outbox)
                tag, outbox = kwargs
                if tag in self._cancelled:
                    self._cancelled.discard(tag)
                else:
                    try:
                        result = fn(args)
                    except BaseException as exc:  # noqa: BLE001 - a step raising KeyboardInterrupt
                        result = machine_failure(exc)
                    outbox.put(("outcome", tag, result))
                    del result
                del tag, outbox
            elif future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:  # noqa: BLE001 - the caller reads it from the future
                    future.set_exception(exc)
            del item, future, fn, args, kwargs  # do not keep the last call's values alive
            with self._lock:
                self._waiting += 1


class ThreadExecutor(WrappedExecutor):
    """Steps run in daemon threads; a timed-out step is abandoned (a thread cannot be killed)."""

    name = "thread"

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()
        # Never fewer than 32 threads: a timed-out step keeps its thread until it returns.
        self.max_workers = max(max_workers or 0, 32, (os.cpu_count() or 1) + 4)

    def create(self) -> Executor:
        return DaemonThreadPool(self.max_workers)

    def post(self, task: Task, hosts: Any, tag: Any, outbox: Any) -> None:
        """Run ``execute(task)`` in a thread; its outcome goes to ``outbox`` as
        ``("outcome", tag, outcome)`` (the scheduling core's events queue)."""
        pool = self.executor
        assert isinstance(pool, DaemonThreadPool)
        pool.post(execute, task, tag, outbox)

    def cancel(self, tag: Any) -> None:
        """A posted step that has not started will not run (a running one cannot be stopped)."""
        if self._executor is not None:
            self._executor.cancel(tag)  # type: ignore[attr-defined]

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

ThreadBackend = ThreadExecutor  # the name before 0.2
