"""The Dask backend's bookkeeping: a step's placement and its task; the sender (a thread that
sends a round's steps as one graph per placement); the tracker (on Dask's event loop: awaits
the tasks, gathers the finished outcomes a batch per round trip, releases settled futures in
batches); and the results thread, which judges the tasks that did not finish (errors,
cancellations, lost workers). The clock of the timeouts that count from a step's start is
``clock.Clock``.

Mutates only the futures of the steps it settles.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

import cloudpickle
import distributed

from .worker import Outcome, Task, machine_failure


class Placement:
    __slots__ = ("resources", "timeout", "hosts_wait")

    def __init__(
        self,
        resources: dict[str, float] | None,
        timeout: float | None,
        hosts_wait: float,
    ) -> None:
        self.resources = resources
        self.timeout = timeout
        self.hosts_wait = hosts_wait


class Entry:
    __slots__ = (
        "future", "task", "placement", "dask", "hosts", "workers", "announce", "cancelled", "sent",
        "began", "address", "flushed",
    )

    def __init__(self, future: Future[Outcome], task: Task, placement: Placement) -> None:
        self.future = future
        self.task = task
        self.placement = placement
        self.dask: distributed.Future[Any] | None = None
        self.hosts: tuple[str, ...] | None = None  # the step's hosts=, resolved into workers
        self.workers: list[str] | None = None
        self.announce = False
        self.cancelled = False
        self.sent = time.time()  # when it was submitted: its recorded start if nothing better
        self.began = 0.0  # when its worker began it (the worker's clock), if it announced it
        self.address: str | None = None  # ... and that worker's address
        self.flushed: threading.Event | None = None  # set when its last lines were replayed

    def settle(self, outcome: Outcome) -> None:
        if not self.future.done():
            try:
                self.future.set_result(outcome)
            except Exception:  # noqa: BLE001 - settled by another thread a moment ago
                pass


class Sender:
    """One thread that sends the steps submitted meanwhile to Dask, as one graph per placement.

    The scheduling core submits a round's steps one after another; sending them in one
    ``client.map`` costs the scheduler one graph update instead of one per step.
    """

    def __init__(self, backend: Any, client: distributed.Client, results: Results) -> None:
        self.backend = backend
        self.client = client
        self.results = results
        self.queue: queue.SimpleQueue[tuple[str, Entry] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self.run, name="sequent-dask-sender", daemon=True)
        self.thread.start()

    def put(self, key: str, entry: Entry) -> None:
        self.queue.put((key, entry))

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=5)

    def run(self) -> None:
        while self._round([self.queue.get()]):
            pass

    def _round(self, batch: list[tuple[str, Entry] | None]) -> bool:
        """Send ``batch`` and what queued meanwhile; False at the end. (A method of its own so
        nothing of the round stays referenced while the thread waits for the next one: when a
        task is released is the tracker's decision alone.)"""
        _take_queued(self.queue, batch)
        groups: dict[Any, list[tuple[str, Entry]]] = {}
        for item in batch:
            if item is None:
                return False
            entry = item[1]
            resources = entry.placement.resources
            shape = (
                tuple(entry.workers) if entry.workers else None,
                tuple(sorted(resources.items())) if resources else None,
                entry.announce,
            )
            groups.setdefault(shape, []).append(item)
        for group in groups.values():
            self._send(group)
        tracker = self.backend.tracker
        if tracker is not None:
            tracker.sent()
        return True

    def _send(self, group: list[tuple[str, Entry]]) -> None:
        from .dask_remote import run_step

        first = group[0][1]
        try:
            payloads = [cloudpickle.dumps(entry.task) for _, entry in group]
            futures = self.client.map(
                run_step,
                payloads,
                [first.announce] * len(group),
                key=[key for key, _ in group],
                workers=first.workers,
                allow_other_workers=False,
                resources=first.placement.resources,
                pure=False,
            )
        except Exception as exc:  # noqa: BLE001 - e.g. the connection is gone: the steps fail
            for _, entry in group:
                entry.settle(failure(f"ClusterError: the step could not be sent to Dask: {exc}"))
            return
        for (_, entry), task_future in zip(group, futures, strict=True):
            with self.backend._lock:
                entry.dask = task_future
                cancelled = entry.cancelled
            if cancelled:
                task_future.cancel()
        tracker = self.backend.tracker
        if tracker is not None:
            tracker.track(futures)
        else:
            for task_future in futures:
                task_future.add_done_callback(self.results.put)


class Tracker:
    """Waits for sequent's tasks on Dask's own event loop and fetches finished outcomes there.

    Each sent task is awaited on the loop (no thread hop per task, unlike a done callback);
    the finished ones are gathered in batches, one round trip per batch, while the others
    (errors, cancellations, lost workers) go to the results thread, which judges them one by
    one.

    Settled futures are released in batches: a release sent on its own just before the next
    step's graph holds that graph back by the client's batching interval (10 ms), once per
    step of a chain, and so does one sent just after it (the next graph then waits for the
    interval that follows). Where sequent's scheduler plugin runs (``protected``), a finished
    task is never computed again, so its future is held ``HOLD`` seconds (or until
    ``RELEASE_AT`` are held): a release costs the chain one interval a second. Without the
    plugin, holding a finished task's future lets the death of the worker that keeps its
    result make Dask compute it again (the step's body twice), so futures are held only until
    the next round is sent, or ``HOLD_UNPROTECTED`` seconds.
    """

    HOLD = 1.0  # seconds a settled task's future is held (the plugin runs)
    HOLD_UNPROTECTED = 0.05  # ...where it does not, at most, when nothing is sent meanwhile
    RELEASE_AT = 1000  # ...or as soon as this many are held
    BATCH = 256  # outcomes fetched per round trip at most
    GATHER_WAIT = 0.02  # seconds a gather waits for more outcomes, on a full cluster only

    def __init__(
        self, backend: Any, client: distributed.Client, results: Results, protected: bool = True
    ) -> None:
        self.backend = backend
        self.protected = protected
        self.hold = self.HOLD if protected else self.HOLD_UNPROTECTED
        self.client = client
        self.results = results
        self.loop: Any = client.loop
        self.finished: list[distributed.Future[Any]] = []
        self.gathering = False
        self.held: list[distributed.Future[Any]] = []
        self.release_timer: Any = None
        self.threads = 0  # the cluster's worker threads, once known (``count_threads``)

    @staticmethod
    def usable(client: distributed.Client) -> bool:
        """Whether this Dask has what the tracker awaits (else done callbacks are used)."""
        state = getattr(distributed.client, "FutureState", None)
        return hasattr(client, "_gather") and hasattr(state, "wait") and hasattr(client, "loop")

    def count_threads(self) -> None:
        try:
            self.threads = sum(self.client.nthreads().values())
        except Exception:  # noqa: BLE001 - then gathers never wait for company
            self.threads = 0

    def track(self, futures: list[distributed.Future[Any]]) -> None:
        """Watch ``futures`` (any thread)."""
        self.loop.add_callback(self._watch_all, list(futures))

    def _watch_all(self, futures: list[distributed.Future[Any]]) -> None:
        for task_future in futures:
            asyncio.ensure_future(self._watch(task_future))

    async def _watch(self, task_future: distributed.Future[Any]) -> None:
        try:
            while task_future.status == "pending":
                state = task_future._state
                if state is None:
                    break  # not bound to a client: the results thread judges it
                await state.wait()
        except BaseException:  # noqa: BLE001 - the results thread judges it
            self.results.put(task_future)
            return
        if task_future.status != "finished":
            self.results.put(task_future)
            return
        self.finished.append(task_future)
        if not self.gathering:
            self.gathering = True
            asyncio.ensure_future(self._drain())

    def _busy(self) -> bool:
        return bool(self.threads) and len(self.backend._running) > 2 * self.threads

    async def _drain(self) -> None:
        try:
            while self.finished:
                if self._busy() and len(self.finished) < self.BATCH:
                    await asyncio.sleep(self.GATHER_WAIT)  # a fan: more outcomes are coming
                batch, self.finished = self.finished[: self.BATCH], self.finished[self.BATCH :]
                try:
                    values = await self.client._gather(batch)
                except BaseException:  # noqa: BLE001 - each one is fetched (and judged) alone
                    for task_future in batch:
                        self.results.put(task_future)
                    continue
                for task_future, value in zip(batch, values, strict=False):
                    try:
                        self.backend.settle(
                            task_future, value if isinstance(value, Outcome) else None
                        )
                    except BaseException:  # noqa: BLE001 - never lose the loop's gatherer
                        self.results.put(task_future)
                self._hold(batch)
        finally:
            self.gathering = False

    def _hold(self, batch: list[distributed.Future[Any]]) -> None:
        self.held.extend(batch)
        if len(self.held) >= self.RELEASE_AT:
            self._release()
        elif self.release_timer is None:
            self.release_timer = self.loop.call_later(self.hold, self._release)

    def sent(self) -> None:
        """A round was just sent (any thread): without the plugin, release what is held now
        (after the round's graph)."""
        if not self.protected and self.held:
            self.loop.add_callback(self._release)

    def _release(self) -> None:
        if self.release_timer is not None:
            self.loop.remove_timeout(self.release_timer)
            self.release_timer = None
        self.held = []

    def stop(self) -> None:
        """Release what is held (any thread)."""
        try:
            self.loop.add_callback(self._release)
        except Exception:  # noqa: BLE001 - a closed loop holds nothing any more
            self.held = []


class Results:
    """One thread that fetches the outcomes of finished tasks, a batch per round trip."""

    def __init__(self, backend: Any, client: distributed.Client) -> None:
        self.backend = backend
        self.client = client
        self.queue: queue.SimpleQueue[distributed.Future[Any] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self.run, name="sequent-dask-results", daemon=True)
        self.thread.start()

    def put(self, done: distributed.Future[Any]) -> None:
        self.queue.put(done)

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=5)

    def run(self) -> None:
        while self._round([self.queue.get()]):
            pass

    def _round(self, batch: list[distributed.Future[Any] | None]) -> bool:
        """Judge ``batch`` and what queued meanwhile; False at the end (a method of its own,
        so no task stays referenced while the thread waits)."""
        _take_queued(self.queue, batch)
        if None in batch:
            return False
        self._fetch([done for done in batch if done is not None])
        return True

    def _fetch(self, batch: list[distributed.Future[Any]]) -> None:
        finished = [done for done in batch if done.status == "finished"]
        values: list[Any] = []
        if finished:
            try:
                values = self.client.gather(finished)
            except BaseException:  # noqa: BLE001 - each one is fetched (and judged) alone below
                values = [None] * len(finished)
        for done, value in zip(finished, values, strict=False):
            self.backend.settle(done, value if isinstance(value, Outcome) else None)
        for done in batch:
            if done.status != "finished":
                self.backend.settle(done, None)


def _take_queued(source: queue.SimpleQueue[Any], batch: list[Any]) -> None:
    """Mutates ``batch``: append what waits in ``source`` now, without blocking."""
    try:
        while True:
            batch.append(source.get_nowait())
    except queue.Empty:
        pass


def failure(error: str, started: float | None = None) -> Outcome:
    """A step the cluster failed (see ``worker.machine_failure``)."""
    return machine_failure(error, started=started)


def outcome_of(done: distributed.Future[Any], entry: Entry) -> Outcome:
    """The step's outcome, or a failure saying how Dask failed it (started when its worker
    began it, where it said so, else when it was submitted)."""
    task = entry.task
    where = f"step {task.context.name!r} (sequence {task.context.sequence})"
    try:
        outcome: Outcome = done.result(timeout=30)
        return outcome
    except distributed.client.FutureCancelledError as exc:
        reason = getattr(exc, "reason", "unknown")
        if reason == "scheduler-connection-lost":
            why = f"ClusterError: the connection to the Dask scheduler was lost while {where} ran"
            why += f" ({exc.msg})" if getattr(exc, "msg", None) else ""
        else:
            why = f"StepKilled: the Dask task of {where} was cancelled (reason: {reason})"
    except BaseException as exc:  # noqa: BLE001 - the machinery's failure is the step's
        if type(exc).__name__ == "KilledWorker":
            worker = getattr(exc, "last_worker", None)
            name = getattr(worker, "address", None) or "?"
            label = getattr(worker, "name", None)
            named = f" ({label})" if label is not None and str(label) != name else ""
            why = f"WorkerDied: worker {name}{named} died while running {where}"
        else:
            why = f"WorkerError: {where} failed on the Dask cluster: {type(exc).__name__}: {exc}"
    return failure(why, started=entry.began or entry.sent)
