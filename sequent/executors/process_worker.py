"""The process backend's worker: a loop that runs the steps its orchestrator sends, one at a time.

Started by ``ProcessExecutor`` (``process.py``) in a process of its own session; what it owes
the orchestrator is described there. Mutates only its own process: environment, signal
handlers, the root logger's handlers.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
from collections.abc import Callable
from multiprocessing import connection
from typing import Any

from ..program import kill_programs
from .logstream import LogSender
from .payload import unpack
from .worker import Outcome, describe, dumps, execute, export_environ, machine_failure

#: The first byte of a timed step's message; its worker answers ``STARTED`` as it begins it.
TIMED = b"T"
STARTED = b"S"


def serve(
    conn: connection.Connection,
    parent: int,
    inherited: tuple[int, ...] = (),
    watch: bool = True,
    log_address: str | None = None,
) -> None:
    """A worker's life: run the steps that arrive on ``conn``, one at a time, until EOF.

    It ends with the orchestrator: at end-of-file between steps, and (on Linux, when ``watch``)
    through a SIGTERM the kernel sends when the orchestrator dies, even by SIGKILL, in the
    middle of one.
    """
    for fd in inherited:
        try:
            os.close(fd)
        except OSError:
            pass
    os.setsid()
    _reset_process_state()
    if watch:
        _term_with_parent()
    if parent and os.getppid() != parent:  # the orchestrator died before that took effect
        return
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            if data[:1] == TIMED:  # its timeout counts from its start: say when
                outcome = _run_one(data[1:], log_address, lambda: conn.send_bytes(STARTED))
            else:
                outcome = _run_one(data, log_address)
            conn.send_bytes(pack_outcome(outcome))
        except OSError:
            return


def _run_one(
    data: bytes, log_address: str | None = None, starting: Callable[[], None] | None = None
) -> Outcome:
    """Unpack and run one step in a worker; whatever happens becomes its outcome.

    Its log records stream to the orchestrator's log server at ``log_address`` as they are
    logged (inside the outcome where there is none). ``starting`` is called as its body is
    about to run (unpacked, what it imports loaded, its log stream open).
    """
    try:
        task = unpack(data)
    except Exception as exc:
        return machine_failure(
            f"WorkerError: the step could not be unpacked in the worker process "
            f"({describe(exc)}); with start_method 'spawn' or 'forkserver' "
            f"what it uses must be importable there",
            pid=os.getpid(),
        )
    sender = LogSender.to(log_address)
    try:
        export_environ(task)
        sink = sender.sink(task.context) if sender is not None else None
        if starting is not None:
            starting()
        return execute(task, exported=True, sink=sink)
    except Exception as exc:  # noqa: BLE001 - the wrapper's own failure is the step's
        return machine_failure(f"WorkerError: {describe(exc)}", pid=os.getpid())
    finally:
        if sender is not None:
            sender.finish()


def pack_outcome(outcome: Outcome) -> bytes:
    """Pickle ``outcome`` for the orchestrator; one that cannot be becomes a plain failure."""
    try:
        return dumps(outcome)
    except Exception as exc:  # noqa: BLE001 - never lose the step's end
        error = f"WorkerError: the step's outcome cannot be sent back ({describe(exc)})"
        return pickle.dumps(machine_failure(error, started=outcome.started, pid=os.getpid()))


def _reset_process_state() -> None:
    """Forget what a forked worker inherited: log handlers, signal handlers.

    Records a step logs are captured by ``execute`` and written by the orchestrator, so the
    worker must not also write them through inherited handlers.
    """
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        if isinstance(logger, logging.Logger):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)  # once: each step's capture wants everything
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)


def _term_with_parent() -> None:
    """Ask Linux to SIGTERM this worker when its parent dies (``PR_SET_PDEATHSIG``).

    The kernel ties this to the thread that started the worker, so only workers started by the
    main thread or the pool's reader thread ask for it (see ``ProcessExecutor._spawn``).
    Elsewhere, and for workers started by other threads, a worker notices the orchestrator's
    death at end-of-file on its pipe, after its current step.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _on_sigterm(signum: int, frame: Any) -> None:
    """Killed by the orchestrator: kill the steps' programs, then this worker's whole group."""
    kill_programs()
    os.killpg(os.getpgid(0), signal.SIGKILL)


__all__ = ["STARTED", "TIMED", "pack_outcome", "serve"]
