"""Any ``concurrent.futures.Executor`` as a backend: the whole contract is ``submit``."""

from __future__ import annotations

from concurrent.futures import Executor, ThreadPoolExecutor

from .base import WrappedExecutor
from .serial import InlineExecutor
from .thread import DaemonThreadPool


class GivenExecutor(WrappedExecutor):
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
    return isinstance(executor, (ThreadPoolExecutor, InlineExecutor, DaemonThreadPool))
