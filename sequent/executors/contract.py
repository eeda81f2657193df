"""What the scheduling core needs of the parts around it: a backend, a recorder, run options.

Plain declarations, no behaviour: ``Backend`` is what runs steps (sequent's executors, or any
``concurrent.futures.Executor`` through ``GivenExecutor``), ``Recorder`` is where a run's
status changes go (the store's session, or a dry run's list), ``RunOptions`` how one run is
scheduled.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

import attrs

from ..compiler import NodeKey, NodeSpec
from ..status import StepStatus
from .worker import Outcome, Task


class Backend(Protocol):
    """What the core needs of an executor backend: submit a task, maybe kill it, shut down."""

    name: str
    remote: bool

    def submit(self, task: Task, hosts: tuple[str, ...] | None = None) -> Future[Outcome]: ...

    def kill(self, future: Future[Outcome]) -> bool: ...

    def shutdown(self) -> None: ...


class Recorder(Protocol):
    """Where the core reports a run: buffered node records, committed by ``flush``."""

    def node(
        self,
        key: NodeKey,
        status: StepStatus,
        *,
        error: str | None = None,
        replayed: bool = False,
        outcome: Outcome | None = None,
        retry: int = 0,
    ) -> None: ...

    def expanded(self, specs: list[NodeSpec]) -> None: ...

    def flush(self) -> None: ...


class LeaseWatch(Protocol):
    """What tells the core that another orchestrator took its run over (``store.lease``).

    ``fresh_until`` is the ``time.monotonic()`` until which the run is known to be this
    orchestrator's; after it, ``verify()`` looks (None: still ours, else why not).
    ``on_lost(why)`` is called, from another thread, when the loss is noticed there.
    """

    fresh_until: float
    on_lost: Callable[[str], None] | None

    def verify(self) -> str | None: ...


@attrs.frozen
class RunOptions:
    """How one run is scheduled: concurrency, stopping, rounds, and the step context's ids."""

    run_id: str
    flow_name: str
    recovery: int = 0
    max_concurrent: int = 1
    max_loops: int = -1
    stop_on_exception: Callable[[NodeSpec], bool] = lambda spec: True
    step_config: Callable[[NodeSpec, str, Any], Any] = lambda spec, key, default: default
    logger_name: str = "sequent.step"
    handle_signals: bool = True
    #: Step paths whose leaves keep their previous status without running (``--only``).
    kept: frozenset[str] = frozenset()
    #: The run's lease, watched so that a run taken over by another orchestrator stops.
    lease: LeaseWatch | None = None
