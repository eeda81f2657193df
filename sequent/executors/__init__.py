"""One scheduling core (``core.py``) and the thin backends that run steps for it.

Backends are chosen by name (``serial``/``invoke``, ``thread``, ``process``/``mp.Process``,
``loky``, ``dask``) or given as an object; each only supplies ``submit``.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import Executor
from importlib import import_module
from typing import Any

from ..errors import ExecutorError
from .base import ExecutorBackend, WrappedExecutor
from .contract import Backend, Recorder, RunOptions
from .core import Scheduler
from .given import GivenExecutor
from .serial import SerialExecutor
from .thread import ThreadExecutor
from .worker import Outcome, Task, execute

_BACKENDS = {
    "serial": ("sequent.executors.serial", "SerialExecutor"),
    "thread": ("sequent.executors.thread", "ThreadExecutor"),
    "process": ("sequent.executors.process", "ProcessExecutor"),
    "loky": ("sequent.executors.loky", "LokyExecutor"),
    "dask": ("sequent.executors.dask", "DaskExecutor"),
}

_ALIASES = {
    "invoke": "serial",
    "sequential": "serial",
    "threads": "thread",
    "threading": "thread",
    "threading.thread": "thread",
    "mp.process": "process",
    "multiprocessing": "process",
    "multiprocessing.process": "process",
    "processes": "process",
    "distributed": "dask",
}

DEFAULT_EXECUTOR = "process"  # the seed documents mp.Process: a warm pool of worker processes


def backend_name(spec: Any) -> str:
    """The canonical backend name for a name, alias or the seed's ``task_construct`` value."""
    if spec is multiprocessing.Process:
        return "process"
    if spec is threading.Thread:
        return "thread"
    if isinstance(spec, str):
        name = _ALIASES.get(spec.strip().lower(), spec.strip().lower())
        if name in _BACKENDS:
            return name
    choices = ", ".join(sorted(set(_BACKENDS) | set(_ALIASES)))
    raise ExecutorError(
        f"unknown executor {spec!r}; choose one of: {choices}, or pass a backend object or "
        f"any concurrent.futures.Executor"
    )


def create_backend(spec: Any = None, **options: Any) -> Backend:
    """A backend for ``spec``: a name or an alias, a backend object (returned as is), or any
    ``concurrent.futures.Executor`` (wrapped in ``GivenExecutor``)."""
    if spec is None:
        spec = DEFAULT_EXECUTOR
    if not isinstance(spec, str) and hasattr(spec, "submit") and hasattr(spec, "remote"):
        given: Backend = spec  # one of sequent's backends (or one written like them)
        return given
    if isinstance(spec, Executor):
        return GivenExecutor(spec)
    module, cls = _BACKENDS[backend_name(spec)]
    try:
        factory = getattr(import_module(module), cls)
    except ImportError as exc:
        raise ExecutorError(
            f"executor {spec!r} is not available here ({exc}); install what it needs, "
            f"e.g. pip install 'sequent[dask]' for dask"
        ) from exc
    backend: Backend = factory(**options)
    return backend


__all__ = [
    "DEFAULT_EXECUTOR",
    "Backend",
    "ExecutorBackend",
    "WrappedExecutor",
    "GivenExecutor",
    "Outcome",
    "Recorder",
    "RunOptions",
    "Scheduler",
    "SerialExecutor",
    "Task",
    "ThreadExecutor",
    "backend_name",
    "create_backend",
    "execute",
]
