"""What every backend shares: it wraps a ``concurrent.futures.Executor`` and submits ``execute``."""

from __future__ import annotations

from concurrent.futures import Executor, Future

from .worker import Outcome, Task, execute


class WrappedExecutor:
    """A backend over a ``concurrent.futures.Executor``; it holds no scheduling logic.

    ``remote`` says whether steps run in another process (so their logs are captured and sent
    back, and their func and arguments must be picklable).
    """

    name = "executor"
    remote = False

    def __init__(self, executor: Executor | None = None) -> None:
        self._executor = executor

    @property
    def executor(self) -> Executor:
        """The underlying executor, created on first use."""
        if self._executor is None:
            self._executor = self.create()
        return self._executor

    def create(self) -> Executor:
        """Create the underlying executor (backends override this)."""
        raise NotImplementedError

    def submit(self, task: Task, hosts: tuple[str, ...] | None = None) -> Future[Outcome]:
        """Run ``execute(task)`` on the executor."""
        return self.executor.submit(execute, task)

    def kill(self, future: Future[Outcome]) -> bool:
        """Stop the call behind ``future`` if the backend can; False when it cannot."""
        return future.cancel()

    def shutdown(self) -> None:
        """Release the executor's workers."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

ExecutorBackend = WrappedExecutor  # the name before 0.2
