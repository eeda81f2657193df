"""What every backend shares: it wraps a ``concurrent.futures.Executor`` and submits ``execute``."""

from __future__ import annotations

from concurrent.futures import Executor, Future

from .worker import Outcome, Task, execute


class ExecutorBackend:
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


class GivenExecutor(ExecutorBackend):
    """Any ``concurrent.futures.Executor`` passed as ``executor=``: each step is submitted as
    ``executor.submit(execute, task)``, and nothing else is asked of it.

    The executor stays the caller's: ``flow.close()`` does not shut it down. Steps count as
    running in this process (logs go straight to the step logs) for a ``ThreadPoolExecutor``
    or a synchronous executor of sequent's own; any other executor is taken to run them
    elsewhere (a ``ProcessPoolExecutor``, a cluster), so their func and arguments must pickle
    and their log records travel back with the outcome. A queued step can be cancelled; a
    running one runs to its end.
    """

    def __init__(self, executor: Executor) -> None:
        super().__init__(executor)
        self.name = type(executor).__name__
        self.remote = not _in_process(executor)

    def shutdown(self) -> None:
        """Leave the caller's executor running (the caller shuts it down)."""


def _in_process(executor: Executor) -> bool:
    from concurrent.futures import ThreadPoolExecutor

    from .serial import InlineExecutor
    from .thread import DaemonThreadPool

    return isinstance(executor, (ThreadPoolExecutor, InlineExecutor, DaemonThreadPool))
