"""The Dask backend's bookkeeping: a step's placement and its task, and the two threads that
settle tasks (the results thread, a batch of outcomes per round trip; the sender, a graph per
round). The clock of the timeouts that count from a step's start is ``clock.Clock``.

Mutates only the futures of the steps it settles.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

import cloudpickle
import distributed

from .worker import Outcome, Task, machine_failure


class Placement:
    __slots__ = ("workers", "resources", "timeout", "hosts_wait")

    def __init__(
        self,
        workers: list[str] | None,
        resources: dict[str, float] | None,
        timeout: float | None,
        hosts_wait: float,
    ) -> None:
        self.workers = workers
        self.resources = resources
        self.timeout = timeout
        self.hosts_wait = hosts_wait


class Entry:
    __slots__ = (
        "future", "task", "placement", "dask", "workers", "announce", "cancelled", "sent", "began"
    )

    def __init__(self, future: Future[Outcome], task: Task, placement: Placement) -> None:
        self.future = future
        self.task = task
        self.placement = placement
        self.dask: distributed.Future[Any] | None = None
        self.workers: list[str] | None = None
        self.announce = False
        self.cancelled = False
        self.sent = time.time()  # when it was submitted: its recorded start if nothing better
        self.began = 0.0  # when its worker began it (the worker's clock), if it announced it

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
        while True:
            batch = [self.queue.get()]
            try:
                while True:
                    batch.append(self.queue.get_nowait())
            except queue.Empty:
                pass
            groups: dict[Any, list[tuple[str, Entry]]] = {}
            for item in batch:
                if item is None:
                    return
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
            task_future.add_done_callback(self.results.put)


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
        while True:
            first = self.queue.get()
            batch = [first]
            try:
                while True:
                    batch.append(self.queue.get_nowait())
            except queue.Empty:
                pass
            if None in batch:
                return
            self._fetch([done for done in batch if done is not None])

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
