"""The step context: which step instance the current code runs in (``seq.current()``).

Mutates one context variable, set by the worker wrapper around each step call, so it is right
in every executor, including threads running steps at the same time.
"""

from __future__ import annotations

import contextvars
import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import attrs


@attrs.frozen
class StepContext:
    """What a running step may know about itself.

    ``recovery`` is 0 on a fresh run and n on the n-th recover run (the store's attempt);
    ``retry`` is 0 on a step's first try and n on its n-th retry under ``retries``; ``ordinal``
    and ``item`` are the 1-based number and the value of the enclosing container's current
    iteration.
    """

    name: str
    sequence: str
    recovery: int
    run_id: str
    flow_name: str
    ordinal: int = 1
    item: Any = None
    logger_name: str = "sequent.step"
    retry: int = 0

    @property
    def attempt(self) -> int:
        """Deprecated name of ``retry`` ("attempt" names a recover run in the store)."""
        warnings.warn(
            "StepContext.attempt is deprecated; use StepContext.retry (the retry count)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.retry

    def environ(self) -> dict[str, str]:
        """The environment variables a step process sees (``SEQUENT_*`` and ``EVENTOR_*``)."""
        values = {
            "STEP_NAME": self.name,
            "STEP_SEQUENCE": self.sequence,
            "STEP_RECOVERY": str(self.recovery),
            "RUN_ID": self.run_id,
            "LOGGER_NAME": self.logger_name,
        }
        env = {f"SEQUENT_{key}": value for key, value in values.items()}
        env.update({f"EVENTOR_{key}": value for key, value in values.items()})
        return env


_current: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "sequent_step", default=None
)


def current() -> StepContext | None:
    """The context of the step instance running here, or None outside a step."""
    return _current.get()


@contextmanager
def entered(context: StepContext, set_environ: bool = False) -> Iterator[None]:
    """Run the body as step ``context``; with ``set_environ``, also export its variables.

    Exporting changes ``os.environ`` for the whole process, so only executors that run one step
    at a time in a process (worker processes, the serial executor) ask for it.
    """
    token = _current.set(context)
    try:
        if set_environ:
            with exported(context):
                yield
        else:
            yield
    finally:
        _current.reset(token)


@contextmanager
def exported(context: StepContext) -> Iterator[None]:
    """Mutates ``os.environ``: the step's variables for the body, the previous values after.

    Only variables whose value differs are set and restored.
    """
    env = context.environ()
    saved: Mapping[str, str | None] = {
        key: os.environ.get(key) for key in env if os.environ.get(key) != env[key]
    }
    os.environ.update({key: env[key] for key in saved})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
