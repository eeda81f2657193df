"""The worker-side wrapper: run one step call and return its outcome as data; never raise.

Runs wherever the executor runs the step (the calling thread, a pool thread, a worker process,
a Dask worker). Log records the step emits are captured when the step runs in another process,
and travel back inside the outcome so the orchestrator can write them to the run's logs.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ..context import StepContext, current, entered
from ..status import StepStatus

HOST = socket.gethostname()


@attrs.frozen
class Task:
    """One step call: what to call, with what, as which step instance."""

    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    context: StepContext
    remote: bool = False
    #: The step's ``timeout`` in seconds, for executors that time steps themselves from their
    #: start on a worker (``times_steps``); None: no timeout.
    timeout: float | None = None


@attrs.frozen
class Outcome:
    """What came of one step call: ``status`` is success or failure; ``logs`` are record dicts."""

    status: StepStatus
    value: Any = None
    error: str | None = None
    traceback: str | None = None
    started: float = 0.0
    ended: float = 0.0
    pid: int = 0
    host: str = HOST
    logs: tuple[dict[str, Any], ...] = ()
    #: The Dask worker that ran the step (its name and address), where there is one.
    worker: str | None = None


@attrs.frozen
class StoppedTry(Outcome):
    """A failed try that the machinery stopped through no fault of the step (loky stopped it
    because another worker of its pool died): recorded as a failure, then run again at once
    with the same try number, not counted against ``retries``."""


class _Capture:
    """The records one step emits in a worker process, as plain picklable dicts.

    They are kept (to travel inside the outcome), or handed to ``sink`` as they are logged.
    """

    def __init__(self, sink: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.records: list[dict[str, Any]] = []
        self.sink = sink if sink is not None else self.records.append

    def add(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not fail the step
            message = str(record.msg)
        exc_text = None
        if record.exc_info:
            exc_text = "".join(traceback.format_exception(*record.exc_info))
        self.sink(
            {
                "name": record.name,
                "levelno": record.levelno,
                "levelname": record.levelname,
                "msg": message,
                "created": record.created,
                "msecs": record.msecs,
                "exc_text": exc_text,
                "process": record.process,
                "threadName": record.threadName,
            }
        )


class _Router(logging.Handler):
    """One handler on the root logger of a worker process, whatever the number of steps in it.

    Each record goes to the capture of the step it was logged in (the step context of the
    logging thread); a record logged outside any step (a thread a step started itself) goes to
    every step running in the process. While at least one step runs, the root logger's level
    is DEBUG (so nothing a step logs is dropped before it reaches this handler); it is put back
    when the last running step ends, never in the middle of another step's run.
    """

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.captures: dict[int, _Capture] = {}
        self.guard = threading.Lock()
        self.saved_level = logging.NOTSET

    def emit(self, record: logging.LogRecord) -> None:
        running = current()
        capture = self.captures.get(id(running)) if running is not None else None
        if capture is not None:
            capture.add(record)
        elif running is None:
            for each in list(self.captures.values()):
                each.add(record)

    def start(
        self, context: StepContext, sink: Callable[[dict[str, Any]], None] | None = None
    ) -> _Capture:
        capture = _Capture(sink)
        root = logging.getLogger()
        with self.guard:
            if not self.captures:
                for inherited in [h for h in root.handlers if getattr(h, ORCHESTRATOR, False)]:
                    root.removeHandler(inherited)  # a forked worker's copy of the run's logs
                root.addHandler(self)
                self.saved_level = root.level
                if root.level != logging.DEBUG:
                    root.setLevel(logging.DEBUG)
            self.captures[id(context)] = capture
        return capture

    def end(self, context: StepContext) -> None:
        root = logging.getLogger()
        with self.guard:
            self.captures.pop(id(context), None)
            if not self.captures:
                root.removeHandler(self)
                if root.level != self.saved_level:
                    root.setLevel(self.saved_level)


_ROUTER = _Router()

#: The attribute that marks the orchestrator's own log handlers (``logs.RunLogging``). A worker
#: process forked while a run goes on inherits them; its steps' records travel back instead.
ORCHESTRATOR = "sequent_orchestrator"


def execute(
    task: Task,
    *,
    exported: bool = False,
    environ: bool | None = None,
    sink: Callable[[dict[str, Any]], None] | None = None,
) -> Outcome:
    """Call ``task.func(*task.args, **task.kwargs)`` as ``task.context``; return its Outcome.

    ``exported``: the caller (a dedicated worker process) has put the step's variables in the
    environment already, so they are neither set nor restored here. ``environ``: whether to
    export them around the call (default: for a remote step not ``exported``); a worker process
    that runs several steps at once in threads passes False, since ``os.environ`` is shared by
    all of them (its program steps still get their own variables, in the child's environment).
    ``sink``: where a remote step's log records go as they are logged (by default they travel
    inside the outcome).
    """
    if environ is None:
        environ = task.remote and not exported
    capture = _ROUTER.start(task.context, sink) if task.remote else None
    started = time.time()
    try:
        with entered(task.context, set_environ=environ):
            value = task.func(*task.args, **task.kwargs)
        status, error, trace = StepStatus.success, None, None
    except BaseException as exc:  # noqa: BLE001 - every way a step ends is an outcome
        if isinstance(exc, KeyboardInterrupt) and not task.remote:
            raise
        value = None
        status = StepStatus.failure
        error = describe(exc)
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    finally:
        if capture is not None:
            _ROUTER.end(task.context)
    logs = tuple(capture.records) if capture is not None else ()
    if task.remote and status is StepStatus.success:
        value, error = _sendable(value)
        if error is not None:
            status = StepStatus.failure
    return Outcome(
        status=status,
        value=value,
        error=error,
        traceback=trace,
        started=started,
        ended=time.time(),
        pid=os.getpid(),
        host=HOST,
        logs=logs,
    )


def dumps(value: Any) -> bytes:
    """Pickle ``value`` for a worker: plain pickle when it is enough, else cloudpickle.

    Plain pickle sends functions by reference; cloudpickle is needed for what the worker
    cannot import by name (functions and classes of the main script, lambdas, closures).
    """
    import cloudpickle

    if not cloudpickle.list_registry_pickle_by_value():
        try:
            data: bytes = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        except Exception:
            pass
        else:
            if b"__main__" not in data:
                return data
    data = cloudpickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    return data


_exported: dict[str, str] = {}


def export_environ(task: Task) -> None:
    """Put the step context's variables in a dedicated worker's environment, and leave them.

    Only the variables that differ from the previous step's (typically the step name and
    sequence) are written; the step then runs with ``execute(task, exported=True)``.
    """
    env = task.context.environ()
    changed = {key: value for key, value in env.items() if _exported.get(key) != value}
    if changed:
        os.environ.update(changed)
        _exported.update(changed)


def describe(exc: BaseException) -> str:
    """``Type: message`` for an exception, even one whose ``__str__`` raises."""
    try:
        text = str(exc)
    except Exception as inner:  # noqa: BLE001 - the step's exception is what matters
        text = f"<the exception's __str__ raised {type(inner).__name__}>"
    return f"{type(exc).__name__}: {text}"


def machine_failure(
    error: BaseException | str, started: float | None = None, pid: int = 0, host: str = HOST
) -> Outcome:
    """The outcome of a step whose machinery failed (a worker died, a future broke, a result
    could not be read): a failure with ``error`` (an exception, shown as ``Type: message``),
    ending now. Every backend turns such failures into outcomes with this one helper."""
    if isinstance(error, BaseException):
        error = f"{type(error).__name__}: {error}"
    now = time.time()
    return Outcome(
        status=StepStatus.failure,
        error=error,
        started=now if started is None else started,
        ended=now,
        pid=pid,
        host=host,
    )


def _sendable(value: Any) -> tuple[Any, str | None]:
    """The value itself if it can travel back to the orchestrator, else an error saying why."""
    try:
        pickle.dumps(value)
    except Exception as exc:
        return None, (
            f"the step returned a {type(value).__name__} that cannot be sent back from the "
            f"worker process ({describe(exc)}); return plain data instead"
        )
    return value, None
