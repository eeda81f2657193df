"""How a run stops early: a signal, ``max_loops``, or another orchestrator taking it over.

Part of the scheduling core (``core.Scheduler`` takes these methods): it stops launching
(``_halted``), stops what runs where the backend can, and records those steps ``interrupted``;
the words recorded on the steps that never started come from ``_stop_reason``.
"""

from __future__ import annotations

import logging
from typing import Any

from ..compiler import NodeKey
from ..program import kill_programs
from ..status import StepStatus
from .attempts import Attempt
from .contract import Backend, RunOptions
from .state import RunState

log = logging.getLogger("sequent")


class Stopping:
    """Mutates the scheduler it is part of: its halt, its running attempts, its timers."""

    options: RunOptions
    backend: Backend
    state: RunState
    interrupted_by: str | None
    taken_over: str | None
    _halted: str | None
    _post: Any
    _running: dict[NodeKey, Attempt]
    _timers: list[tuple[float, int, str, NodeKey, int]]

    def _stop_reason(self) -> str:
        """Why the run ended early, in the words recorded on the steps it never started."""
        if self.interrupted_by:
            return f"the run was interrupted ({self.interrupted_by})"
        if self.taken_over:
            return f"the run was stopped: {self.taken_over}"
        if self._halted == "max_loops":
            return f"the run stopped after max_loops={self.options.max_loops} rounds"
        if self._halted:
            return f"the run was stopped ({self._halted})"
        if self.state.stopping:
            return "the run stopped after a failure (stop_on_exception)"
        return "the run ended"

    def _halt(self, reason: str) -> None:
        if not self._halted:
            self._halted = reason

    def _interrupt(self, reason: Any) -> None:
        self._halt(str(reason))
        self.interrupted_by = self.interrupted_by or str(reason)
        log.warning("Interrupted (%s): stopping running steps", reason)
        self._stop_running(f"interrupted by {reason}")

    def _take_over(self, why: str) -> None:
        """Another orchestrator runs this run now: launch nothing more, stop what runs (its
        steps recorded ``interrupted`` in this attempt, as on SIGTERM), and end the run."""
        if self.taken_over is not None:
            return
        self.taken_over = why
        self._halt("taken over")
        log.error(
            "%s. This attempt (%d) stops: it launches no more steps, stops its running "
            "steps (recorded interrupted) and ends with failure",
            why[:1].upper() + why[1:],
            self.options.recovery,
        )
        self._stop_running(f"interrupted because {why}")

    def _stop_running(self, error: str) -> None:
        for key, attempt in list(self._running.items()):
            self._kill(attempt)
            del self._running[key]
            self.state.done(key, StepStatus.interrupted, error)
        self._timers.clear()

    def _kill(self, attempt: Attempt) -> None:
        """Stop a running attempt: its worker where the backend can, its programs' groups.

        Programs a step started in this process (serial, thread) are killed here; remote
        backends kill those in their workers.
        """
        if attempt.future is not None:
            self.backend.kill(attempt.future)
        elif self._post is not None:
            self.backend.cancel((attempt.key, attempt.token))  # type: ignore[attr-defined]
        if not self.backend.remote:
            key = attempt.key
            kill_programs((self.options.run_id, key.path, key.sequence, attempt.number))

