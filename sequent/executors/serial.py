"""The serial backend (alias ``invoke``): every step runs in the calling thread."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from ..context import exported
from .base import WrappedExecutor
from .worker import Outcome, Task, execute


class InlineExecutor(Executor):
    """A ``concurrent.futures.Executor`` that runs each call at once, in the submitting thread.

    ``busy`` is True while a call runs (a signal handler then interrupts the call itself).
    """

    def __init__(self) -> None:
        self.busy = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self.busy = True
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        finally:
            self.busy = False
        return future


class SerialExecutor(WrappedExecutor):
    """Steps run one at a time in the thread that called ``run()``; timeouts cannot stop them."""

    name = "serial"
    #: Steps run in the scheduler's own thread: the core runs one at a time and commits each
    #: step's start before it runs (it cannot commit while the step runs).
    inline = True

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()  # one step at a time whatever ``max_workers`` says

    def create(self) -> Executor:
        return InlineExecutor()

    @property
    def running_inline(self) -> bool:
        """True while a step runs in the calling thread (the scheduler's own)."""
        return isinstance(self._executor, InlineExecutor) and self._executor.busy

    def submit(self, task: Task, hosts: tuple[str, ...] | None = None) -> Future[Outcome]:
        """Run the step here, with its ``SEQUENT_*``/``EVENTOR_*`` variables exported."""
        return self.executor.submit(_execute_exported, task)


def _execute_exported(task: Task) -> Outcome:
    """``execute(task)`` with the step's variables in ``os.environ``, restored afterwards."""
    with exported(task.context):
        return execute(task)

SerialBackend = SerialExecutor  # the name before 0.2
