"""The builder facade users touch: ``Sequent``, step handles, events, ``or_``/``and_``.

Handles collect what ``add_step`` was given, check it at once, and turn into frozen
``StepDef``s when the flow is compiled; the handles are the only mutable part of a definition.
"""

from __future__ import annotations

import difflib
import itertools
import logging
import math
import numbers
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .compiler import NOTHING, AllOf, AnyOf, Atom, Expr, FlowDef, Plan, StepDef, atoms, compile_flow
from .compiler.definitions import DEFAULT_RECOVERY
from .config import check_step_config, load_config
from .context import StepContext, current
from .errors import (
    DefinitionError,
    DefinitionTypeError,
    DuplicateStepError,
    ResourceError,
    UnknownStepError,
)
from .resources import ResourcePool
from .status import CONDITIONS, RunMode, StepReplay, StepStatus

if TYPE_CHECKING:
    from .plan import DryRun

log = logging.getLogger("sequent")


class _Operator:
    def __init__(self, *items: Any) -> None:
        self.items = items

    def __repr__(self) -> str:
        return f"{type(self).__name__.strip('_')}{self.items!r}"


class Or(_Operator):
    """True when any of its items is true (``seq.or_(...)``)."""


class And(_Operator):
    """True when all of its items are true (``seq.and_(...)``)."""


def or_(*items: Any) -> Or:
    """A requirement that holds when any item holds."""
    return Or(*items)


def and_(*items: Any) -> And:
    """A requirement that holds when every item holds."""
    return And(*items)


class Event:
    """A named, reusable requirement expression made by ``Sequent.add_event``."""

    def __init__(self, flow: Sequent, requires: Any, number: int) -> None:
        self.flow = flow
        self.requires = requires
        self.number = number

    def __repr__(self) -> str:
        return f"Event({self.number}, {self.requires!r})"


class Step:
    """A handle on a step added to a flow; ``add_step`` on it makes it a container."""

    def __init__(self, flow: Sequent, parent: Step | None, definition: StepDef) -> None:
        self.flow = flow
        self.parent = parent
        self.definition = definition
        self.children: list[Step] = []

    @property
    def name(self) -> str:
        """The step's own name."""
        return self.definition.name

    @property
    def path(self) -> str:
        """The names from the top down, joined with ``_``."""
        return self.definition.path_name

    def add_step(
        self, name: str, func: Callable[..., Any] | None = None, *args: Any, **kwargs: Any
    ) -> Step:
        """Add a child step; this step becomes a container. Takes ``Sequent.add_step``'s args."""
        if self.definition.func is not None:
            raise DefinitionError(
                f"cannot add step {name!r} to {self.path!r}: {self.path!r} has a func, and a "
                f"container runs its children instead; drop func= from {self.path!r}"
            )
        return self.flow._add(self, name, func, *args, **kwargs)

    def define(self) -> StepDef:
        """The frozen definition of this step and everything below it."""
        if not self.children:
            return self.definition
        return attrs.evolve(self.definition, children=tuple(c.define() for c in self.children))

    def __repr__(self) -> str:
        return f"Step({self.path!r})"


_REPEAT_FLOW_KEYS = ("name", "store", "run_mode", "recovery_run")


class Sequent:
    """A program flow: build it with ``add_step``/``add_event``, then ``run()`` it."""

    def __init__(
        self,
        name: str = "",
        store: str = "",
        run_mode: RunMode = RunMode.restart,
        recovery_run: str | None = None,
        logging_level: int = logging.INFO,
        config: Mapping[str, Any] | str | os.PathLike[str] | None = None,
        executor: Any = None,
        config_tag: str | None = None,
    ) -> None:
        caller = _caller_file()
        if not isinstance(name, str):
            raise DefinitionTypeError(f"Sequent name must be a string, got {name!r}")
        if not isinstance(store, (str, os.PathLike)):
            raise DefinitionTypeError(
                f"Sequent store must be a file path or ':memory:', got {store!r}"
            )
        if not isinstance(run_mode, RunMode):
            raise DefinitionTypeError(
                f"run_mode must be sequent.RunMode.restart or RunMode.recover, got {run_mode!r}"
            )
        if recovery_run is not None and not isinstance(recovery_run, str):
            raise DefinitionTypeError(f"recovery_run must be a run id string, got {recovery_run!r}")
        if isinstance(logging_level, bool) or not isinstance(logging_level, (int, str)):
            raise DefinitionTypeError(
                f"logging_level must be a logging level, got {logging_level!r}"
            )
        self.name = name or (caller.stem if caller else "sequent")
        self.store_path = str(store) if store else _default_store(caller)
        self.run_mode = run_mode
        self.recovery_run = recovery_run
        try:
            self.logging_level = logging._checkLevel(logging_level)  # type: ignore[attr-defined]
        except ValueError as exc:
            raise DefinitionError(
                f"logging_level {logging_level!r} is not a logging level; use logging.INFO, "
                f"'DEBUG', 'WARNING' or another level name"
            ) from exc
        self.config = load_config(config, config_tag)
        self.executor = executor if executor is not None else self.config["task_construct"]
        if self.executor is not None:
            from .executors import backend_name

            if isinstance(self.executor, (str, type)):
                backend_name(self.executor)
        self._steps: list[Step] = []
        self._paths: dict[str, Step] = {}
        self._order = itertools.count()
        self._events = itertools.count(1)
        self._store: Any = None
        self._backend: Any = None
        self._last_run_id: str | None = None
        self._proxy = False

    # -- building ---------------------------------------------------------------------------

    def add_step(
        self, name: str, func: Callable[..., Any] | None = None, *args: Any, **kwargs: Any
    ) -> Step:
        """Add a top-level step; see the documentation for every argument.

        Returns the step's handle. Raises a ``SequentError`` naming the step when an argument
        cannot work.
        """
        return self._add(None, name, func, *args, **kwargs)

    def _add(
        self,
        parent: Step | None,
        name: str,
        func: Callable[..., Any] | None = None,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        requires: Any = (),
        delay: float = 0,
        acquires: Iterable[Any] | None = None,
        releases: Iterable[Any] | None = None,
        recovery: Mapping[Any, Any] | None = None,
        repeats: Any = None,
        config: Mapping[str, Any] | None = None,
        hosts: Iterable[str] | None = None,
        retries: int = 0,
        retry_delay: float = 0,
        timeout: float | None = None,
        **unknown: Any,
    ) -> Step:
        self._check_builder()
        if not isinstance(name, str) or not name:
            raise DefinitionTypeError(f"step name must be a non-empty string, got {name!r}")
        if unknown:
            raise DefinitionTypeError(_unknown_arguments(name, unknown))
        if "/" in name or name != name.strip():
            raise DefinitionError(
                f"step name {name!r} may not contain '/' or surrounding spaces; rename it"
            )
        parent_path = parent.definition.path if parent else ()
        path = (*parent_path, name)
        shown = "_".join(path)
        siblings = parent.children if parent else self._steps
        same = self._paths.get(shown)  # a dict look-up: flows of 100,000 steps build in seconds
        if same is not None and same.definition.path == path:
            where = f"container {parent.path!r}" if parent else "the flow"
            raise DuplicateStepError(
                f"step {name!r} is already defined in {where}; give the new step another name"
            )
        if shown in self._paths:
            other = self._paths[shown]
            raise DuplicateStepError(
                f"step {shown!r} would have the same path as step {other.name!r} under "
                f"{other.parent.path if other.parent else 'the flow'!r} (paths join names with "
                f"'_'); rename one of them"
            )
        if func is not None and not callable(func):
            raise DefinitionTypeError(
                f"step {shown!r}: func must be callable, got {type(func).__name__} {func!r}"
            )
        if isinstance(args, (str, bytes)) or not isinstance(args, Iterable):
            raise DefinitionTypeError(f"step {shown!r}: args must be a tuple or list, got {args!r}")
        kwargs = {} if kwargs is None else kwargs
        if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
            raise DefinitionTypeError(
                f"step {shown!r}: kwargs must be a mapping of names to values, got {kwargs!r}"
            )
        definition = StepDef(
            name=name,
            path=path,
            order=next(self._order),
            func=func,
            args=tuple(args),
            kwargs=dict(kwargs),
            requires=self._requirement(requires, parent, shown),
            delay=_seconds(delay, "delay", shown, allow_none=False),
            acquires=_resources(acquires, "acquires", shown) or (),
            releases=_resources(releases, "releases", shown),
            recovery=_recovery(recovery, shown),
            repeats=_repeats(repeats, shown),
            config=check_step_config(config or {}, shown),
            hosts=_hosts(hosts, shown),
            retries=_count(retries, "retries", shown),
            retry_delay=_seconds(retry_delay, "retry_delay", shown, allow_none=False),
            timeout=_timeout(timeout, shown),
        )
        step = Step(self, parent, definition)
        siblings.append(step)
        self._paths[shown] = step
        return step

    def add_event(self, requires: Any = None, **kwargs: Any) -> Event:
        """A reusable requirement expression to use in ``requires``."""
        self._check_builder()
        if requires is None:
            requires = kwargs.pop("require", None)
        if kwargs:
            raise DefinitionTypeError(f"add_event got unknown arguments {sorted(kwargs)}")
        if requires is None or requires == ():
            raise DefinitionError("add_event needs requires=...; an event must depend on steps")
        event = Event(self, requires, next(self._events))
        self._requirement(requires, None, f"event {event.number}", check_siblings=False)
        return event

    def _requirement(
        self, value: Any, parent: Step | None, owner: str, check_siblings: bool = True
    ) -> Expr:
        """Turn what ``requires`` was given into an expression; check what can be checked now."""
        if value is None or (isinstance(value, (tuple, list)) and not value):
            return NOTHING
        expr = self._expression(value, parent, owner)
        if check_siblings:
            parent_path = parent.definition.path if parent else ()
            for atom in atoms(expr):
                if atom.path[:-1] != parent_path:
                    raise UnknownStepError(
                        f"step {owner!r} requires {'_'.join(atom.path)!r}, which is not a "
                        f"sibling; requires may name only steps of the same container, so move "
                        f"the step next to {owner!r} or drop the requirement"
                    )
        return expr

    def _expression(self, value: Any, parent: Step | None, owner: str) -> Expr:
        if isinstance(value, Event):
            if value.flow is not self:
                raise DefinitionError(f"step {owner!r} requires an event of another flow")
            return self._expression(value.requires, parent, owner)
        if isinstance(value, Or):
            if not value.items:
                raise DefinitionError(
                    f"step {owner!r} requires or_() with nothing in it, which can never hold; "
                    f"give or_ at least one (step, status) pair"
                )
            return AnyOf(tuple(self._expression(item, parent, owner) for item in value.items))
        if isinstance(value, And):
            return AllOf(tuple(self._expression(item, parent, owner) for item in value.items))
        if isinstance(value, (tuple, list)):
            if len(value) == 2 and _is_status(value[1]) and isinstance(value[0], (Step, str)):
                return Atom(self._target(value[0], parent, owner), _status(value[1], owner))
            return AllOf(tuple(self._expression(item, parent, owner) for item in value))
        if isinstance(value, Step):
            raise DefinitionTypeError(
                f"step {owner!r} requires {value.path!r} without a status; write "
                f"({value.name}, sequent.StepStatus.success) or another status"
            )
        raise DefinitionTypeError(
            f"step {owner!r}: requires must be (step, status) pairs, tuples of them, "
            f"sequent.or_(...)/and_(...) or events; got {value!r}"
        )

    def _target(self, target: Step | str, parent: Step | None, owner: str) -> tuple[str, ...]:
        if isinstance(target, Step):
            if target.flow is not self:
                raise UnknownStepError(
                    f"step {owner!r} requires {target.path!r}, a step of another flow; "
                    f"require steps of this flow only"
                )
            return target.definition.path
        parent_path = parent.definition.path if parent else ()
        return (*parent_path, target)  # a sibling's name; compile() checks that it exists

    def _check_builder(self) -> None:
        if self._proxy:
            raise DefinitionError(
                "this Sequent is a copy sent to a step; steps cannot be added from inside a run"
            )

    # -- compiling --------------------------------------------------------------------------

    def definition(self) -> FlowDef:
        """The frozen definition of the whole flow."""
        return FlowDef(self.name, tuple(step.define() for step in self._steps), self.config)

    def compile(self) -> Plan:
        """Check the flow and expand it into a ``Plan``; raises a ``SequentError`` if it cannot."""
        if not self._steps:
            raise DefinitionError(
                f"flow {self.name!r} has no steps; add some with add_step(...) before running"
            )
        return compile_flow(self.definition())

    def to_dot(self, expanded: bool = False, run_id: str | None = None) -> str:
        """The flow as Graphviz DOT text; ``run_id`` colours nodes by that run's statuses.

        ``expanded=True`` draws one node per step instance. Reads the store (read-only) only
        when ``run_id`` is given; raises ``RecoveryError`` when the store has no such run.
        """
        from .plan import graph_text

        return graph_text(self, expanded=expanded, run_id=run_id)

    def plan(self, run_mode: RunMode | None = None, recovery_run: str | None = None) -> DryRun:
        """A dry run: a ``sequent.plan.DryRun`` listing, in order, what a run would do.

        Runs nothing and writes nothing; a recover reads the store read-only. Raises what
        ``run()`` would raise before running (a flow that does not build, nothing to recover).
        """
        from .plan import dry_run

        return dry_run(self, run_mode=run_mode, recovery_run=recovery_run)

    # -- running ----------------------------------------------------------------------------

    def run(self, max_loops: int = -1) -> bool:
        """Run the flow (or recover a run of it); True when no failure went unhandled."""
        from .runner import run_flow

        return run_flow(self, max_loops=max_loops)

    def close(self) -> None:
        """Release the executor's workers and the store."""
        if self._backend is not None:
            self._backend.shutdown()
            self._backend = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Sequent:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- inside a step ----------------------------------------------------------------------

    def get_step_name(self) -> str | None:
        """The path of the step running here (``s1_s11_s111``), or None outside a step."""
        context = current()
        return context.name if context else None

    def get_step_sequence(self) -> str | None:
        """The sequence of the step instance running here (``1.2.1``), or None outside one."""
        context = current()
        return context.sequence if context else None

    def get_step_recovery(self) -> int | None:
        """0 on a fresh run, n on the n-th recover run; None outside a step."""
        context = current()
        return context.recovery if context else None

    @property
    def run_id(self) -> str | None:
        """The id of the run going on (inside a step) or of the latest run of this object."""
        context = current()
        return context.run_id if context else self._last_run_id

    def current(self) -> StepContext | None:
        """The whole step context (see ``sequent.current``)."""
        return current()

    def __getstate__(self) -> dict[str, Any]:
        # A copy sent to a step: enough to answer the step-context calls, nothing that runs.
        return {
            "name": self.name,
            "store_path": self.store_path,
            "config": self.config,
            "_last_run_id": self._last_run_id,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._steps = []
        self._paths = {}
        self._store = None
        self._backend = None
        self._proxy = True
        self.executor = None

    def __repr__(self) -> str:
        return f"Sequent({self.name!r}, steps={len(self._paths)})"


_STEP_ARGUMENTS = (
    "func args kwargs requires delay acquires releases recovery repeats config hosts retries "
    "retry_delay timeout"
).split()


def _unknown_arguments(step: str, unknown: Mapping[str, Any]) -> str:
    """The message for keyword arguments ``add_step`` does not take, with a likely fix."""
    hints = []
    for keyword in sorted(unknown):
        close = difflib.get_close_matches(keyword, _STEP_ARGUMENTS, n=1)
        hints.append(f"{keyword!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (
        f"step {step!r}: add_step got unknown argument {', '.join(hints)}; it takes "
        f"{', '.join(_STEP_ARGUMENTS)}"
    )


def _caller_file() -> Path | None:
    here = Path(__file__).resolve().parent
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith("<"):
            path = Path(filename).resolve()
            if here not in path.parents:
                return path
        elif filename not in ("<frozen runpy>",) and frame.f_back is None:
            return None
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _default_store(caller: Path | None) -> str:
    if caller is None:
        return str(Path.cwd() / "sequent.run.db")
    return str(caller.with_name(caller.stem + ".run.db"))




def _is_status(value: Any) -> bool:
    return isinstance(value, StepStatus) or (
        isinstance(value, str) and value in StepStatus.__members__
    )


def _status(value: Any, owner: str) -> StepStatus:
    status = value if isinstance(value, StepStatus) else StepStatus[value]
    if status not in CONDITIONS:
        raise DefinitionError(
            f"step {owner!r} requires status {status.value!r}; a requirement may name ready, "
            f"active, success, failure or complete"
        )
    return status


def _seconds(value: Any, what: str, step: str, allow_none: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DefinitionTypeError(
            f"step {step!r}: {what} must be a number of seconds, got {value!r}"
        )
    if value < 0 or not math.isfinite(value):
        raise DefinitionError(
            f"step {step!r}: {what} must be a finite number of seconds >= 0, got {value!r}"
        )
    return float(value)


def _timeout(value: Any, step: str) -> float | None:
    if value is None:
        return None
    seconds = _seconds(value, "timeout", step, allow_none=True)
    if seconds == 0:
        raise DefinitionError(f"step {step!r}: timeout must be > 0 seconds (or None), got 0")
    return seconds


def _count(value: Any, what: str, step: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DefinitionTypeError(f"step {step!r}: {what} must be a whole number, got {value!r}")
    if value < 0:
        raise DefinitionError(f"step {step!r}: {what} must be >= 0, got {value!r}")
    return value


def _resources(value: Any, what: str, step: str) -> tuple[tuple[ResourcePool, int], ...] | None:
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
    return tuple(result)


def _recovery(value: Any, step: str) -> Mapping[StepStatus, StepReplay]:
    policy = dict(DEFAULT_RECOVERY)
    if value is None:
        return policy
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


def _repeats(value: Any, step: str) -> Any:
    if value is None or callable(value):
        return value
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise DefinitionTypeError(
            f"step {step!r}: repeats must be a sequence, a range or a callable returning an "
            f"iterable, got {type(value).__name__} {value!r}"
        )
    return tuple(value)


def _hosts(value: Any, step: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Iterable) or not all(isinstance(h, str) and h for h in value):
        raise DefinitionTypeError(
            f"step {step!r}: hosts must be a list of worker names or addresses, got {value!r}"
        )
    hosts = tuple(value)
    if not hosts:
        raise DefinitionError(f"step {step!r}: hosts is empty; give at least one or None")
    return hosts
