"""Run a flow on the scheduling core with an in-memory recorder, and read what it recorded.

Shared by the behaviour and resource suites. Backends are created once per test session and
lent to each test (``lend_backend``), because a process pool or a Dask cluster takes a while
to start.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import sequent as seq
from sequent.compiler import NodeKey
from sequent.executors import RunOptions, Scheduler, create_backend
from sequent.status import StepStatus
from sequent.store import MemoryRecorder

WORKERS = 4  # every backend gets this many workers; concurrency tests stay within it


class SharedBackend:
    """A backend lent to one test: the module keeps the real one warm and shuts it down."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.remote = inner.remote
        if hasattr(inner, "post"):  # the thread backend's hand-off without futures
            self.post = inner.post
            self.cancel = inner.cancel

    @property
    def times_steps(self) -> bool:
        """Whether the real backend counts step timeouts from their start on a worker."""
        return bool(getattr(self.inner, "times_steps", False))

    def submit(self, task, hosts=None):
        return self.inner.submit(task, hosts)

    def kill(self, future) -> bool:
        return self.inner.kill(future)

    def shutdown(self) -> None:
        pass


def lend_backend(executor: str, warm: dict[str, Any], dask_client: Any = None) -> SharedBackend:
    """The warm backend (one per session) for ``executor`` (created on first use), lent to one test.

    ``dask_client``: run dask steps on that (the session's) cluster instead of a new one.
    """
    if executor not in warm:
        if executor == "dask" and dask_client is not None:
            from sequent.executors.dask import DaskExecutor

            warm[executor] = DaskExecutor(client=dask_client)
        else:
            warm[executor] = create_backend(executor, max_workers=WORKERS)
    return SharedBackend(warm[executor])


def new_flow(
    backend: SharedBackend, tmp_path: Path, store: str = ":memory:", **config: Any
) -> seq.Sequent:
    """A flow on ``backend``, in-memory store, logs under ``tmp_path``; no concurrency limit."""
    config.setdefault("logdir", str(tmp_path / "logs"))
    config.setdefault("max_concurrent", 0)
    return seq.Sequent(
        name="behaviour",
        store=store,
        executor=backend,
        logging_level=logging.INFO,
        config=config,
    )


class Run:
    """What a run recorded: its result and every status change, in the order reported."""

    def __init__(self, result: bool, recorder: MemoryRecorder, ended: float) -> None:
        self.result = result
        self.records = recorder.records
        self.ended = ended

    def events(self, *statuses: StepStatus) -> list[str]:
        """``path/sequence:status`` for every change (of the given statuses), in order."""
        return [
            f"{r.key}:{r.status.value}"
            for r in self.records
            if not statuses or r.status in statuses
        ]

    def status(self) -> dict[str, str]:
        """The latest status of every recorded node, as ``{"path/sequence": status}``."""
        return {str(r.key): r.status.value for r in self.records}

    def record(self, node: str, status: StepStatus) -> Any:
        """The one record of ``node`` reaching ``status``."""
        found = [r for r in self.records if str(r.key) == node and r.status is status]
        assert len(found) == 1, f"{node} {status.value}: {found}"
        return found[0]

    def index(self, node: str, status: StepStatus) -> int:
        """The position of ``node``'s ``status`` record among all records."""
        for number, record in enumerate(self.records):
            if str(record.key) == node and record.status is status:
                return number
        raise AssertionError(f"no {status.value} record for {node}: {self.events()}")

    def outcome(self, node: str) -> Any:
        """The outcome recorded with ``node``'s final status."""
        for record in self.records:
            if str(record.key) == node and record.outcome is not None:
                return record.outcome
        raise AssertionError(f"no outcome recorded for {node}: {self.events()}")

    def value(self, node: str) -> Any:
        """What ``node``'s step returned."""
        return self.outcome(node).value

    def intervals(self, prefix: str = "") -> list[tuple[float, float]]:
        """``(started, ended)`` of every step call whose path starts with ``prefix``."""
        return [
            (r.outcome.started, r.outcome.ended)
            for r in self.records
            if r.outcome is not None and r.key.path.startswith(prefix)
        ]


def run_core(
    flow: seq.Sequent,
    backend: Any,
    *,
    max_concurrent: int = 0,
    stop_on_exception: bool = True,
    previous: dict[NodeKey, StepStatus] | None = None,
) -> Run:
    """Run ``flow`` on the scheduling core with an in-memory recorder."""
    plan = flow.compile()
    recorder = MemoryRecorder()
    options = RunOptions(
        run_id="behaviour-run",
        flow_name=flow.name,
        max_concurrent=max_concurrent,
        stop_on_exception=lambda spec: stop_on_exception,
        step_config=lambda spec, key, default: spec.step.config.get(key, default),
        handle_signals=False,
    )
    result = Scheduler(plan, backend, recorder, options, previous=previous).run()
    return Run(result, recorder, time.time())


def rendezvous(folder: str, name: str, parties: int, hold: float = 0.0) -> bool:
    """A step: arrive at ``folder`` and wait until ``parties`` steps have arrived (then hold
    ``hold`` seconds); False if they never do (15 s bound a hang). A step that returns True
    was running at the same time as ``parties - 1`` others."""
    Path(folder, name).touch()
    deadline = time.monotonic() + 15
    while len(os.listdir(folder)) < parties:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    time.sleep(hold)
    return True


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals that overlap at one instant."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, change in edges:  # at equal times an end (-1) sorts before a start (+1)
        running += change
        peak = max(peak, running)
    return peak


def wait_for(condition: Any, timeout: float = 30.0, what: str = "the condition") -> Any:
    """Poll ``condition()`` until it returns something true (returned); a bound on a hang,
    never a wait for time to pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
