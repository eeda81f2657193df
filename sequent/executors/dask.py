"""The Dask backend: steps run on the workers of a ``distributed`` cluster.

By default the backend starts a ``LocalCluster`` bound to 127.0.0.1 (worker processes with one
thread each; its HTTP endpoint on a free local port) at the first step and closes it in
``shutdown``. The cluster's worker processes are started with ``spawn``, which imports the main
script again: a script that runs a flow on the local cluster needs an
``if __name__ == "__main__":`` guard.
``DaskBackend(address="tcp://host:8786")`` connects to a running scheduler instead, and
``DaskBackend(client=client)`` uses a client you made (neither cluster is closed by sequent).
A step's ``hosts=[...]`` becomes ``workers=[...]`` on its Dask task (worker names, addresses
or host names), with no fallback to other workers.

Each step is sent as one cloudpickled payload and run by ``worker.execute`` on the worker,
which sets the step context (and its environment variables: reliable when a worker runs one
thread, as the local cluster's do) and captures the step's log records for the orchestrator.

Limits: a running Dask task cannot be stopped. On a step timeout or an interruption ``kill``
cancels the task (which only helps if it has not started) and asks every worker to SIGKILL
the process groups of that step's ``seq.Program`` children; Python code runs on until it
returns and its late outcome is ignored. A worker that dies fails its step with
``WorkerDied``; the local cluster's scheduler allows no retries of such a task
(``allowed_failures=0``), while a cluster you bring uses its own setting.

Mutates only the cluster and client it created itself.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
import uuid
from concurrent.futures import Future
from typing import Any

import cloudpickle
import distributed

from ..errors import ExecutorError
from ..program import kill_programs
from ..status import StepStatus
from .worker import Outcome, Task, execute


class DaskBackend:
    """Steps run as Dask tasks: on a local cluster, a cluster at ``address``, or ``client``'s.

    ``max_workers`` (or ``n_workers``) sizes the local cluster (default: the number of CPUs,
    at most 4); ``cluster_options`` go to ``distributed.LocalCluster``. Raises
    ``ExecutorError`` when both ``address`` and ``client`` are given.
    """

    name = "dask"
    remote = True

    def __init__(
        self,
        address: str | None = None,
        client: distributed.Client | None = None,
        max_workers: int | None = None,
        n_workers: int | None = None,
        cluster_options: dict[str, Any] | None = None,
    ) -> None:
        if address is not None and client is not None:
            raise ExecutorError("DaskBackend takes address= or client=, not both; drop one")
        self.address = address
        self.n_workers = n_workers or max_workers or min(os.cpu_count() or 1, 4)
        self.cluster_options = dict(cluster_options or {})
        self._client = client
        self._owns_client = client is None
        self._cluster: distributed.LocalCluster | None = None
        self._lock = threading.Lock()
        self._running: dict[Future[Outcome], tuple[distributed.Future, tuple[Any, ...]]] = {}

    @property
    def client(self) -> distributed.Client:
        """The client, connecting (or starting the local cluster) on first use."""
        with self._lock:
            if self._client is None:
                if self.address is not None:
                    self._client = distributed.Client(self.address, set_as_default=False)
                else:
                    options = {
                        "n_workers": self.n_workers,
                        "threads_per_worker": 1,
                        "processes": True,
                        "host": "127.0.0.1",
                        "dashboard_address": "127.0.0.1:0",  # a free local port, no clash
                        "scheduler_kwargs": {"allowed_failures": 0},
                        **self.cluster_options,
                    }
                    self._cluster = distributed.LocalCluster(**options)
                    self._client = distributed.Client(self._cluster, set_as_default=False)
            return self._client

    def submit(self, task: Task, hosts: tuple[str, ...] | None = None) -> Future[Outcome]:
        """Submit ``task`` as a Dask task (restricted to ``hosts`` when given)."""
        context = task.context
        key = f"sequent-{context.name}-{context.sequence}-{uuid.uuid4().hex[:8]}"
        task_future = self.client.submit(
            _call,
            cloudpickle.dumps(task),
            key=key,
            workers=list(hosts) if hosts else None,
            allow_other_workers=False,
            pure=False,
        )
        step = (context.run_id, context.name, context.sequence, context.attempt)
        future: Future[Outcome] = Future()
        future.set_running_or_notify_cancel()
        with self._lock:
            self._running[future] = (task_future, step)
        started = time.time()

        def settle(done: distributed.Future) -> None:
            with self._lock:
                self._running.pop(future, None)
            if not future.done():
                future.set_result(_outcome(done, task, started))

        task_future.add_done_callback(settle)
        return future

    def kill(self, future: Future[Outcome]) -> bool:
        """Cancel the task and kill its programs' groups; its Python code cannot be stopped."""
        with self._lock:
            entry = self._running.get(future)
        if entry is None or self._client is None:
            return False
        task_future, step = entry
        task_future.cancel()
        client = self._client
        threading.Thread(  # a round trip to every worker: not on the scheduling loop's time
            target=_kill_programs_on_workers, args=(client, step), daemon=True
        ).start()
        return False

    def shutdown(self) -> None:
        """Close the client and the local cluster this backend started (not ones given to it)."""
        with self._lock:
            running = list(self._running.items())
            self._running.clear()
        for future, _ in running:
            if not future.done():
                now = time.time()
                future.set_result(
                    Outcome(
                        status=StepStatus.failure,
                        error="WorkerError: the Dask executor was shut down while the step ran",
                        started=now,
                        ended=now,
                    )
                )
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


#: The name the documentation and SPEC 3.2 use.
DaskExecutor = DaskBackend


def _outcome(done: distributed.Future, task: Task, started: float) -> Outcome:
    """The step's outcome, or a failure saying how Dask failed it."""
    where = f"step {task.context.name!r} (sequence {task.context.sequence})"
    try:
        return done.result()
    except distributed.client.FutureCancelledError:
        why = f"StepKilled: the Dask task of {where} was cancelled"
    except BaseException as exc:  # noqa: BLE001 - the machinery's failure is the step's
        kind = "WorkerDied" if type(exc).__name__ == "KilledWorker" else "WorkerError"
        why = f"{kind}: {where} failed on the Dask cluster: {type(exc).__name__}: {exc}"
    return Outcome(status=StepStatus.failure, error=why, started=started, ended=time.time())


def _kill_programs_on_workers(client: distributed.Client, step: tuple[Any, ...]) -> None:
    try:
        client.run(kill_programs, step, on_error="ignore")
    except Exception:  # noqa: BLE001 - the cluster may be going away; the timeout stands
        pass


def _call(payload: bytes) -> Outcome:
    """Run one step on a Dask worker."""
    return execute(pickle.loads(payload))


__all__ = ["DaskBackend", "DaskExecutor"]
