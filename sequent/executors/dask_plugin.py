"""The scheduler side of sequent's Dask tasks: a scheduler plugin, sent by value.

It imports nothing of sequent (the scheduler need not have sequent installed) and touches only
sequent's own tasks (keys that start with ``PREFIX``):

- **No silent rerun.** Dask reruns a task whose worker died, up to the scheduler's
  ``allowed-failures`` times. For sequent's tasks the plugin uses up that allowance when the task
  enters the scheduler, so the first death of its worker fails the task (``KilledWorker``) and
  sequent records it as a failed try; a further try happens only under the step's ``retries``.
- **No recomputation of a finished step.** Dask computes a finished task again when the only
  worker that holds its result dies while a client still holds its future. For sequent's tasks
  the plugin forgets how to compute a task once its result is in memory, so a lost result is
  lost (the outcome was fetched already) and the step's body never runs a second time.
- **No retirement under a running step.** An adaptive cluster scaling down never picks a worker
  that is processing one of sequent's tasks (Dask would move the task and start it again).
- **Word of the workers.** A worker that joins or leaves is announced on the ``WORKERS`` topic
  (sequent's clients resolve ``hosts=`` again then), and so is a task that arrives restricted
  to workers none of which is connected any more (it would wait in ``no-worker`` forever; it
  never ran, so sequent sends it again to the workers its hosts name now).

Mutates only the ``suspicious`` count and, once finished, the ``run_spec`` of sequent's own
tasks on the scheduler.
"""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

PREFIX = "sequent-"
#: Versioned: a scheduler keeps a plugin registered under the same name (``idempotent``), so a
#: long-lived cluster that holds an older sequent's plugin gets this one beside it.
NAME = "sequent-at-most-once-3"
#: The event topic on which the plugin announces workers joining and leaving.
WORKERS = "sequent-workers"


class AtMostOnce(SchedulerPlugin):
    """Sequent's tasks run at most once per submission: no rerun after a worker died."""

    idempotent = True
    name = NAME

    def __init__(self) -> None:
        self.scheduler: Any = None

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if finish != "memory" or not (isinstance(key, str) and key.startswith(PREFIX)):
            return
        state = self.scheduler.tasks.get(key) if self.scheduler is not None else None
        if state is not None:
            state.run_spec = None  # finished: if its result is lost, it is gone, not rerun

    def update_graph(self, scheduler: Any, *, tasks: Any = (), **kwargs: Any) -> None:
        limit = scheduler.allowed_failures
        stranded = []
        for key in tasks:
            if isinstance(key, str) and key.startswith(PREFIX):
                state = scheduler.tasks.get(key)
                if state is not None and state.suspicious < limit:
                    state.suspicious = limit
                only = state.worker_restrictions if state is not None else None
                if only and not state.loose_restrictions and not only & scheduler.workers.keys():
                    stranded.append(key)
        if stranded:
            scheduler.log_event(WORKERS, {"action": "stranded", "keys": stranded})

    def add_worker(self, scheduler: Any, worker: str) -> None:
        scheduler.log_event(WORKERS, {"action": "add-worker", "worker": worker})

    def remove_worker(self, scheduler: Any, worker: str, **kwargs: Any) -> None:
        scheduler.log_event(WORKERS, {"action": "remove-worker", "worker": worker})

    def valid_workers_downscaling(self, scheduler: Any, workers: list[Any]) -> list[Any]:
        return [
            worker
            for worker in workers
            if not any(
                isinstance(task.key, str) and task.key.startswith(PREFIX)
                for task in worker.processing
            )
        ]
