"""The scheduler side of sequent's Dask tasks: a scheduler plugin, sent by value.

It imports nothing of sequent (the scheduler need not have sequent installed) and touches only
sequent's own tasks (keys that start with ``PREFIX``):

- **No silent rerun.** Dask reruns a task whose worker died, up to the scheduler's
  ``allowed-failures`` times. For sequent's tasks the plugin uses up that allowance when the task
  enters the scheduler, so the first death of its worker fails the task (``KilledWorker``) and
  sequent records it as a failed try; a further try happens only under the step's ``retries``.
- **No retirement under a running step.** An adaptive cluster scaling down never picks a worker
  that is processing one of sequent's tasks (Dask would move the task and start it again).

Mutates only the ``suspicious`` count of sequent's own tasks on the scheduler.
"""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

PREFIX = "sequent-"
NAME = "sequent-at-most-once"


class AtMostOnce(SchedulerPlugin):
    """Sequent's tasks run at most once per submission: no rerun after a worker died."""

    idempotent = True
    name = NAME

    def update_graph(self, scheduler: Any, *, tasks: Any = (), **kwargs: Any) -> None:
        limit = scheduler.allowed_failures
        for key in tasks:
            if isinstance(key, str) and key.startswith(PREFIX):
                state = scheduler.tasks.get(key)
                if state is not None and state.suspicious < limit:
                    state.suspicious = limit

    def valid_workers_downscaling(self, scheduler: Any, workers: list[Any]) -> list[Any]:
        return [
            worker
            for worker in workers
            if not any(
                isinstance(task.key, str) and task.key.startswith(PREFIX)
                for task in worker.processing
            )
        ]
