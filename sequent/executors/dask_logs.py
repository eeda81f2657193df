"""Step logs sent from Dask workers to the orchestrator in batches while the steps run.

    worker process                                         orchestrator (the Dask client)
    ──────────────                                         ─────────────────────────────
    run_step: execute(task, sink=OUTBOX.open(key, worker))
      each record ──> OUTBOX, per step, in memory
    flusher thread, FLUSH_EVERY s after a record: ── log_event(TOPIC, batch) ──> replayed
    the step's end: OUTBOX.close(key) ──> the rest travels inside its outcome
    a timeout: client.run(flush_step, key) ── the rest, marked last ──> replayed, then
                                                                         the failure is recorded

A batch goes to the worker's event loop under the outbox's lock, so it is queued before the
outcome of its step, and both travel the same ordered streams (worker to scheduler, scheduler
to client, whose handler runs before the next message): no line is written twice and a step's
lines keep their order. The flusher thread starts with the first record a process logs, and
wakes only when a step logged something, so steps that log nothing send nothing. A worker that
dies loses what its steps logged since the last batch (at most ``FLUSH_EVERY`` seconds).

Mutates the ``OUTBOX`` of the worker process it runs in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

TOPIC = "sequent-logs"
FLUSH_EVERY = 0.25  # seconds between a step's first unsent record and the batch that sends it


class Outbox:
    """Mutates its buffers: the unsent records of the steps running in this worker process."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.sending = False  # a batch is being handed over (by the thread holding the lock)
        self.steps: dict[str, list[dict[str, Any]]] = {}  # task key -> records not sent yet
        self.workers: dict[str, Any] = {}  # task key -> the Dask worker that runs it
        self.pending = threading.Event()  # some step logged since the last batch
        self.thread: threading.Thread | None = None

    def open(self, key: str, worker: Any) -> Callable[[dict[str, Any]], None]:
        """Collect what the step of task ``key`` logs; returns the sink of its records."""
        with self.lock:
            self.steps[key] = []
            self.workers[key] = worker
        return lambda record: self._add(key, record)

    def _add(self, key: str, record: dict[str, Any]) -> None:
        with self.lock:
            records = self.steps.get(key)
            if records is None or self.sending:
                return  # cut off (it timed out), or Dask's own line while it sends a batch
            records.append(record)
            if not self.pending.is_set():
                self.pending.set()
                if self.thread is None:
                    self.thread = threading.Thread(
                        target=self._run, name="sequent-dask-logs", daemon=True
                    )
                    self.thread.start()

    def close(self, key: str) -> tuple[dict[str, Any], ...]:
        """The step of ``key`` ended: its records not sent yet (they go in its outcome)."""
        with self.lock:
            self.workers.pop(key, None)
            return tuple(self.steps.pop(key, ()))

    def cut(self, key: str) -> bool:
        """Send what the step of ``key`` logged and not sent yet, as its last batch; what it
        logs from now on is dropped. False when no such step runs here."""
        with self.lock:
            records = self.steps.pop(key, None)
            worker = self.workers.pop(key, None)
            if records is None or worker is None:
                return False
            self._send(worker, {key: records}, last=key)
            return True

    def _run(self) -> None:
        while True:
            self.pending.wait()
            time.sleep(FLUSH_EVERY)  # a batch's worth of lines, at most this late
            self.flush()

    def flush(self) -> None:
        """Send every step's unsent records, a batch per worker."""
        with self.lock:
            self.pending.clear()
            batches: dict[int, tuple[Any, dict[str, list[dict[str, Any]]]]] = {}
            for key, records in self.steps.items():
                if records:
                    worker = self.workers[key]
                    batches.setdefault(id(worker), (worker, {}))[1][key] = records
                    self.steps[key] = []
            for worker, batch in batches.values():
                self._send(worker, batch)

    def _send(
        self, worker: Any, batch: dict[str, list[dict[str, Any]]], last: str | None = None
    ) -> None:
        """Hand ``batch`` to ``worker``'s event loop (the caller holds the lock)."""
        self.sending = True
        try:
            worker.log_event(TOPIC, {"steps": batch, "last": last})
        except Exception:  # noqa: BLE001 - a closing worker: its lines go with it (documented)
            pass
        finally:
            self.sending = False


OUTBOX = Outbox()


def flush_step(key: str) -> bool:
    """Run on a worker (``client.run``) when the step of ``key`` timed out: see ``Outbox.cut``."""
    return OUTBOX.cut(key)
