"""When the core commits: the policy that keeps a crash recoverable with one commit per step.

A status change is committed before anything that depends on it starts (SPEC 4.4). What
depends on what:

- a terminal status (success, failure, skipped, interrupted; a mark replayed by a recover):
  the steps it enables, a recover's view of what finished, resources a container gives back;
- a retry's failed try: the retry;
- nodes created at run time (a callable ``repeats``): their rows;
- a ``ready``/``active`` of a step that some requirement watches with ``ready`` or
  ``active``: its watchers.

A round holding any of these commits before it submits anything. Any other ``ready`` or
``active`` row waits in the recorder's buffer for the next commit, at most ``FLUSH_WITHIN``
seconds (the loop's wait wakes up for it), so what runs now is visible to ``sequent status``
in another process within about a second. Lost to a crash, such a step looks not started
and a recover reruns it, which SPEC 4.4 allows; Dask tasks left running are found by the
run's id on the cluster, not by these rows. A chain thus commits once per step: a step's end
together with the next step's ``ready`` and ``active``.

A backend that runs steps in the loop's own thread (``inline``: the serial executor) leaves
the loop no moment to commit while a step runs, so there every ``ready`` and ``active`` is
committed before the step starts (``every_start``), as if every step were watched.
"""

from __future__ import annotations

import time

from ..compiler import Plan
from ..status import CONDITIONS, StepStatus

#: Longest a buffered ``ready``/``active`` row waits for a commit, in seconds.
FLUSH_WITHIN = 1.0

_STARTS = (CONDITIONS.index(StepStatus.ready), CONDITIONS.index(StepStatus.active))


class CommitPolicy:
    """Mutates only itself: says, round by round, whether buffered rows must be committed."""

    __slots__ = ("watched", "durable", "since")

    def __init__(self, plan: Plan, every_start: bool = False) -> None:
        #: Steps whose ``ready`` or ``active`` must be committed before anything is submitted:
        #: those a requirement watches (with ``every_start``: every step).
        self.watched = frozenset(
            plan.index.steps
            if every_start
            else (
                path
                for path, groups in plan.index.watch.items()
                if any(
                    condition in _STARTS for _, entries, _ in groups for condition, _ in entries
                )
            )
        )
        #: Something buffered must be committed before the next dispatch.
        self.durable = False
        #: When the oldest uncommitted row was buffered (``time.monotonic()``), or None.
        self.since: float | None = None

    def buffered(self) -> None:
        """Rows were handed to the recorder this round."""
        if self.since is None:
            self.since = time.monotonic()

    def due(self) -> bool:
        """True when the buffer must be committed now; then it counts as committed."""
        since = self.since
        if since is None:
            return False
        if self.durable or time.monotonic() >= since + FLUSH_WITHIN:
            self.durable = False
            self.since = None
            return True
        return False

    def wait_at_most(self, timeout: float | None) -> float | None:
        """``timeout`` shortened so that the loop wakes up when buffered rows fall due."""
        if self.since is None:
            return timeout
        due = max(0.0, self.since + FLUSH_WITHIN - time.monotonic())
        return due if timeout is None else min(timeout, due)
