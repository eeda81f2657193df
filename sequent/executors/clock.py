"""One thread that fires deadlines: the step timeouts an executor keeps itself because they
count from a step's start on a worker (Dask, loky), not from its submission.

Mutates only its heap; ``fire(key)`` runs in its thread.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from typing import Any


class Clock:
    """Calls ``fire(key)`` at each armed deadline (``time.monotonic()``), in its own thread."""

    def __init__(self, fire: Callable[[Any], None], name: str = "sequent-timeouts") -> None:
        self.fire = fire
        self.name = name
        self.heap: list[tuple[float, int, Any]] = []
        self.wake = threading.Condition()
        self.thread: threading.Thread | None = None
        self.stopped = False
        self._order = 0

    def arm(self, deadline: float, key: Any) -> None:
        with self.wake:
            self._order += 1
            heapq.heappush(self.heap, (deadline, self._order, key))
            if self.thread is None:
                self.thread = threading.Thread(target=self.run, name=self.name, daemon=True)
                self.thread.start()
            self.wake.notify()

    def run(self) -> None:
        while True:
            with self.wake:
                while not self.stopped and (not self.heap or self.heap[0][0] > time.monotonic()):
                    wait = self.heap[0][0] - time.monotonic() if self.heap else None
                    self.wake.wait(wait)
                if self.stopped:
                    return
                _, _, key = heapq.heappop(self.heap)
            self.fire(key)

    def stop(self) -> None:
        with self.wake:
            self.stopped = True
            self.wake.notify()


__all__ = ["Clock"]
