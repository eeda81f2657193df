"""The loky backend: steps run in loky's reusable pool of worker processes.

``loky.get_reusable_executor`` keeps one pool per thread and hands it to every flow that asks,
so its workers stay warm across runs and flows. Steps travel with cloudpickle (functions of a
script without a main guard and lambdas work; loky starts clean interpreters that do not run
the main script again).

Limits, and what this backend does about them:

- **A worker that dies** (``os._exit``, SIGKILL, a segfault) breaks loky's executor: every
  step in flight on it at that moment fails, not only the one whose worker died. Each such
  step is reported as a ``WorkerDied`` failure that says so; the next step gets a fresh
  executor (``get_reusable_executor`` replaces a broken one).
- **Timeouts and interruption.** Killing a loky worker would break the executor as above, so
  ``kill`` interrupts the step instead: every call records ``(token, pid)`` in a small
  memory-mapped table, and ``kill`` marks the token and sends SIGUSR1 to that worker. Its
  handler SIGKILLs the process groups of the step's ``seq.Program`` children and raises
  ``StepKilled`` inside the step; the worker lives on. A step blocked in C code that does not
  return to Python (a long computation inside an extension) runs on until it does; the core
  has recorded the timeout already and ignores its late outcome.

Mutates only its own table file and the futures it hands out.
"""

from __future__ import annotations

import itertools
import mmap
import os
import pickle
import signal
import struct
import tempfile
import threading
import time
from concurrent.futures import CancelledError, Future
from typing import Any

from loky import get_reusable_executor
from loky.process_executor import BrokenProcessPool, ShutdownExecutorError

from ..errors import ExecutorError
from ..program import kill_programs
from ..status import StepStatus
from .process import dumps, export_environ
from .worker import Outcome, Task, execute

SLOTS = 1024
_SLOT = struct.Struct("qqq")  # token, pid, kill requested


class StepKilled(BaseException):
    """Raised inside a loky step that was stopped on request (a timeout or an interruption)."""


class LokyBackend:
    """Steps run in loky's reusable process pool (shared with other flows in this thread).

    ``max_workers`` sizes the pool (None: the number of CPUs); ``idle_timeout`` is how long
    idle workers wait for work before loky stops them.
    """

    name = "loky"
    remote = True

    def __init__(self, max_workers: int | None = None, idle_timeout: float = 300.0) -> None:
        if max_workers is not None and (
            isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
        ):
            raise ExecutorError(
                f"LokyBackend(max_workers={max_workers!r}): give a whole number >= 1 or None"
            )
        self.max_workers = max_workers or os.cpu_count() or 1
        self.idle_timeout = idle_timeout
        self._tokens = itertools.count(1)
        self._lock = threading.Lock()
        self._running: dict[Future[Outcome], tuple[int, Future[Any]]] = {}
        fd, self._table_path = tempfile.mkstemp(prefix="sequent-loky-", suffix=".slots")
        os.ftruncate(fd, SLOTS * _SLOT.size)
        self._table = mmap.mmap(fd, SLOTS * _SLOT.size)
        os.close(fd)
        self._closed = False

    def submit(self, task: Task, hosts: tuple[str, ...] | None = None) -> Future[Outcome]:
        """Run ``task`` on the reusable executor; its death or breakage becomes an outcome."""
        if self._closed:
            raise ExecutorError("the loky executor was shut down; create a new flow")
        payload = dumps(task)
        token = next(self._tokens)
        outer: Future[Outcome] = Future()
        outer.set_running_or_notify_cancel()
        try:
            inner = self._executor().submit(_call, payload, token, self._table_path)
        except (BrokenProcessPool, ShutdownExecutorError, RuntimeError):
            inner = self._executor().submit(_call, payload, token, self._table_path)
        with self._lock:
            self._running[outer] = (token, inner)
        started = time.time()

        def settle(done: Future[Any]) -> None:
            with self._lock:
                self._running.pop(outer, None)
            outer.set_result(_outcome(done, task, started))

        inner.add_done_callback(settle)
        return outer

    def kill(self, future: Future[Outcome]) -> bool:
        """Interrupt the step behind ``future`` in its worker (see the module docstring)."""
        with self._lock:
            entry = self._running.get(future)
        if entry is None or self._closed:
            return False
        token, inner = entry
        offset = (token % SLOTS) * _SLOT.size
        slot_token, pid, _ = _SLOT.unpack_from(self._table, offset)
        if slot_token != token or pid <= 0:
            return inner.cancel()  # still queued in loky (or just finished)
        _SLOT.pack_into(self._table, offset, token, pid, 1)
        try:
            os.kill(pid, signal.SIGUSR1)
        except ProcessLookupError:
            return False
        return True

    def shutdown(self) -> None:
        """Forget the pool (loky stops idle workers after ``idle_timeout``); remove the table."""
        if self._closed:
            return
        self._closed = True
        self._table.close()
        try:
            os.unlink(self._table_path)
        except FileNotFoundError:
            pass

    def _executor(self) -> Any:
        return get_reusable_executor(max_workers=self.max_workers, timeout=self.idle_timeout)


def _outcome(done: Future[Any], task: Task, started: float) -> Outcome:
    """The step's outcome, or a failure saying how the machinery failed it."""
    try:
        outcome: Outcome = pickle.loads(done.result())
        return outcome
    except CancelledError:
        why = "StepKilled: it was cancelled before it started"
    except BrokenProcessPool as exc:
        why = (
            f"WorkerDied: a loky worker process died while step {task.context.name!r} "
            f"(sequence {task.context.sequence}) was running ({exc}); loky fails every step "
            f"running at that moment, so this step may not be the one whose worker died"
        )
    except BaseException as exc:  # noqa: BLE001 - the machinery's failure is the step's
        why = f"WorkerError: {type(exc).__name__}: {exc}"
    return Outcome(status=StepStatus.failure, error=why, started=started, ended=time.time())


# -- the worker's side --------------------------------------------------------------------

_tables: dict[str, mmap.mmap] = {}
_current: list[Any] = [None]  # (table, offset, token, step id) of the call running here


def _call(payload: bytes, token: int, table_path: str) -> bytes:
    """Run one step in a loky worker, registered so the orchestrator can interrupt it.

    Returns the pickled outcome (plain pickle where it suffices: cheaper than loky's own).
    """
    table = _tables.get(table_path)
    if table is None:
        with open(table_path, "r+b") as handle:
            table = _tables[table_path] = mmap.mmap(handle.fileno(), SLOTS * _SLOT.size)
        signal.signal(signal.SIGUSR1, _on_sigusr1)
    offset = (token % SLOTS) * _SLOT.size
    task: Task = pickle.loads(payload)
    context = task.context
    step = (context.run_id, context.name, context.sequence, context.attempt)
    export_environ(task)
    _SLOT.pack_into(table, offset, token, os.getpid(), 0)
    _current[0] = (table, offset, token, step)
    try:
        outcome = execute(task, exported=True)
    finally:
        _current[0] = None
        _SLOT.pack_into(table, offset, 0, 0, 0)
    return dumps(outcome)


def _on_sigusr1(signum: int, frame: Any) -> None:
    running = _current[0]
    if running is None:
        return
    table, offset, token, step = running
    slot_token, _, kill = _SLOT.unpack_from(table, offset)
    if slot_token == token and kill:
        _current[0] = None
        kill_programs(step)
        raise StepKilled(f"step {step[1]!r} was stopped on request (a timeout or interruption)")


__all__ = ["LokyBackend", "StepKilled"]
