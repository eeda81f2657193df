"""The process backend (the default): a warm pool of worker processes, one step at a time each.

    orchestrator                                        worker process (its own session)
    ────────────                                        ────────────────────────────────
    submit(task) ──> an idle worker? ──cloudpickle──> pipe ──> execute(task) ──> Outcome
                     else start one, or queue                                      │
    reader thread <── selector(pipes, sentinels) <─────────────── pickled Outcome ─┘
       │  resolves the step's Future, hands the worker the next queued task
       └─ a sentinel fired: the worker died; only its step fails ("the worker process
          ... died: killed by signal SIGKILL"), the worker is dropped and replaced on demand

Why not ``concurrent.futures.ProcessPoolExecutor``: when one of its workers dies it marks the
whole pool broken and fails every step in flight. Here each worker has its own pipe and runs
one step at a time, so a death (``os._exit``, SIGKILL, a segfault) or a kill on timeout touches
only that worker's step.

Workers call ``os.setsid()``: each is the leader of its own process group, so ``kill`` (a step
timeout or an interruption) signals the whole group. The worker's SIGTERM handler first
SIGKILLs the groups of ``seq.Program`` children (they run in sessions of their own), then its
own group; SIGKILL follows after ``kill_grace`` seconds for a worker stuck in C code.

Start methods: ``zygote`` (the default where the platform forks) starts workers from a
single-threaded process (``zygote.py``): a copy of the orchestrator made when the executor is
created, or a fresh interpreter importing only sequent when threads exist by then. No worker is
forked from a threaded process (Python 3.12+ warns about that, rightly: a lock held by another
thread stays held in the child), and none imports the main script, so a script without an
``if __name__ == "__main__":`` guard runs flows, as the original library's examples do.
Payloads travel with cloudpickle, so functions defined in ``__main__`` and lambdas work with
every start method. ``fork`` forks the orchestrator itself (its first workers before the reader
thread exists, later ones from a threaded process); ``spawn`` and ``forkserver`` start clean
interpreters that import the main script again: such a script needs the guard.

A timed step's worker announces its start on its pipe; the reader arms the step's deadline from
then and kills the worker's group at it (``times_steps``): a step waiting for a free worker or
a starting one does not use up its timeout.

Mutates only its own pool state, under one lock shared by the submitting thread and the reader.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import pickle
import selectors
import signal
import sys
import threading
import time
import weakref
from collections import deque
from concurrent.futures import Future
from multiprocessing import connection
from typing import Any

from ..errors import ExecutorError
from .logstream import LogServer
from .payload import Packer
from .process_worker import STARTED, TIMED, pack_outcome, serve
from .worker import Outcome, Task, describe, dumps, export_environ, machine_failure
from .zygote import Zygote

log = logging.getLogger("sequent")


def default_start_method() -> str:
    """``zygote`` where the platform can fork (Linux, BSD), else ``spawn``."""
    return "zygote" if "zygote" in start_methods() else "spawn"


def start_methods() -> list[str]:
    """The start methods of this platform: multiprocessing's, and ``zygote`` where it forks."""
    methods = multiprocessing.get_all_start_methods()
    return ["zygote", *methods] if "fork" in methods and sys.platform != "darwin" else methods


class _Job:
    __slots__ = ("payload", "future", "context", "sent", "timeout", "began", "deadline")

    def __init__(self, payload: bytes, future: Future[Outcome], task: Task) -> None:
        self.timeout = task.timeout
        # A timed step's worker announces its start; its deadline counts from then.
        self.payload = TIMED + payload if task.timeout else payload
        self.future = future
        self.context = task.context
        self.sent = 0.0
        self.began = 0.0  # when its worker announced the start (time.time())
        self.deadline = 0.0  # then: when it times out (time.monotonic()); 0: not started


class _Worker:
    __slots__ = ("process", "conn", "job", "killed")

    def __init__(self, process: Any, conn: connection.Connection) -> None:
        self.process = process
        self.conn = conn
        self.job: _Job | None = None
        self.killed = False


class ProcessExecutor:
    """Steps run in a warm pool of worker processes; a dead worker fails only its own step.

    ``max_workers`` caps the pool (None: it grows to what the run needs); ``start_method`` is a
    multiprocessing start method (default ``fork`` where available); ``kill_grace`` is how long
    a killed worker gets between SIGTERM and SIGKILL. Raises ``ExecutorError`` for an unknown
    start method or a pool size below 1.
    """

    name = "process"
    remote = True
    #: Step timeouts count from the worker's start of the step, here (the core skips its own).
    times_steps = True

    def __init__(
        self,
        max_workers: int | None = None,
        start_method: str | None = None,
        kill_grace: float = 1.0,
    ) -> None:
        if max_workers is not None and (
            isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
        ):
            raise ExecutorError(
                f"ProcessExecutor(max_workers={max_workers!r}): give a whole number >= 1 or None"
            )
        method = start_method or default_start_method()
        if method not in start_methods():
            raise ExecutorError(
                f"start method {method!r} is not available here; choose one of "
                f"{start_methods()}"
            )
        self.max_workers = max_workers
        self.start_method = method
        self.kill_grace = kill_grace
        # The zygote is forked now, while this process likely runs one thread (see zygote.py).
        self._zygote = Zygote() if method == "zygote" else None
        if self._zygote is not None:  # an executor dropped unused still ends its zygote
            weakref.finalize(self, self._zygote.stop)
        self._context: Any = multiprocessing.get_context(None if self._zygote else method)
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._queue: deque[_Job] = deque()
        self._reader: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._logs: LogServer | None = None
        self._packer = Packer()
        self._closed = False

    # -- the orchestrator's side ------------------------------------------------------------

    def submit(self, task: Task, hosts: tuple[str, ...] | None = None) -> Future[Outcome]:
        """Send ``task`` to an idle worker (starting one if the pool may grow) or queue it."""
        future: Future[Outcome] = Future()
        job = _Job(self._packer.pack(task), future, task)
        with self._lock:
            if self._closed:
                raise ExecutorError("the process executor was shut down; create a new flow")
            if self._reader is None:
                self._start_pool()
            worker = next((w for w in self._workers if w.job is None and not w.killed), None)
            if worker is None and (self.max_workers is None or self._busy() < self.max_workers):
                worker = self._spawn()
                self._wake()
            self._queue.append(job)
            if worker is not None:
                self._feed(worker)
        return future

    def kill(self, future: Future[Outcome]) -> bool:
        """Stop the step behind ``future``: drop it if queued, else kill its worker's group.

        Waits until the worker is gone and reaped: at most ``kill_grace`` seconds after the
        SIGTERM (a worker stuck in C code), then SIGKILL.
        """
        with self._lock:
            for job in self._queue:
                if job.future is future:
                    self._queue.remove(job)
                    return future.cancel()
            worker = next((w for w in self._workers if w.job and w.job.future is future), None)
            if worker is None or worker.killed:
                return False
            self._stop(worker)
            self._wake()
            return True

    def shutdown(self) -> None:
        """Stop every worker (idle ones exit at once, busy ones are killed) and the reader."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            queued, self._queue = list(self._queue), deque()
            self._wake()
        for job in queued:
            job.future.cancel()
        if self._reader is not None:
            self._reader.join()
        for worker in self._workers:
            worker.conn.close()  # an idle worker reads end-of-file and exits
            if worker.job is not None:
                _signal_group(worker.process, signal.SIGTERM)
        for worker in self._workers:
            worker.process.join(self.kill_grace)
            if worker.process.exitcode is None:
                _signal_group(worker.process, signal.SIGKILL)
                worker.process.join()
            worker.process.close()
            if worker.job is not None:
                stopped = "the executor was shut down while it ran"
                self._resolve(worker.job, _failure(worker.job, "WorkerError", stopped))
        self._workers.clear()
        if self._zygote is not None:
            self._zygote.stop()
        os.close(self._wake_r)
        os.close(self._wake_w)
        if self._logs is not None:
            self._logs.close()
        atexit.unregister(self.shutdown)

    # -- pool internals (called with the lock held) -----------------------------------------

    def _stop(self, worker: _Worker) -> None:
        """Kill a busy worker's group and reap it: SIGTERM, SIGKILL after ``kill_grace``."""
        worker.killed = True
        process = worker.process
        _signal_group(process, signal.SIGTERM)
        # Reap it here: an orchestrator that exits right after an interruption must not
        # leave a zombie behind (an init that does not reap would keep it for good).
        process.join(self.kill_grace)
        if process.exitcode is None:  # stuck where the SIGTERM handler cannot run
            _signal_group(process, signal.SIGKILL)
            process.join()
        self._drain(process.pid)  # what it logged before is in its log before its end

    def _busy(self) -> int:
        return sum(1 for w in self._workers if w.job is not None or w.killed)

    def _start_pool(self) -> None:
        """Start the first workers, then the reader and log threads (so they fork a process
        of one thread)."""
        self._logs = LogServer()
        for _ in range(self.max_workers or min(os.cpu_count() or 1, 4)):
            self._spawn()
        self._logs.start()
        atexit.register(self.shutdown)  # before multiprocessing joins its children at exit
        self._reader = threading.Thread(target=self._read, name="sequent-process-reader")
        self._reader.daemon = True
        self._reader.start()

    def _spawn(self) -> _Worker:
        if self._zygote is not None:
            ours, theirs = connection.Pipe(duplex=True)
            try:
                try:
                    child = self._zygote.spawn(theirs, self._log_address)
                except OSError:  # the zygote was killed: a new one (now a fresh interpreter)
                    self._zygote.stop()
                    self._zygote = Zygote()
                    child = self._zygote.spawn(theirs, self._log_address)
            finally:
                theirs.close()
            worker = _Worker(child, ours)
            self._workers.append(worker)
            return worker
        ours, theirs = self._context.Pipe(duplex=True)
        inherited: tuple[int, ...] = ()
        if self.start_method == "fork":  # the child must not hold its siblings' pipe ends
            siblings = (w.conn.fileno() for w in self._workers)
            inherited = (self._wake_r, self._wake_w, ours.fileno(), *siblings, *self._log_fds)
        # Linux ties a worker's parent-death signal to the thread that starts it. The main
        # thread lasts as long as the process and the reader thread as long as the pool; a
        # worker started by another thread would be killed when that thread ends, failing a
        # step just sent to it, so such workers notice the orchestrator's death at end-of-file.
        starter = threading.current_thread()
        watch = starter is threading.main_thread() or starter is self._reader
        process = self._context.Process(
            target=serve,
            args=(
                theirs,
                0 if self.start_method == "forkserver" else os.getpid(),
                inherited,
                watch,
                self._log_address,
            ),
            name="sequent-worker",
            daemon=False,
        )
        process.start()
        theirs.close()
        worker = _Worker(process, ours)
        self._workers.append(worker)
        return worker

    @property
    def _log_address(self) -> str | None:
        """Where workers send their steps' log records as they are logged."""
        return self._logs.address if self._logs is not None else None

    @property
    def _log_fds(self) -> tuple[int, ...]:
        return self._logs.fds() if self._logs is not None else ()

    def _drain(self, pid: int | None) -> None:
        if self._logs is not None and pid:
            self._logs.drain(pid)

    def _feed(self, worker: _Worker) -> None:
        """Give an idle worker the oldest queued job that was not cancelled."""
        while self._queue:
            job = self._queue.popleft()
            if job.future.set_running_or_notify_cancel():
                worker.job = job
                job.sent = time.time()
                try:
                    worker.conn.send_bytes(job.payload)
                except OSError:
                    pass  # the worker just died; the reader sees its sentinel and fails the job
                return

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # the reader has wake-ups pending already

    # -- the reader thread ------------------------------------------------------------------

    def _read(self) -> None:
        """Resolve futures as outcomes arrive and workers die, until shutdown.

        Only this thread touches the selector: it registers new workers at the top of each
        round (``_wake`` makes it go round) and unregisters the ones it buries.
        """
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ, None)
        watched: set[_Worker] = set()
        try:
            while True:
                with self._lock:
                    if self._closed:
                        return
                    for worker in self._workers:
                        if worker not in watched:
                            watched.add(worker)
                            selector.register(worker.conn, selectors.EVENT_READ, worker)
                            selector.register(worker.process.sentinel, selectors.EVENT_READ, worker)
                events = selector.select(self._next_deadline())
                done: list[tuple[_Job, Outcome]] = []
                with self._lock:
                    if self._closed:
                        return
                    for key, _ in events:
                        worker = key.data
                        if worker is None:
                            os.read(self._wake_r, 4096)
                        elif worker in watched:
                            if key.fileobj is worker.conn and not worker.killed:
                                if self._receive(worker, done):
                                    continue
                            watched.discard(worker)
                            selector.unregister(worker.conn)
                            selector.unregister(worker.process.sentinel)
                            self._bury(worker, done)
                    self._expire(done)
                for job, outcome in done:
                    self._resolve(job, outcome)
        finally:
            selector.close()

    def _next_deadline(self) -> float | None:
        """Seconds until the first timed step's deadline (None: no step is timed)."""
        deadlines = [w.job.deadline for w in self._workers if w.job and w.job.deadline]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _expire(self, done: list[tuple[_Job, Outcome]]) -> None:
        """Kill the workers whose steps ran past their timeout; those steps time out."""
        now = time.monotonic()
        for worker in self._workers:
            job = worker.job
            if job is None or not job.deadline or job.deadline > now or worker.killed:
                continue
            self._stop(worker)  # its sentinel fires next: the reader buries it then
            error = f"TimeoutError: step {job.context.name!r} timed out after {job.timeout} s"
            done.append((job, machine_failure(error, started=job.began, pid=worker.process.pid)))

    def _receive(self, worker: _Worker, done: list[tuple[_Job, Outcome]]) -> bool:
        """Take the outcome the worker sent and give it the next job; False if it is dead.

        A timed step's worker first announces its start: its deadline counts from then.
        """
        try:
            data = worker.conn.recv_bytes()
        except (EOFError, OSError):
            return False
        if data == STARTED and worker.job is not None:
            worker.job.began = time.time()
            worker.job.deadline = time.monotonic() + (worker.job.timeout or 0)
            return True
        finished, worker.job = worker.job, None
        if finished is not None:
            done.append((finished, _loads(data, finished)))
        self._feed(worker)
        return True

    def _bury(self, worker: _Worker, done: list[tuple[_Job, Outcome]]) -> None:
        """Drop a dead (or dying) worker and what is left of its group; fail its step."""
        process = worker.process
        process.join(0.1)
        if process.exitcode is None:  # it closed its pipe but lingers
            _signal_group(process, signal.SIGKILL)
            process.join()
        _signal_group(process, signal.SIGKILL)  # children its step left in the group
        self._drain(process.pid)
        job = worker.job
        while job is not None and not worker.killed and worker.conn.poll():
            try:  # it sent its outcome just before it died: the step itself finished
                data = worker.conn.recv_bytes()
            except (EOFError, OSError):
                break
            if data != STARTED:
                done.append((job, _loads(data, job)))
                job = None
        if job is not None:
            if worker.killed:
                kind, why = "WorkerKilled", "stopped on request (a timeout or an interruption)"
            else:
                kind = "WorkerDied"
                why = f"the worker process (pid {process.pid}) running it died: "
                why += _exit_text(process.exitcode)
            done.append((job, _failure(job, kind, why, pid=process.pid or 0)))
        worker.conn.close()
        process.close()
        self._workers.remove(worker)
        while self._queue and (self.max_workers is None or self._busy() < self.max_workers):
            self._feed(self._spawn())

    @staticmethod
    def _resolve(job: _Job, outcome: Outcome) -> None:
        if not job.future.done():
            job.future.set_result(outcome)


def _loads(data: bytes, job: _Job) -> Outcome:
    try:
        outcome: Outcome = pickle.loads(data)
    except Exception as exc:
        why = f"its outcome could not be read in the orchestrator ({describe(exc)})"
        return _failure(job, "WorkerError", why)
    return outcome


def _failure(job: _Job, kind: str, why: str, pid: int = 0) -> Outcome:
    context = job.context
    error = f"{kind}: step {context.name!r} (sequence {context.sequence}) failed: {why}"
    return machine_failure(error, started=job.began or job.sent or None, pid=pid)


def _exit_text(code: int | None) -> str:
    if code is None:
        return "it did not exit"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name} ({-code})"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _signal_group(process: Any, signum: int) -> None:
    """Signal a worker's process group, or the worker alone before it became a group leader.

    The worker itself is signalled only while it has not been reaped (``exitcode`` is None),
    so its pid cannot belong to another process by then.
    """
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        if process.exitcode is None:
            try:
                os.kill(process.pid, signum)
            except ProcessLookupError:
                pass
    except PermissionError:
        pass


ProcessBackend = ProcessExecutor  # the name before 0.2

__all__ = [
    "ProcessExecutor",
    "default_start_method",
    "dumps",
    "export_environ",
    "pack_outcome",
]
