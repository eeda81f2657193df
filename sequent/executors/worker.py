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


class _Capture(logging.Handler):
    """Collects the records a step emits in a worker process, as plain picklable dicts.

    Where one worker process runs several steps at once (a Dask worker with several threads),
    a record logged inside another step's context is left to that step's capture.
    """

    def __init__(self, context: StepContext) -> None:
        super().__init__(logging.NOTSET)
        self.context = context
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        running = current()
        if running is not None and running is not self.context:
            return
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not fail the step
            message = str(record.msg)
        exc_text = None
        if record.exc_info:
            exc_text = "".join(traceback.format_exception(*record.exc_info))
        self.records.append(
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


def execute(task: Task, *, exported: bool = False) -> Outcome:
    """Call ``task.func(*task.args, **task.kwargs)`` as ``task.context``; return its Outcome.

    ``exported``: the caller (a dedicated worker process) has put the step's variables in the
    environment already, so they are neither set nor restored here.
    """
    capture = None
    root = logging.getLogger()
    saved_level = root.level
    if task.remote:
        capture = _Capture(task.context)
        root.addHandler(capture)
        if saved_level != logging.DEBUG:
            root.setLevel(logging.DEBUG)
    started = time.time()
    try:
        with entered(task.context, set_environ=task.remote and not exported):
            value = task.func(*task.args, **task.kwargs)
        status, error, trace = StepStatus.success, None, None
    except BaseException as exc:  # noqa: BLE001 - every way a step ends is an outcome
        if isinstance(exc, KeyboardInterrupt) and not task.remote:
            raise
        value = None
        status = StepStatus.failure
        error = f"{type(exc).__name__}: {exc}"
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    finally:
        if capture is not None:
            root.removeHandler(capture)
            if saved_level != logging.DEBUG:
                root.setLevel(saved_level)
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


def _sendable(value: Any) -> tuple[Any, str | None]:
    """The value itself if it can travel back to the orchestrator, else an error saying why."""
    try:
        pickle.dumps(value)
    except Exception as exc:
        return None, (
            f"the step returned a {type(value).__name__} that cannot be sent back from the "
            f"worker process ({type(exc).__name__}: {exc}); return plain data instead"
        )
    return value, None
