"""The facade users touch: ``Sequent``, which builds, compiles, plans and runs a flow.

``add_step`` checks its arguments at once (``arguments.py``) and returns a handle
(``handles.py``); ``compile()`` freezes the handles into the compiler's ``Plan``; ``run()``
hands the plan, the executor and the store it owns to ``runner.run_flow``; ``plan()`` gives
the dry run. ``Step``, ``Event``, ``or_`` and ``and_`` are re-exported from ``handles``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import arguments, legacy
from .compiler import FlowDef, Plan, StepDef, compile_flow
from .config import LEGACY_KEYS, read_settings
from .context import StepContext, current
from .errors import (
    DefinitionError,
    DefinitionTypeError,
    DuplicateStepError,
    RecoveryError,
)
from .handles import And, Event, Or, Step, and_, or_, requirement
from .status import RunMode, StepStatus

if TYPE_CHECKING:
    from .plan import DryRun
    from .runner import FlowOptions

log = logging.getLogger("sequent")


class Sequent:
    """A program flow: build it with ``add_step``/``add_event``, then ``run()`` it."""

    def __init__(
        self,
        name: str = "",
        store: str = "",
        run_mode: RunMode = RunMode.restart,
        recovery_run: str | None = None,
        logging_level: int | str | None = None,
        config: Mapping[str, Any] | str | os.PathLike[str] | None = None,
        executor: Any = None,
        config_tag: str | None = None,
        run_id: str | None = None,
        **original: Any,
    ) -> None:
        caller = _caller_file()
        ignored = legacy.split_arguments(
            original, legacy.FLOW_ARGUMENTS, _FLOW_ARGUMENTS, "Sequent()"
        )
        if not isinstance(name, str):
            raise DefinitionTypeError(f"Sequent name must be a string, got {name!r}")
        if not isinstance(store, (str, os.PathLike)):
            raise DefinitionTypeError(
                f"Sequent store must be a file path or ':memory:', got {store!r}"
            )
        self.run_mode, self.recovery_run = arguments.run_selection(
            run_mode, recovery_run, run_id, "Sequent"
        )
        settings = read_settings(config, config_tag or None)
        self.config = settings.config
        legacy.check_database_store(str(store), settings.databases)
        if settings.logging_level is not None:  # checked even when logging_level= wins
            try:
                arguments.logging_level(settings.logging_level)
            except DefinitionError as exc:
                raise type(exc)(f"config LOGGING: {exc}") from None
        level = logging_level if logging_level is not None else settings.logging_level
        self.logging_level = arguments.logging_level(logging.INFO if level is None else level)
        self.name = name or (caller.stem if caller else "sequent")
        self.store_path = str(store) if store else _default_store(caller)
        self.executor = executor if executor is not None else self.config["task_construct"]
        if self.executor is not None:
            from .executors import backend_name

            if isinstance(self.executor, (str, type)):
                backend_name(self.executor)
        self._steps: list[Step] = []
        self._paths: dict[str, Step] = {}
        self._order = itertools.count()
        self._events = itertools.count(1)
        self._expressions: dict[Any, Any] = {}  # interned requirement expressions
        self._store: Any = None
        self._backend: Any = None
        self._last_run_id: str | None = None
        self._proxy = False
        self._ignored_step_arguments: dict[str, list[str]] = {}
        legacy.warn_ignored("Sequent()", arguments=ignored, config_keys=settings.ignored)

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
        parallel: int | bool = 1,
        **unknown: Any,
    ) -> Step:
        self._check_builder()
        path = self._new_path(parent, name, unknown)
        shown = "_".join(path)
        func, args, kwargs = arguments.call(shown, func, args, kwargs)
        definition = StepDef(
            name=name,
            path=path,
            path_name=shown,
            order=next(self._order),
            func=func,
            args=args,
            kwargs=kwargs,
            requires=requirement(self, requires, parent, shown),
            **arguments.options(
                shown,
                delay=delay,
                acquires=acquires,
                releases=releases,
                recovery=recovery,
                repeats=repeats,
                config=config,
                hosts=hosts,
                retries=retries,
                retry_delay=retry_delay,
                timeout=timeout,
                parallel=parallel,
            ),
        )
        if func is not None and definition.parallel != 1:
            raise DefinitionError(
                f"step {shown!r}: parallel= lets a container's iterations overlap, and "
                f"{shown!r} has a func; drop parallel= or add the work as its child steps"
            )
        step = Step(self, parent, definition)
        (self._steps.append if parent is None else parent.adopt)(step)
        self._paths[shown] = step
        for key in [*unknown, *(k for k in config or () if k in LEGACY_KEYS)]:
            self._ignored_step_arguments.setdefault(key, []).append(shown)
        return step

    def _new_path(
        self, parent: Step | None, name: Any, unknown: Mapping[str, Any]
    ) -> tuple[str, ...]:
        """The path of a new step ``name`` under ``parent``; raises if it cannot be added."""
        if not isinstance(name, str) or not name:
            raise DefinitionTypeError(f"step name must be a non-empty string, got {name!r}")
        wrong = [key for key in unknown if key not in legacy.STEP_ARGUMENTS]
        if wrong:
            raise DefinitionTypeError(
                arguments.unknown_arguments(name, wrong, legacy.STEP_ARGUMENTS)
            )
        if "/" in name or "@" in name or name != name.strip() or not name.isprintable():
            raise DefinitionError(
                f"step name {name!r} may not contain '/', '@' (the command line's STEP@SEQUENCE), "
                f"control characters or surrounding spaces; rename it"
            )
        parent_path = parent.definition.path if parent else ()
        path = (*parent_path, name)
        shown = "_".join(path)
        same = self._paths.get(shown)  # a dict look-up: flows of 100,000 steps build in seconds
        if same is not None and same.definition.path == path:
            where = f"container {parent.path!r}" if parent else "the flow"
            raise DuplicateStepError(
                f"step {name!r} is already defined in {where}; give the new step another name"
            )
        if same is not None:
            new = f"step {name!r} under {parent.path!r}" if parent else f"top-level step {name!r}"
            old = f"step {same.name!r} under {same.parent.path!r}" if same.parent else (
                f"top-level step {same.name!r}")  # fmt: skip
            raise DuplicateStepError(
                f"{new} would have the path {shown!r}, which {old} has already (paths join "
                f"names with '_'); rename one of them"
            )
        return path

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
        requirement(self, requires, None, f"event {event.number}", check_siblings=False)
        return event

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
        """Check the flow and expand it into a ``Plan``: the frozen graph of its step instances.

        Raises a ``SequentError`` if it cannot. (What a run of it would do is ``dry_run()``.)
        The first compile warns once about ``add_step`` arguments only the original used.
        """
        if not self._steps:
            raise DefinitionError(
                f"flow {self.name!r} has no steps; add some with add_step(...) before running"
            )
        plan = compile_flow(self.definition())
        if self._ignored_step_arguments:
            shown = [
                f"{key} (step {', '.join(repr(s) for s in steps)})"
                for key, steps in self._ignored_step_arguments.items()
            ]
            self._ignored_step_arguments = {}
            legacy.warn_ignored(f"flow {self.name!r}", stacklevel=4, add_step_arguments=shown)
        return plan

    def to_dot(self, expanded: bool = False, run_id: str | None = None) -> str:
        """The flow as Graphviz DOT text; ``run_id`` colours nodes by that run's statuses.

        ``expanded=True`` draws one node per step instance. Reads the store (read-only) only
        when ``run_id`` is given; raises ``RecoveryError`` when the store has no such run and
        ``StoreError`` when it is not a readable store.
        """
        from .compiler.dot import to_dot
        from .plan import latest_statuses

        plan = self.compile()
        statuses: dict[Any, StepStatus] = {}
        if run_id is not None:
            if not isinstance(run_id, str):
                raise DefinitionTypeError(
                    f"to_dot(run_id=...) takes a run id string, got {run_id!r}"
                )
            with self._reading() as store:
                statuses = latest_statuses(store, run_id)
        return to_dot(plan, expanded=expanded, statuses=statuses)

    def dry_run(
        self, run_mode: RunMode | None = None, recovery_run: str | None = None
    ) -> DryRun:
        """What a run would do, in order, running nothing: a ``sequent.plan.DryRun``.

        Runs nothing and writes nothing; a recover reads the store read-only. Raises what
        ``run()`` would raise before running (a flow that does not build, nothing to recover).
        ``plan()`` is the same call, named after the ``sequent plan`` command.
        """
        from .plan import dry_run, find_recovery

        mode = self.run_mode if run_mode is None else run_mode
        if not isinstance(mode, RunMode):
            raise DefinitionTypeError(
                f"dry_run(run_mode=...) takes sequent.RunMode.restart or RunMode.recover, got "
                f"{mode!r}"
            )
        if recovery_run is not None and not isinstance(recovery_run, str):
            raise DefinitionTypeError(
                f"dry_run(recovery_run=...) takes a run id, got {recovery_run!r}"
            )
        plan = self.compile()
        if mode is RunMode.restart:
            return dry_run(plan, self.name)
        wanted = recovery_run if recovery_run is not None else self.recovery_run
        with self._reading() as store:
            found = find_recovery(store, self.name, wanted)
        return dry_run(plan, self.name, found)

    def plan(self, run_mode: RunMode | None = None, recovery_run: str | None = None) -> DryRun:
        """The dry run (``dry_run()``), named after the ``sequent plan`` command."""
        return self.dry_run(run_mode=run_mode, recovery_run=recovery_run)

    # -- running ----------------------------------------------------------------------------

    def run(
        self,
        max_loops: int = -1,
        progress: Any = False,
        run_mode: RunMode | None = None,
        recovery_run: str | None = None,
        run_id: str | None = None,
        *,
        force: bool = False,
        **original: Any,
    ) -> bool:
        """Run the flow (or recover a run of it); True when no failure went unhandled.

        ``max_loops`` stops launching steps after that many scheduling rounds (the run stays
        recoverable); ``progress`` True draws a live display on standard error; ``run_mode``
        and ``recovery_run`` (or its original name ``run_id``) override the flow's own for this
        run only; ``force=True`` takes the run over from another orchestrator the store shows
        running it (check first that it is gone). Raises a ``SequentError`` before anything
        runs when the flow, its executor or its store cannot work, and ``LeaseError`` when
        another orchestrator holds the run.
        """
        from .runner import FlowOptions

        ignored = legacy.split_arguments(original, legacy.FLOW_ARGUMENTS, _RUN_ARGUMENTS, "run()")
        legacy.warn_ignored("run()", arguments=ignored)
        mode, recover = self.run_mode, self.recovery_run
        if run_mode is not None or recovery_run is not None or run_id is not None:
            mode, recover = arguments.run_selection(
                mode if run_mode is None else run_mode,
                recovery_run if recovery_run is not None or run_id is not None else recover,
                run_id,
                "run",
            )
        options = FlowOptions(
            flow_name=self.name,
            config=self.config,
            mode=mode,
            recovery_run=recover,
            logging_level=self.logging_level,
            max_loops=max_loops,
            progress=progress,
            force=force,
        )
        return self._run(options)

    def _run(self, options: FlowOptions) -> bool:
        """Run the flow as ``options`` say (``sequent run`` adds its step choices); the result."""
        from .executors import create_backend
        from .runner import check_logs_first, redeliver, reimported_main, run_flow
        from .store import open_store

        if reimported_main():
            log.debug("Flow %r not run: this process re-imports its parent's script", self.name)
            return False
        plan = self.compile()
        if self._backend is None:
            self._backend = create_backend(self.executor, **self._backend_options())
        if self._store is None:
            check_logs_first(options, self.store_path)  # a refusal, before the store is made
            self._store = open_store(self.store_path)
        finished = run_flow(plan, self._backend, self._store, options, begun=self._begun)
        self._last_run_id = finished.run_id
        redeliver(finished.interrupted_by)
        return finished.result

    def _begun(self, run_id: str) -> None:
        self._last_run_id = run_id

    def _backend_options(self) -> dict[str, Any]:
        from .executors import DEFAULT_EXECUTOR, backend_name

        options: dict[str, Any] = {"max_workers": max(self.config["max_concurrent"], 0) or None}
        method = self.config.get("start_method")
        if method and backend_name(self.executor or DEFAULT_EXECUTOR) == "process":
            options["start_method"] = method
        return options

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Any]:
        """The store this flow records into, for reading: the one open in this process if it
        ran here, else its file opened read-only (a store that holds no run if it is missing).
        """
        if self._store is not None:
            yield self._store
            return
        if self.store_path == ":memory:":
            raise RecoveryError(
                f"flow {self.name!r} uses an in-memory store and has not run in this process, "
                f"so there is no run to read; give the flow a store file"
            )
        from .store import read_store

        with read_store(self.store_path, missing_ok=True) as store:
            yield store

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
        self._expressions = {}
        self._store = None
        self._backend = None
        self._proxy = True
        self.executor = None

    def __repr__(self) -> str:
        return f"Sequent({self.name!r}, steps={len(self._paths)})"


_FLOW_ARGUMENTS = (
    "name store run_mode recovery_run logging_level config executor config_tag run_id"
).split()
_RUN_ARGUMENTS = ("max_loops", "progress", "run_mode", "recovery_run", "run_id")


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


__all__ = ["And", "Event", "Or", "Sequent", "Step", "and_", "or_"]
