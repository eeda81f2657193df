"""Checks of what ``add_step`` is given: each argument turned into its definition's value.

Every function raises a ``SequentError`` (``DefinitionTypeError`` for a wrong type,
``DefinitionError``/``ResourceError`` for a value that cannot work) naming the step and ending
with the fix, before the step is added.
"""

from __future__ import annotations

import difflib
import logging
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .compiler.definitions import DEFAULT_RECOVERY, NO_OPTIONS
from .config import check_step_config
from .errors import DefinitionError, DefinitionTypeError, ResourceError
from .resources import ResourcePool
from .status import CONDITIONS, RunMode, StepReplay, StepStatus


def call(
    step: str, func: Any, args: Any, kwargs: Any
) -> tuple[Callable[..., Any] | None, tuple[Any, ...], Mapping[str, Any]]:
    """``func``, ``args`` and ``kwargs`` checked: a callable (or None), a tuple, a dict.

    No ``kwargs`` gives the shared ``NO_OPTIONS`` (the common case, one dict for all steps).
    """
    if func is not None and not callable(func):
        raise DefinitionTypeError(
            f"step {step!r}: func must be callable, got {type(func).__name__} {func!r}"
        )
    if type(args) is not tuple and (
        isinstance(args, (str, bytes)) or not isinstance(args, Iterable)
    ):
        raise DefinitionTypeError(f"step {step!r}: args must be a tuple or list, got {args!r}")
    if kwargs is None or (type(kwargs) is dict and not kwargs):
        return func, tuple(args), NO_OPTIONS
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise DefinitionTypeError(
            f"step {step!r}: kwargs must be a mapping of names to values, got {kwargs!r}"
        )
    return func, tuple(args), dict(kwargs)


def options(
    step: str,
    *,
    delay: Any,
    acquires: Any,
    releases: Any,
    recovery: Any,
    repeats: Any,
    config: Any,
    hosts: Any,
    retries: Any,
    retry_delay: Any,
    timeout: Any,
    parallel: Any = 1,
) -> dict[str, Any]:
    """The step's other options checked, as ``StepDef`` keyword arguments, in that order.

    A step that sets none of them gets no arguments (``StepDef``'s defaults, shared).
    """
    if (
        acquires is None
        and releases is None
        and recovery is None
        and repeats is None
        and config is None
        and hosts is None
        and timeout is None
        and parallel == 1
        and type(parallel) is int
        and type(retries) is int
        and retries == 0
        and type(delay) in _NUMBERS
        and delay == 0
        and type(retry_delay) in _NUMBERS
        and retry_delay == 0
    ):
        return {}
    return {
        "delay": seconds(delay, "delay", step),
        "acquires": resources(acquires, "acquires", step) or (),
        "releases": resources(releases, "releases", step),
        "recovery": recovery_policy(recovery, step),
        "repeats": repeat_items(repeats, step),
        "config": check_step_config(config, step) if config else NO_OPTIONS,
        "hosts": host_names(hosts, step),
        "retries": count(retries, "retries", step),
        "retry_delay": seconds(retry_delay, "retry_delay", step),
        "timeout": timeout_seconds(timeout, step),
        "parallel": parallel_limit(parallel, step),
    }


_NUMBERS = (int, float)

STEP_ARGUMENTS = (
    "func args kwargs requires delay acquires releases recovery repeats config hosts retries "
    "retry_delay timeout parallel"
).split()


def unknown_arguments(step: str, unknown: Iterable[str], also: Iterable[str] = ()) -> str:
    """The message for keyword arguments ``add_step`` does not take, with a likely fix.

    ``also`` are further names a hint may suggest (the original's, accepted and ignored).
    """
    hints = []
    for keyword in sorted(unknown):
        close = difflib.get_close_matches(keyword, [*STEP_ARGUMENTS, *also], n=1)
        hints.append(f"{keyword!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (
        f"step {step!r}: add_step got unknown argument {', '.join(hints)}; it takes "
        f"{', '.join(STEP_ARGUMENTS)}"
    )


def is_status(value: Any) -> bool:
    return isinstance(value, StepStatus) or (
        isinstance(value, str) and value in StepStatus.__members__
    )


def not_a_status(value: Any, target: str, owner: str) -> DefinitionTypeError:
    """The error for ``(target, value)`` in ``requires`` where ``value`` is no status."""
    names = [name for name, member in StepStatus.__members__.items() if member in CONDITIONS]
    close = difflib.get_close_matches(value, names, n=1) if isinstance(value, str) else []
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return DefinitionTypeError(
        f"step {owner!r} requires {target!r} with {value!r}{hint}, which is not a status; write "
        f"({target}, sequent.StepStatus.success) or ready, active, failure, complete"
    )


def status(value: Any, owner: str) -> StepStatus:
    status = value if isinstance(value, StepStatus) else StepStatus[value]
    if status not in CONDITIONS:
        raise DefinitionError(
            f"step {owner!r} requires status {status.value!r}; a requirement may name ready, "
            f"active, success, failure or complete"
        )
    return status


def seconds(value: Any, what: str, step: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DefinitionTypeError(
            f"step {step!r}: {what} must be a number of seconds, got {value!r}"
        )
    if value < 0 or not math.isfinite(value):
        raise DefinitionError(
            f"step {step!r}: {what} must be a finite number of seconds >= 0, got {value!r}"
        )
    return float(value)


def timeout_seconds(value: Any, step: str) -> float | None:
    if value is None:
        return None
    value = seconds(value, "timeout", step)
    if value == 0:
        raise DefinitionError(f"step {step!r}: timeout must be > 0 seconds (or None), got 0")
    return float(value)


def count(value: Any, what: str, step: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DefinitionTypeError(f"step {step!r}: {what} must be a whole number, got {value!r}")
    if value < 0:
        raise DefinitionError(f"step {step!r}: {what} must be >= 0, got {value!r}")
    return value


def resources(value: Any, what: str, step: str) -> tuple[tuple[ResourcePool, int], ...] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise DefinitionTypeError(
            f"step {step!r}: {what} must be a list of (ResourcePool, amount) pairs, got {value!r}"
        )
    result = []
    for item in value:
        if isinstance(item, ResourcePool):
            item = (item, 1)
        if not (
            isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], ResourcePool)
        ):
            raise DefinitionTypeError(
                f"step {step!r}: each entry of {what} must be a (ResourcePool, amount) pair, "
                f"got {item!r}"
            )
        pool, amount = item
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise ResourceError(
                f"step {step!r}: {what} amount for pool {pool.name!r} must be a whole number "
                f">= 1, got {amount!r}"
            )
        if amount > pool.limit:
            raise ResourceError(
                f"step {step!r} {what} {amount} of resource pool {pool.name!r}, above its "
                f"resource_limit of {pool.limit}; ask for at most {pool.limit} or raise the limit"
            )
        result.append((pool, amount))
    totals: dict[ResourcePool, list[int]] = {}
    for pool, amount in result:
        totals.setdefault(pool, []).append(amount)
    for pool, amounts in totals.items():
        if len(amounts) > 1 and sum(amounts) > pool.limit:
            parts = " + ".join(map(str, amounts))
            raise ResourceError(
                f"step {step!r} {what} {sum(amounts)} of resource pool {pool.name!r} in all "
                f"({parts}), above its resource_limit of {pool.limit}; ask for at most "
                f"{pool.limit} in all or raise the limit"
            )
    return tuple(result)


def recovery_policy(value: Any, step: str) -> Mapping[StepStatus, StepReplay]:
    if value is None:
        return DEFAULT_RECOVERY  # shared by every step that sets none
    policy = dict(DEFAULT_RECOVERY)
    if not isinstance(value, Mapping):
        raise DefinitionTypeError(
            f"step {step!r}: recovery must map statuses to StepReplay.skip/rerun, got {value!r}"
        )
    for status, replay in value.items():
        if not isinstance(status, StepStatus) or status is StepStatus.complete:
            raise DefinitionError(
                f"step {step!r}: recovery key {status!r} is not a recorded status; use "
                f"StepStatus.success, failure, ready, active, skipped or interrupted"
            )
        if not isinstance(replay, StepReplay):
            raise DefinitionTypeError(
                f"step {step!r}: recovery[{status.value}] must be StepReplay.skip or "
                f"StepReplay.rerun, got {replay!r}"
            )
        policy[status] = replay
    return policy


def repeat_items(value: Any, step: str) -> Any:
    if value is None or callable(value):
        return value
    if isinstance(value, (set, frozenset)):
        raise DefinitionTypeError(
            f"step {step!r}: repeats is a {type(value).__name__}, whose order changes from one "
            f"process to the next, so a recover would match the wrong items; give a list "
            f"(for example repeats=sorted(...))"
        )
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise DefinitionTypeError(
            f"step {step!r}: repeats must be a sequence, a range or a callable returning an "
            f"iterable, got {type(value).__name__} {value!r}"
        )
    return tuple(value)


def parallel_limit(value: Any, step: str) -> int:
    """How many iterations may run at once: a whole number >= 0 (0 or True: no limit)."""
    if value is True:
        return 0
    if value is False:
        return 1
    if not isinstance(value, int):
        raise DefinitionTypeError(
            f"step {step!r}: parallel must be a whole number of iterations at once (1: one "
            f"after another, 0 or True: no limit), got {type(value).__name__} {value!r}"
        )
    if value < 0:
        raise DefinitionError(
            f"step {step!r}: parallel must be >= 0 (0 for no limit), got {value!r}"
        )
    return value


def host_names(value: Any, step: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Iterable) or not all(isinstance(h, str) and h for h in value):
        raise DefinitionTypeError(
            f"step {step!r}: hosts must be a list of worker names or addresses, got {value!r}"
        )
    return tuple(value) or None  # [] was the original's default: no placement


def run_selection(
    run_mode: Any, recovery_run: Any, run_id: Any, call: str
) -> tuple[RunMode, str | None]:
    """Check ``run_mode`` and the run to recover, given as ``recovery_run`` or ``run_id``.

    ``run_id`` is the original's name for ``recovery_run`` ('' meaning none). Raises
    ``DefinitionTypeError``/``DefinitionError`` naming the argument.
    """
    if not isinstance(run_mode, RunMode):
        raise DefinitionTypeError(
            f"{call}(run_mode=...) takes sequent.RunMode.restart or RunMode.recover "
            f"(RUN_RESTART, RUN_RECOVER), got {run_mode!r}"
        )
    for what, value in (("recovery_run", recovery_run), ("run_id", run_id)):
        if value is not None and not isinstance(value, str):
            raise DefinitionTypeError(f"{call}({what}=...) takes a run id string, got {value!r}")
    run_id = run_id or None
    if recovery_run and run_id and recovery_run != run_id:
        raise DefinitionError(
            f"{call}() got recovery_run={recovery_run!r} and run_id={run_id!r}; they name the "
            f"same thing (the run to recover), so pass one of them"
        )
    return run_mode, recovery_run or run_id


def logging_level(level: Any) -> int:
    """``level`` as a number: a logging level, or a level's name. Raises ``DefinitionError``."""
    if isinstance(level, bool) or not isinstance(level, (int, str)):
        raise DefinitionTypeError(f"logging_level must be a logging level, got {level!r}")
    try:
        return int(logging._checkLevel(level))  # type: ignore[attr-defined]
    except ValueError as exc:
        raise DefinitionError(
            f"logging_level {level!r} is not a logging level; use logging.INFO, "
            f"'DEBUG', 'WARNING' or another level name"
        ) from exc
