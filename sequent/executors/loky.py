"""The loky backend: steps run in a loky process pool that this backend owns.

Each backend starts its own ``loky.ProcessPoolExecutor`` on first use and shuts it down in
``shutdown`` (``flow.close()``), so its workers stay warm across the flow's runs and end with
it. Steps travel with cloudpickle (functions of a script without a main guard and lambdas work;
loky starts clean interpreters that do not run the main script again).

    orchestrator                                       loky worker (clean interpreter)
    ────────────                                       ───────────────────────────────
    submit(task) ──> pool.submit(_call, payload, token) ──> _call: slot[token] = pid
       │                                                          execute(task) ──> Outcome
    settle(inner) <── loky's result queue <──────────────────── pickled Outcome ─┘
       │ a broken pool: was this step's worker the one that died? (slot pid, waitid)
       ├─ yes: WorkerDied, its own failure
       ├─ no, it had started: a StoppedTry (recorded as a failed try; the core reruns it)
       └─ no, not started yet: resubmitted to a fresh pool

Limits, and what this backend does about them:

- **Bound to the orchestrator's life.** Every worker watches the orchestrator's pid (a pidfd
  on Linux, else its parent pid twice a second) from a thread started by the pool's
  initializer; when the orchestrator dies, even by SIGKILL, the worker SIGKILLs the process
  groups of its ``seq.Program`` children and itself. loky's resource tracker ends when the
  last process holding its pipe (the orchestrator and the workers) is gone.
- **A worker that dies** (``os._exit``, SIGKILL, a segfault) breaks loky's pool: loky fails
  every step in flight and SIGKILLs the other workers. Only the step whose own worker died is
  a ``WorkerDied`` failure. A bystander whose body had started (its worker was still alive
  when the pool broke) ends as a ``StoppedTry``: the core records that start as a failed try
  (``WorkerStopped``, naming both workers) and runs the step again at once, not counted against
  ``retries``; its body may have run partly. One that had not started is resubmitted here, with
  a warning in the run's and the step's log, and nothing is recorded. After ``RESUBMITS`` stops
  of one try the stop is the step's failure.
- **Timeouts and interruption.** Killing a loky worker would break the pool as above, so
  ``kill`` interrupts the step instead: every call records ``(token, pid)`` in a small
  memory-mapped table, and ``kill`` marks the token and sends SIGUSR1 to that worker. Its
  handler SIGKILLs the process groups of the step's ``seq.Program`` children and raises
  ``StepKilled`` inside the step; the worker lives on. A step blocked in C code that does not
  return to Python (a long computation inside an extension) runs on until it does; its
  timeout is recorded after ``KILL_WAIT`` seconds all the same and its late outcome ignored.
- **A timeout counts from the step's start in its worker** (``times_steps``), not from its
  submission: a step waiting for a busy or a cold pool does not use it up. The worker writes
  the moment it begins into the step's slot of the table; a clock thread here checks the slot
  at submission plus the timeout, then at that start plus the timeout (a step not begun yet
  is checked again one timeout later, the earliest it could time out), and stops the step as
  above when its time is up. No message per step, no polling.

Mutates only its own pool, table file and the futures it hands out.
"""

from __future__ import annotations

import itertools
import logging
import mmap
import os
import pickle
import select
import signal
import struct
import tempfile
import threading
import time
from concurrent.futures import CancelledError, Future, wait
from typing import Any

import attrs
from loky import ProcessPoolExecutor
from loky.process_executor import BrokenProcessPool, ShutdownExecutorError

from ..compiler import NodeKey
from ..errors import ExecutorError
from ..program import kill_programs
from .clock import Clock
from .logstream import LogSender, LogServer
from .payload import Packer, unpack
from .process_worker import pack_outcome
from .worker import (
    Outcome,
    StoppedTry,
    Task,
    describe,
    execute,
    export_environ,
    machine_failure,
)

log = logging.getLogger("sequent")

SLOTS = 1024
RESUBMITS = 3  # how often a bystander of a broken pool is rerun (or resubmitted) before it fails
KILL_WAIT = 2.0  # seconds ``kill`` waits for an interrupted step to end in its worker
_SLOT = struct.Struct("qqqd")  # token, pid, kill requested, when the step began (time.time())


class StepKilled(BaseException):
    """Raised inside a loky step that was stopped on request (a timeout or an interruption)."""


class _Call:
    """One step's way through the pool: the outer future the core holds, and its tries."""

    __slots__ = ("task", "payload", "outer", "token", "inner", "started", "resubmits", "expired")

    def __init__(self, task: Task, payload: bytes) -> None:
        self.task = task
        self.payload = payload
        self.outer: Future[Outcome] = Future()
        self.outer.set_running_or_notify_cancel()
        self.token = 0
        self.inner: Future[Any] | None = None
        self.started = time.time()
        self.resubmits = 0
        self.expired: Outcome | None = None  # its timeout's outcome, once it timed out


class LokyExecutor:
    """Steps run in a loky process pool owned by this backend (shut down by ``shutdown``).

    ``max_workers`` sizes the pool (None: the number of CPUs); ``idle_timeout`` is how long
    idle workers wait for work before loky stops them (the pool starts new ones on demand).
    """

    name = "loky"
    remote = True
    #: Step timeouts count from the step's start in its worker, here (the core skips its own).
    times_steps = True

    def __init__(self, max_workers: int | None = None, idle_timeout: float = 300.0) -> None:
        if max_workers is not None and (
            isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
        ):
            raise ExecutorError(
                f"LokyExecutor(max_workers={max_workers!r}): give a whole number >= 1 or None"
            )
        self.max_workers = max_workers or os.cpu_count() or 1
        self.idle_timeout = idle_timeout
        self._tokens = itertools.count(1)
        self._lock = threading.Lock()
        self._running: dict[Future[Outcome], _Call] = {}
        self._pool: Any = None
        self._logs: LogServer | None = None
        self._packer = Packer()
        fd, self._table_path = tempfile.mkstemp(prefix="sequent-loky-", suffix=".slots")
        os.ftruncate(fd, SLOTS * _SLOT.size)
        self._table = mmap.mmap(fd, SLOTS * _SLOT.size)
        os.close(fd)
        self._clock = Clock(self._check, name="sequent-loky-timeouts")
        self._closed = False
        self._died = 0  # the pid of the last worker found dead while it ran a step
        # How often each try of a step was stopped as a bystander (a step's rerun is a new
        # call), so a pool that keeps breaking fails it after RESUBMITS reruns.
        self._stops: dict[tuple[str, str, str, int], int] = {}

    def submit(self, task: Task, hosts: tuple[str, ...] | None = None) -> Future[Outcome]:
        """Run ``task`` in the pool; its death or a breakage of the pool becomes an outcome."""
        if self._closed:
            raise ExecutorError("the loky executor was shut down; create a new flow")
        call = _Call(task, self._packer.pack(task))
        with self._lock:
            self._running[call.outer] = call
        self._send(call)
        if task.timeout:
            self._clock.arm(time.monotonic() + task.timeout, call)
        return call.outer

    def kill(self, future: Future[Outcome]) -> bool:
        """Interrupt the step behind ``future`` in its worker (see the module docstring)."""
        with self._lock:
            call = self._running.get(future)
        if call is None or call.inner is None or self._closed:
            return False
        offset = (call.token % SLOTS) * _SLOT.size
        slot_token, pid, _, began = _SLOT.unpack_from(self._table, offset)
        if slot_token != call.token or pid <= 0:
            return call.inner.cancel()  # still queued in loky (or just finished)
        _SLOT.pack_into(self._table, offset, call.token, pid, 1, began)
        try:
            os.kill(pid, signal.SIGUSR1)
        except ProcessLookupError:
            return False
        # The step ends in its worker after it sent what it logged: wait for that (bounded),
        # so those lines are in its log before the core records its end.
        wait([call.inner], timeout=KILL_WAIT)
        return True

    def shutdown(self) -> None:
        """Stop the pool's workers (and what their steps started); remove the table."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pool, self._pool = self._pool, None
        self._clock.stop()
        if pool is not None:
            pool.shutdown(wait=True, kill_workers=True)
        if self._logs is not None:
            self._logs.close()
        self._table.close()
        try:
            os.unlink(self._table_path)
        except FileNotFoundError:
            pass

    # -- timeouts, counted from the step's start in its worker ------------------------------

    def _check(self, call: _Call) -> None:
        """A timed step's deadline may have come (the clock's thread): time it out, or arm
        the clock again, at its start in the table plus its timeout.

        A step not started yet cannot time out before its timeout from now; so a step waiting
        for a worker (or a cold pool) is checked once per timeout until it starts.
        """
        timeout = call.task.timeout or 0
        if call.outer.done() or self._closed:
            return
        slot_token, pid, _, began = _SLOT.unpack_from(self._table, self._offset(call))
        if slot_token != call.token or pid <= 0:
            self._clock.arm(time.monotonic() + timeout, call)
            return
        left = began + timeout - time.time()
        if left > 0:
            self._clock.arm(time.monotonic() + left, call)
            return
        error = f"TimeoutError: step {call.task.context.name!r} timed out after {timeout} s"
        call.expired = machine_failure(error, started=began, pid=pid)
        # Stopping it waits (bounded) for its worker to end it: not on the clock's thread.
        threading.Thread(target=self._expire, args=(call,), daemon=True).start()

    def _expire(self, call: _Call) -> None:
        self.kill(call.outer)
        with self._lock:
            self._running.pop(call.outer, None)
        if not call.outer.done() and call.expired is not None:
            call.outer.set_result(call.expired)

    @staticmethod
    def _offset(call: _Call) -> int:
        return (call.token % SLOTS) * _SLOT.size

    # -- internals --------------------------------------------------------------------------

    def _send(self, call: _Call) -> None:
        """Submit one try of ``call`` to the pool (a fresh one if the last one broke)."""
        call.token = next(self._tokens)
        for _ in range(2):
            pool = self._live_pool()
            try:
                call.inner = pool.submit(
                    _call, call.payload, call.token, self._table_path, self._logs_address()
                )
                break
            except (BrokenProcessPool, ShutdownExecutorError, RuntimeError):
                continue  # it broke between the check and the submit: take a new one
        else:
            self._settle(call, None)
            return
        call.inner.add_done_callback(lambda done: self._settle(call, done))

    def _logs_address(self) -> str:
        with self._lock:
            if self._logs is None:
                self._logs = LogServer().start()
            return self._logs.address

    def _live_pool(self) -> Any:
        with self._lock:
            if self._closed:
                raise ExecutorError("the loky executor was shut down; create a new flow")
            pool = self._pool
            if pool is None or pool._flags.broken or pool._flags.shutdown:
                if pool is not None:
                    pool.shutdown(wait=False)
                pool = self._pool = ProcessPoolExecutor(
                    max_workers=self.max_workers,
                    timeout=self.idle_timeout,
                    initializer=_bind_to_orchestrator,
                    initargs=(os.getpid(),),
                )
            return pool

    def _settle(self, call: _Call, done: Future[Any] | None) -> None:
        """Resolve the step's future, or resubmit it if a broken pool stopped it as a bystander.

        Runs in loky's thread while it fails the futures of a broken pool, before it kills the
        remaining workers: a worker still alive then is not the one that died.
        """
        error = None if done is None else _broken(done)
        if call.expired is not None:
            error = None  # it timed out: that is its outcome, whatever loky says
        if error is not None and not self._closed and call.resubmits < RESUBMITS:
            dead = self._dead_worker(call)
            if dead:
                self._died = dead
                if self._logs is not None:
                    self._logs.drain(dead)  # what it logged before it died goes to its log first
            elif self._began(call):
                # Its body ran, in a worker loky stopped: that start is a try of its own in the
                # record (a failure the core reruns at once, not counted against retries).
                with self._lock:
                    self._running.pop(call.outer, None)
                if not call.outer.done():
                    call.outer.set_result(self._stopped(call, error))
                return
            else:
                call.resubmits += 1
                key = NodeKey(call.task.context.name, call.task.context.sequence)
                log.warning(
                    "[ Step %s ] loky dropped it before it started because another of its "
                    "workers died (%s); resubmitted to a fresh pool",
                    key,
                    _first_line(error),
                    extra={"sequent_node": key},
                )
                threading.Thread(target=self._send, args=(call,), daemon=True).start()
                return
        with self._lock:
            self._running.pop(call.outer, None)
        if not call.outer.done():
            call.outer.set_result(call.expired or _outcome(done, call))

    def _began(self, call: _Call) -> bool:
        """True when ``call``'s body started in a worker (its slot holds its token)."""
        slot_token, pid, _, _ = _SLOT.unpack_from(self._table, self._offset(call))
        return bool(slot_token == call.token and pid > 0)

    def _stopped(self, call: _Call, error: BaseException) -> Outcome:
        """The failed try of a bystander loky stopped: where it ran, which worker died."""
        _, pid, _, began = _SLOT.unpack_from(self._table, self._offset(call))
        with self._lock:
            others = [other for other in self._running.values() if other is not call]
        culprit = next((dead for dead in map(self._dead_worker, others) if dead), self._died)
        which = f"worker pid {culprit}" if culprit else "another worker"
        context = call.task.context
        why = (
            f"WorkerStopped: loky stopped step {context.name!r} (sequence {context.sequence}) "
            f"in its worker pid {pid} because {which} of the pool died ({_first_line(error)})"
        )
        step = (context.run_id, context.name, context.sequence, context.retry)
        stops = self._stops[step] = self._stops.get(step, 0) + 1
        if stops > RESUBMITS:
            why += f"; it was stopped so {stops} times and is not rerun again"
            return machine_failure(why, started=began, pid=pid)
        failure = machine_failure(why, started=began, pid=pid)
        return StoppedTry(**attrs.asdict(failure, recurse=False))

    def _dead_worker(self, call: _Call) -> int:
        """The pid of the worker that was running ``call`` if it died (it broke the pool),
        else 0."""
        slot_token, pid, _, _ = _SLOT.unpack_from(self._table, self._offset(call))
        if slot_token != call.token or pid <= 0:
            return 0  # it had not started (or had finished): it was not running
        return 0 if _running_child(pid) else pid


def _running_child(pid: int) -> bool:
    """True while ``pid``, a worker process started here, has not exited (a zombie has)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
    except ChildProcessError:
        return False  # already reaped by loky: it died
    except (AttributeError, OSError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _broken(done: Future[Any]) -> BaseException | None:
    """The pool's breakage that failed ``done``, or None when it ended otherwise."""
    if done.cancelled():
        return None
    error = done.exception()
    return error if isinstance(error, BrokenProcessPool) else None


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _outcome(done: Future[Any] | None, call: _Call) -> Outcome:
    """The step's outcome, or a failure saying how the machinery failed it."""
    context = call.task.context
    try:
        if done is None:
            raise BrokenProcessPool("no loky pool would take the step")
        outcome: Outcome = pickle.loads(done.result())
        return outcome
    except CancelledError:
        why = "StepKilled: it was cancelled before it started"
    except BrokenProcessPool as exc:
        why = (
            f"WorkerDied: the loky worker process running step {context.name!r} "
            f"(sequence {context.sequence}) died ({' '.join(str(exc).split())})"
        )
        if call.resubmits:
            why += f"; it had been resubmitted {call.resubmits} times after other workers died"
    except BaseException as exc:  # noqa: BLE001 - the machinery's failure is the step's
        why = f"WorkerError: {describe(exc)}"
    return machine_failure(why, started=call.started)


# -- the worker's side --------------------------------------------------------------------

_tables: dict[str, mmap.mmap] = {}
_current: list[Any] = [None]  # (table, offset, token, step id) of the call running here


def _bind_to_orchestrator(orchestrator: int) -> None:
    """The pool's initializer: end this worker (and its programs) when the orchestrator dies.

    A thread waits on a pidfd of the orchestrator (Linux 5.3+), or checks the parent pid
    twice a second elsewhere, then SIGKILLs the step's program groups and this worker.
    """
    if os.getppid() != orchestrator:
        _die()
    try:
        watch: int | None = os.pidfd_open(orchestrator)
    except (AttributeError, OSError):
        watch = None
    if os.getppid() != orchestrator:  # it died before the pidfd was opened
        _die()

    def wait() -> None:
        if watch is not None:
            select.select([watch], [], [])
        else:
            while os.getppid() == orchestrator:
                time.sleep(0.5)
        _die()

    threading.Thread(target=wait, name="sequent-orchestrator-watch", daemon=True).start()


def _die() -> None:
    kill_programs()
    os.kill(os.getpid(), signal.SIGKILL)


def _call(payload: bytes, token: int, table_path: str, log_address: str | None = None) -> bytes:
    """Run one step in a loky worker, registered so the orchestrator can interrupt it.

    Its log records stream to the orchestrator's log server at ``log_address`` as they are
    logged. Returns the pickled outcome (plain pickle where it suffices: cheaper than loky's).
    """
    table = _tables.get(table_path)
    if table is None:
        with open(table_path, "r+b") as handle:
            table = _tables[table_path] = mmap.mmap(handle.fileno(), SLOTS * _SLOT.size)
        signal.signal(signal.SIGUSR1, _on_sigusr1)
    offset = (token % SLOTS) * _SLOT.size
    task = unpack(payload)
    context = task.context
    step = (context.run_id, context.name, context.sequence, context.retry)
    export_environ(task)
    sender = LogSender.to(log_address)
    sink = sender.sink(context) if sender is not None else None
    _SLOT.pack_into(table, offset, token, os.getpid(), 0, time.time())
    _current[0] = (table, offset, token, step)
    try:
        outcome = execute(task, exported=True, sink=sink)
    finally:
        _current[0] = None
        _SLOT.pack_into(table, offset, 0, 0, 0, 0.0)
        if sender is not None:
            sender.finish()
    return pack_outcome(outcome)


def _on_sigusr1(signum: int, frame: Any) -> None:
    running = _current[0]
    if running is None:
        return
    table, offset, token, step = running
    slot_token, _, kill, _ = _SLOT.unpack_from(table, offset)
    if slot_token == token and kill:
        _current[0] = None
        kill_programs(step)
        raise StepKilled(f"step {step[1]!r} was stopped on request (a timeout or interruption)")


LokyBackend = LokyExecutor  # the name before 0.2

__all__ = ["LokyExecutor", "StepKilled"]
