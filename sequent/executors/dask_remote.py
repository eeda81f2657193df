"""The worker side of the Dask backend: run one step in a Dask worker, and say which ones run.

``run_step`` is what each sequent task calls on its worker. It loads the step, notes it in this
worker process's ``RUNNING`` table while its body runs (so a later recover can find a step
that outlived its orchestrator, ``running_steps``), announces the start on the ``TOPIC`` event
topic when asked (so a timeout counts from the start on the worker), sends what the step logs in
batches while it runs (``dask_logs``), and returns the Outcome with the worker's name and
address and the records not sent yet. Several steps may run at once in one worker process (one
per worker thread): the step context is per thread, and the ``SEQUENT_*`` variables are put
into ``os.environ`` only on a worker with one thread (program steps always get theirs in their
child's environment).

Mutates the ``RUNNING`` table of the worker process it runs in.
"""

from __future__ import annotations

import pickle
import threading
import time
import traceback
from typing import Any

import attrs

from ..status import StepStatus
from .dask_logs import OUTBOX
from .worker import Outcome, execute

TOPIC = "sequent-started"

#: Task key -> what runs under it, in this worker process.
RUNNING: dict[str, dict[str, Any]] = {}
_guard = threading.Lock()


def worker_label(worker: Any) -> str:
    """``name address`` of a Dask worker (just the address where the name is the address)."""
    name, address = str(worker.name), worker.address
    return address if name == address else f"{name} {address}"


def run_step(payload: bytes, announce: bool = False) -> Outcome:
    """Run one pickled ``Task`` on the current Dask worker; never raises."""
    from distributed import get_worker

    started = time.time()
    worker = get_worker()
    where = worker_label(worker)
    key = str(worker.get_current_task())
    try:
        task = pickle.loads(payload)
    except BaseException as exc:  # noqa: BLE001 - e.g. a module missing on this worker
        return Outcome(
            status=StepStatus.failure,
            error=f"{type(exc).__name__}: the step could not be loaded on worker {where}: {exc}",
            traceback=traceback.format_exc(),
            started=started,
            ended=time.time(),
            worker=where,
        )
    context = task.context
    info = {
        "key": key,
        "run_id": context.run_id,
        "name": context.name,
        "sequence": context.sequence,
        "retry": context.retry,
        "started": started,
        "worker": where,
        "address": worker.address,
    }
    with _guard:
        RUNNING[key] = info
    sink = OUTBOX.open(key, worker)
    try:
        if announce:
            worker.log_event(TOPIC, info)
        outcome = execute(task, environ=worker.state.nthreads == 1, sink=sink)
    finally:
        rest = OUTBOX.close(key)  # what was not sent in a batch yet
        with _guard:
            RUNNING.pop(key, None)
    return attrs.evolve(outcome, worker=where, logs=rest)


def running_steps(run_id: str) -> list[dict[str, Any]]:
    """The steps of run ``run_id`` whose bodies run in this worker process now."""
    with _guard:
        return [dict(info) for info in RUNNING.values() if info["run_id"] == run_id]
