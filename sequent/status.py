"""Statuses, replay policies and run modes: plain enums shared by every layer."""

from __future__ import annotations

import enum


class StepStatus(enum.Enum):
    """What happened to a step instance; ``complete`` is a condition (success or failure)."""

    ready = "ready"
    active = "active"
    success = "success"
    failure = "failure"
    complete = "complete"
    skipped = "skipped"
    interrupted = "interrupted"

    def is_terminal(self) -> bool:
        """True for the statuses after which nothing more happens to the instance."""
        return self._value_ in TERMINAL_VALUES  # a str look-up: the scheduler asks a lot

    def __str__(self) -> str:
        return self.value

    # Members are singletons compared by identity: hashing by identity is as exact as the
    # name's hash Enum uses, and a C slot instead of a Python call (the core asks a lot).
    __hash__ = object.__hash__


#: The statuses after which nothing more happens to a step instance.
TERMINAL = (StepStatus.success, StepStatus.failure, StepStatus.skipped, StepStatus.interrupted)
#: Their values, as the store writes them.
TERMINAL_VALUES = frozenset(status.value for status in TERMINAL)

#: The statuses a requirement may name.
CONDITIONS = (
    StepStatus.ready,
    StepStatus.active,
    StepStatus.success,
    StepStatus.failure,
    StepStatus.complete,
)


class StepReplay(enum.Enum):
    """What a recover run does with a step instance, given its previous status."""

    skip = "skip"
    rerun = "rerun"


class RunMode(enum.Enum):
    """A fresh run (``restart``) or the continuation of an earlier one (``recover``)."""

    restart = "restart"
    recover = "recover"


STEP_READY = StepStatus.ready
STEP_ACTIVE = StepStatus.active
STEP_SUCCESS = StepStatus.success
STEP_FAILURE = StepStatus.failure
STEP_COMPLETE = StepStatus.complete
STEP_SKIP = StepReplay.skip
STEP_RERUN = StepReplay.rerun
RUN_RESTART = RunMode.restart
RUN_RECOVER = RunMode.recover
