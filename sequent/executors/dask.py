"""The Dask backend: steps run on the workers of a ``distributed`` cluster.

Where the cluster is (a client, a cluster object, an address, a scheduler file, Dask's own
``DASK_SCHEDULER_ADDRESS``, or a private ``LocalCluster`` on 127.0.0.1) is decided by
``dask_connect``; ``prepare`` connects before the run is written (an unreachable cluster is a
``ClusterError`` then), checks every entry of every step's ``hosts=`` against the connected
workers (``dask_hosts``) and installs the scheduler plugin that keeps Dask from rerunning sequent's
tasks after a worker died (``dask_plugin``).

A step's hosts are turned into worker addresses when it is submitted, from a cache of the
connected workers that the scheduler plugin's worker events refresh (a restarted worker has a
new address); hosts that match no connected worker then wait for one, at most
``config['hosts_wait']`` seconds (60 unless set), and fail the step after that
(``dask_placing``).

The flow of one step:

    submit ──> sender thread: one client.map per round and placement ──> worker thread
                                                                              │
    Future[Outcome] <── tracker, on Dask's loop: one gather per batch ◄───────┘

The tracker (``dask_results.Tracker``) awaits each task on Dask's own event loop and fetches
the finished outcomes there, a batch per round trip (no thread hop per task, and a fan is not
fetched one round trip at a time); errors and cancellations go to the results thread, which
judges them one by one. Settled tasks' futures are released in batches, so a chain's next
graph update is not held back by a release sent just before it.

Timeouts count from the step's start on its worker (the worker announces it on an event
topic) and are kept here (``times_steps``). A running Dask task cannot be stopped: on a
timeout or an interruption ``kill`` cancels the task (which helps only if it has not started)
and asks every worker to SIGKILL the process groups of that step's ``seq.Program`` children;
Python code runs on in its worker thread until it returns, and its late outcome is ignored.

Mutates only the cluster and client it created itself (and its plugin on the scheduler).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import Future
from typing import Any

import distributed

from ..errors import ClusterError, ExecutorError, UnknownHostError
from ..program import kill_programs
from . import dask_hosts, dask_logs, dask_topics
from .clock import Clock
from .dask_connect import Connection, open_client
from .dask_placing import Placing
from .dask_plugin import PREFIX, WORKERS, AtMostOnce
from .dask_remote import TOPIC, running_steps
from .dask_results import Entry, Placement, Results, Sender, Tracker, failure, outcome_of
from .logstream import replay
from .worker import Outcome, Task, machine_failure

log = logging.getLogger("sequent")

#: Seconds a step waits for a worker its hosts= name when ``hosts_wait`` is not set (its
#: worker restarting, or an adaptive cluster bringing one).
HOSTS_WAIT = 60.0
LAST_LINES_WAIT = 5.0  # seconds a timed-out step's last lines may take before its failure


class DaskExecutor(Placing):
    """Steps run as Dask tasks on a cluster; see the module docstring and docs/dask.md.

    ``max_workers`` (or ``n_workers``) sizes the private local cluster (default: the number of
    CPUs, at most 4); ``cluster_options`` go to ``distributed.LocalCluster``. Raises
    ``ExecutorError`` for options that cannot go together (``address`` and ``client``, ...).
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
        *,
        scheduler_file: str | None = None,
        security: Any = None,
        cluster: Any = None,
        adapt: Any = None,
        connect_timeout: float | None = None,
    ) -> None:
        import os

        self.connection = Connection(
            address=address,
            scheduler_file=scheduler_file,
            security=security,
            cluster=cluster,
            adapt=adapt,
            n_workers=n_workers or max_workers or min(os.cpu_count() or 1, 4),
            cluster_options=dict(cluster_options or {}),
            timeout=connect_timeout if connect_timeout is not None else _connect_timeout(),
        )
        self.connection.check(client)
        self.address = address
        self._client = client
        self._owns_client = client is None
        self._cluster: distributed.LocalCluster | None = None
        self._lock = threading.RLock()
        #: Held while a batch of a step's lines is replayed and while a step is settled: no
        #: line of a step is written after its outcome.
        self._log_lock = threading.Lock()
        self._running: dict[str, Entry] = {}
        self._placement: dict[str, Placement] = {}
        self._results: Results | None = None
        self._sender: Sender | None = None
        #: Waits for the tasks on Dask's loop (``None``: Dask's done callbacks do instead).
        self.tracker: Tracker | None = None
        self._clock = Clock(self._timed_out, name="sequent-dask-timeouts")
        self._plugged = False
        self._roster = dask_hosts.Roster(self._connected_workers)
        self._shut = False
        self._workers_topic = WORKERS
        #: Warnings for the run log, said when the run's log is open (``prepare`` runs before).
        self.notices: list[str] = []
        #: True once ``prepare`` ran: timeouts then count from the start on the worker, here.
        self.times_steps = False

    # -- connecting -------------------------------------------------------------------------

    @property
    def client(self) -> distributed.Client:
        """The client, connecting (or starting the local cluster) on first use."""
        with self._lock:
            if self._client is None:
                self._client, self._cluster = open_client(self.connection)
            if not self._plugged:
                self._plug(self._client)
            return self._client

    def _plug(self, client: distributed.Client) -> None:
        self._plugged = True
        import cloudpickle as by_value

        from . import dask_plugin

        by_value.register_pickle_by_value(dask_plugin)  # the scheduler needs no sequent
        protected = False
        try:
            client.register_plugin(AtMostOnce(), name=dask_plugin.NAME)
            protected = True
        except Exception as exc:  # noqa: BLE001 - e.g. a scheduler that refuses pickled code
            log.warning(
                "The Dask scheduler refused sequent's plugin (%s: %s): a task whose worker "
                "dies may be rerun by Dask up to its allowed-failures setting",
                type(exc).__name__,
                exc,
            )
        dask_topics.subscribe(client, TOPIC, self._started)
        # Without the plugin, Dask's own topic of everything says when workers come and go.
        self._workers_topic = WORKERS if protected else "all"
        dask_topics.subscribe(client, self._workers_topic, self._workers_event)
        self._shut = False
        dask_topics.subscribe(client, dask_logs.TOPIC, self._logged)
        self._results = Results(self, client)
        usable = Tracker.usable(client)
        self.tracker = Tracker(self, client, self._results, protected) if usable else None
        self._sender = Sender(self, client, self._results)

    def _connected_workers(self) -> list[dask_hosts.WorkerInfo]:
        if self._shut or self._client is None:  # never reconnect for a step still waiting
            raise ClusterError("the Dask executor was shut down")
        return dask_hosts.connected_workers(self._client)

    def where(self) -> str:
        """The cluster the steps run on, in words (for the run log)."""
        client = self.client
        try:
            count = len(client.scheduler_info(n_workers=-1)["workers"])
        except Exception:  # noqa: BLE001 - the line is informative only
            return self.connection.where()
        return f"{self.connection.where()} ({count} worker{'s' if count != 1 else ''})"

    def prepare(self, plan: Any, config: Any) -> None:
        """Connect, and check each entry of each step's ``hosts=``; raise before anything is
        written.

        Raises ``ClusterError`` when the cluster cannot be reached and ``UnknownHostError``
        naming the step and the entry (and listing the workers) when an entry matches no
        worker, unless workers may still join (``config['hosts_wait']``, or an adaptive
        cluster): then a warning for the run log (``notices``).
        """
        self.client  # noqa: B018 - connects (and plugs) here, before anything is written
        self.notices = []
        wait = config.get("hosts_wait") if hasattr(config, "get") else None
        if wait is None and self.connection.adapt:
            wait = HOSTS_WAIT
        steps = {}
        for spec in plan.nodes.values():
            step = spec.step
            if step.is_container:
                continue
            resources = step.config.get("dask_resources")
            self._placement[step.path_name] = Placement(
                dict(resources) if resources else None,
                step.timeout,
                float(HOSTS_WAIT if wait is None else wait),
            )
            if step.hosts:
                steps[step.path_name] = tuple(step.hosts)
        workers = self._roster.workers() if steps else []
        for path, missing in dask_hosts.unmatched(steps, workers).items():
            which = dask_hosts.entries(steps[path], missing)
            if not wait:
                raise UnknownHostError(
                    f"step {path!r}: {which} of "
                    f"{self.connection.where()} (workers: {dask_hosts.describe(workers)}); "
                    f"name a worker by its name, address, host name or IP, or set "
                    f"config['hosts_wait'] to wait for such a worker to join"
                )
            self.notices.append(
                f"Step {path!r}: {which.replace(' no worker', ' no connected worker yet')}; "
                f"the step waits up to {wait:g} s for one when it is submitted"
            )
        if self.tracker is not None:
            self.tracker.count_threads()
        self.times_steps = True

    # -- running ----------------------------------------------------------------------------

    def submit(self, task: Task, hosts: tuple[str, ...] | None = None) -> Future[Outcome]:
        """Submit ``task`` as a Dask task on the connected workers its step's ``hosts`` name."""
        self.client  # noqa: B018 - connects (and plugs) on first use
        placement = self._placement.get(task.context.name) or Placement(None, None, 0.0)
        future: Future[Outcome] = Future()
        future.set_running_or_notify_cancel()
        self._place(task, tuple(hosts) if hosts else None, placement, future)
        return future

    def _send(
        self,
        task: Task,
        future: Future[Outcome],
        hosts: tuple[str, ...] | None,
        workers: list[str] | None,
        placement: Placement,
    ) -> None:
        context = task.context
        key = f"{PREFIX}{context.run_id}-{context.name}-{context.sequence}-{uuid.uuid4().hex[:8]}"
        entry = Entry(future, task, placement)
        entry.hosts = hosts
        entry.workers = workers or None
        entry.announce = bool(placement.timeout) and self.times_steps
        with self._lock:
            self._running[key] = entry
        sender = self._sender
        assert sender is not None
        sender.put(key, entry)

    def _started(self, event: Any) -> None:
        """A worker began a step: its timeout counts from now (called on Dask's loop)."""
        _, info = event
        with self._lock:
            entry = self._running.get(info.get("key"))
        if entry is not None:
            entry.began = float(info.get("started") or 0.0)
            entry.address = info.get("address")
        if entry is not None and entry.placement.timeout:
            self._clock.arm(time.monotonic() + entry.placement.timeout, info["key"])

    def _logged(self, event: Any) -> None:
        """Steps logged lines on a worker: replay them (called on Dask's loop, in order)."""
        _, message = event
        last = message.get("last")
        for key, records in message.get("steps", {}).items():
            with self._lock:
                entry = self._running.get(key)
            if entry is None:
                continue  # a step already settled (timed out): its late lines go nowhere
            with self._log_lock:
                if not entry.future.done():
                    context = entry.task.context
                    for data in records:
                        replay(context.name, context.sequence, data)
            if key == last and entry.flushed is not None:
                entry.flushed.set()

    def _timed_out(self, key: str) -> None:
        with self._lock:
            entry = self._running.get(key)
        if entry is None or entry.future.done():
            return
        # Its last lines take a round trip to its worker: not on the clock's time.
        threading.Thread(target=self._time_out, args=(key, entry), daemon=True).start()

    def _time_out(self, key: str, entry: Entry) -> None:
        timeout = entry.placement.timeout
        error = f"TimeoutError: step {entry.task.context.name!r} timed out after {timeout} s"
        started = entry.began or time.time() - (timeout or 0)
        self._last_lines(key, entry)
        # Settled before the task is cancelled: the cancellation's own outcome (StepKilled)
        # arrives on the results thread and must find the step already decided.
        with self._log_lock:
            entry.settle(machine_failure(error, started=started))
        self._stop(entry)

    def _last_lines(self, key: str, entry: Entry) -> None:
        """Have the worker of ``key`` send what its step logged since its last batch, and
        wait until it is replayed (``LAST_LINES_WAIT`` s at most)."""
        client = self._client
        if client is None:
            return
        entry.flushed = threading.Event()
        workers = [entry.address] if entry.address else None  # else: ask them all
        try:
            sent = client.run(dask_logs.flush_step, key, workers=workers, on_error="ignore")
        except Exception:  # noqa: BLE001 - the worker is gone: its lines went with it
            return
        if any(sent.values()):
            entry.flushed.wait(LAST_LINES_WAIT)

    def settle(self, done: distributed.Future[Any], outcome: Outcome | None) -> None:
        """Hand the outcome of a finished Dask task to its step (the results thread calls it)."""
        with self._lock:
            entry = self._running.pop(str(done.key), None)
        if entry is not None and not entry.future.done():
            with self._log_lock:
                entry.settle(outcome if outcome is not None else outcome_of(done, entry))

    def kill(self, future: Future[Outcome]) -> bool:
        """Cancel the task and kill its programs' groups; its Python code cannot be stopped.
        What the step logged until now is in its log when this returns."""
        with self._lock:
            key, entry = next(
                ((k, e) for k, e in self._running.items() if e.future is future), ("", None)
            )
        if entry is None or self._client is None:
            return False
        self._last_lines(key, entry)
        self._stop(entry)
        return False

    def _stop(self, entry: Entry) -> None:
        with self._lock:
            entry.cancelled = True  # a task still in the sender's queue is never sent
            task_future = entry.dask
        if task_future is not None:
            task_future.cancel()
        context = entry.task.context
        step = (context.run_id, context.name, context.sequence, context.retry)
        client = self._client
        threading.Thread(  # a round trip to every worker: not on the scheduling loop's time
            target=_kill_programs_on_workers, args=(client, step), daemon=True
        ).start()

    # -- recovering -------------------------------------------------------------------------

    def settle_orphans(self, run_id: str, poll: float = 0.5) -> list[dict[str, Any]]:
        """Wait for the steps of ``run_id`` that still run on the cluster (their orchestrator
        died); their programs are killed, their Python code is waited for. Returns them."""
        client = self.client
        orphans = _orphans(client, run_id)
        if not orphans:
            return []
        for info in orphans:
            log.warning(
                "Recover: step %r (sequence %s, try %s) still runs on worker "
                "%s (Dask task %s) from the orchestrator that died; killing its programs and "
                "waiting for it to end before rerunning",
                info["name"],
                info["sequence"],
                info["retry"] + 1,
                info["worker"],
                info["key"],
            )
            step = (run_id, info["name"], info["sequence"], info["retry"])
            _kill_programs_on_workers(client, step)
        while _orphans(client, run_id):
            time.sleep(poll)
        log.info("Recover: the %d step(s) left running on the cluster have ended", len(orphans))
        return orphans

    def shutdown(self) -> None:
        """Close the client and the local cluster this backend started (not ones given to it)."""
        with self._lock:
            self._shut = True
            running = list(self._running.values())
            self._running.clear()
        for entry in running:
            stopped = "WorkerError: the Dask executor was shut down while the step ran"
            entry.settle(failure(stopped, started=entry.began or entry.sent))
        self._clock.stop()
        self._roster.changed()  # steps waiting for their hosts find the client gone and fail
        if self._sender is not None:
            self._sender.stop()
            self._sender = None
        if self.tracker is not None:
            self.tracker.stop()
            self.tracker = None
        if self._results is not None:
            self._results.stop()
            self._results = None
        client = self._client
        if client is not None and self._plugged:
            try:
                dask_topics.unsubscribe(client, TOPIC, self._started)
                dask_topics.unsubscribe(client, self._workers_topic, self._workers_event)
                dask_topics.unsubscribe(client, dask_logs.TOPIC, self._logged)
            except Exception:  # noqa: BLE001 - a closed connection has no subscription left
                pass
            self._plugged = False
        if self._owns_client and client is not None:
            client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def _connect_timeout() -> float:
    """Dask's own ``distributed.comm.timeouts.connect`` (30 s unless configured), in seconds."""
    import dask
    from dask.utils import parse_timedelta

    return float(parse_timedelta(dask.config.get("distributed.comm.timeouts.connect")) or 30)


#: The name the documentation and SPEC 3.2 use.
DaskBackend = DaskExecutor  # the name before 0.2


def _kill_programs_on_workers(client: distributed.Client | None, step: tuple[Any, ...]) -> None:
    if client is None:
        return
    try:
        client.run(kill_programs, step, on_error="ignore")
    except Exception:  # noqa: BLE001 - the cluster may be going away; the timeout stands
        pass


def _orphans(client: distributed.Client, run_id: str) -> list[dict[str, Any]]:
    try:
        found = client.run(running_steps, run_id, on_error="ignore")
    except Exception as exc:  # noqa: BLE001
        raise ClusterError(
            f"cannot ask the Dask workers which steps of run {run_id} still run ({exc}); "
            f"check the cluster, then recover again"
        ) from exc
    return [info for infos in found.values() for info in infos]


__all__ = ["DaskBackend", "DaskExecutor", "ExecutorError"]
