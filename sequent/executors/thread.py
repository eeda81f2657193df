"""The thread backend: steps run in a pool of threads of the orchestrating process."""

from __future__ import annotations

import os
from concurrent.futures import Executor, ThreadPoolExecutor

from .base import ExecutorBackend


class ThreadBackend(ExecutorBackend):
    """Steps run in threads; a timed-out step is abandoned (a thread cannot be killed)."""

    name = "thread"

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()
        # Never fewer than 32 threads: a timed-out step keeps its thread until it returns.
        self.max_workers = max(max_workers or 0, 32, (os.cpu_count() or 1) + 4)

    def create(self) -> Executor:
        return ThreadPoolExecutor(self.max_workers, thread_name_prefix="sequent-step")

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
