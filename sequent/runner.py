"""One run of a flow, from its definition to its result: compile, check, record, schedule.

Everything that can be wrong with the input is found before the store is written or a step
runs: the plan is compiled, the executor resolved, steps checked for sendability, the store
opened and the run to recover looked up, in that order.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections import Counter
from typing import TYPE_CHECKING, Any

import cloudpickle

from .compiler import NodeSpec, Plan, StepDef
from .errors import NotSendableError
from .executors import RunOptions, Scheduler, create_backend
from .logs import CLOSING, RunLogging, run_log_dir
from .status import RunMode, StepStatus
from .store import open_store

if TYPE_CHECKING:
    from .flow import Sequent

log = logging.getLogger("sequent")


def run_flow(flow: Sequent, max_loops: int = -1, progress: Any = False) -> bool:
    """Run ``flow`` once (a restart or a recover, as the flow says); True on success.

    ``progress`` True shows a live display on standard error (a rich ``Console`` to draw on
    another one); the ``sequent`` command asks for it when standard error is a terminal.
    """
    if isinstance(max_loops, bool) or not isinstance(max_loops, int):
        from .errors import DefinitionTypeError

        raise DefinitionTypeError(f"run(max_loops=...) takes a whole number, got {max_loops!r}")
    if reimported_main():
        log.debug("Flow %r not run: this process re-imports its parent's script", flow.name)
        return False
    plan = flow.compile()
    config = flow.config
    max_concurrent = config["max_concurrent"] if config["max_concurrent"] > 0 else 0
    if flow._backend is None:
        flow._backend = create_backend(flow.executor, **_backend_options(flow, max_concurrent))
    backend = flow._backend
    if backend.remote:
        check_sendable(plan, backend.name)
    prepare = getattr(backend, "prepare", None)
    if prepare is not None:
        prepare(plan, config)  # e.g. Dask: connect, resolve hosts=; raises before any write
    if flow._store is None:
        flow._store = open_store(flow.store_path)
    store = flow._store
    session = store.begin(
        plan,
        flow_name=flow.name,
        mode=flow.run_mode,
        recovery_run=flow.recovery_run,
        executor=backend.name,
    )
    flow._last_run_id = session.run_id
    folder = run_log_dir(config["logdir"], flow.name, session.run_id)
    options = RunOptions(
        run_id=session.run_id,
        flow_name=flow.name,
        recovery=session.attempt,
        max_concurrent=max_concurrent,
        max_loops=max_loops,
        stop_on_exception=_inherited(plan, "stop_on_exception", config["stop_on_exception"]),
        step_config=_own_config,
        logger_name=f"sequent.{flow.name}",
    )
    recorder: Any = session
    display: Any = contextlib.nullcontext()
    if progress:
        from .progress import LiveProgress

        console = None if progress is True else progress
        display = LiveProgress(plan, flow.name, session.run_id, console=console)
        recorder = display.wrap(session)
    with display, RunLogging(folder, flow.logging_level):
        log.info("Sequent store file: %s", store.path)
        log.info(
            "Run %s of flow %r (%s, attempt %d) on the %s executor; logs in %s",
            session.run_id,
            flow.name,
            flow.run_mode.value,
            session.attempt,
            backend.name,
            folder,
        )
        for message in getattr(session, "differences", ()):
            log.info("%s", message)
        if hasattr(backend, "where"):
            log.info("Steps run on %s", backend.where())
        if prepare is None:
            _warn_hosts_ignored(plan, backend.name)
        settle = getattr(backend, "settle_orphans", None)
        if settle is not None and flow.run_mode is RunMode.recover:
            settle(session.run_id)  # steps its dead orchestrator left running: never twice at once
        scheduler = Scheduler(plan, backend, recorder, options, previous=session.previous)
        result = False
        try:
            result = scheduler.run()
        finally:
            try:
                session.finish(scheduler.state.result() and not scheduler._halted)
            finally:  # the run log ends with the result even when the store failed
                _summary(scheduler)
                word = "success" if result else "failure"
                log.info("Processing finished with: %s", word, extra=CLOSING)
    if scheduler.interrupted_by:
        _redeliver(scheduler.interrupted_by)
    return result


def reimported_main() -> bool:
    """True in a child process (spawn, forkserver, a Dask worker) while it re-imports the main
    script of its parent, as ``__mp_main__``: a script without an ``if __name__ ==
    "__main__":`` guard then builds and runs its flows again, and those runs must not reach
    the store (the parent's run, and its recover, are the real ones)."""
    import sys

    if "__mp_main__" not in sys.modules:  # the name only multiprocessing's children import
        return False
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__mp_main__":
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _warn_hosts_ignored(plan: Plan, executor: str) -> None:
    """One warning per run naming the steps whose ``hosts=`` a local executor ignores."""
    named = sorted({spec.step.path_name for spec in plan.nodes.values() if spec.step.hosts})
    if named:
        log.warning(
            "hosts= is ignored on the %s executor (it runs every step on this machine); "
            "steps with hosts: %s. Use executor='dask' to place them on Dask workers",
            executor,
            ", ".join(named),
        )


def _redeliver(reason: str) -> None:
    """Hand the signal that interrupted a run, now recorded, to the handler it would have met.

    Python's default handlers make SIGINT raise ``KeyboardInterrupt`` and SIGTERM end the
    process (thread steps still running are abandoned); an application's own handler is called
    instead, and ``run()`` then returns False.
    """
    if reason == "KeyboardInterrupt":
        raise KeyboardInterrupt
    signum = getattr(signal, reason, None)
    if signum in (signal.SIGINT, signal.SIGTERM):
        signal.raise_signal(signum)


def _backend_options(flow: Sequent, max_concurrent: int) -> dict[str, Any]:
    from .executors import DEFAULT_EXECUTOR, backend_name

    options: dict[str, Any] = {"max_workers": max(max_concurrent, 0) or None}
    method = flow.config.get("start_method")
    if method and backend_name(flow.executor or DEFAULT_EXECUTOR) == "process":
        options["start_method"] = method
    return options


def check_sendable(plan: Plan, executor: str) -> None:
    """Raise ``NotSendableError`` for the first step whose func or arguments cannot be pickled."""
    seen: set[int] = set()
    for spec in plan.nodes.values():
        step = spec.step
        if step.is_container or id(step) in seen:
            continue
        seen.add(id(step))
        for what, value in _parts(step):
            try:
                cloudpickle.dumps(value)
            except Exception as exc:
                raise NotSendableError(
                    f"step {step.path_name!r}: its {what} cannot be sent to a {executor} worker "
                    f"({type(exc).__name__}: {exc}); pass plain data (or create the object "
                    f"inside the step), or use executor='thread'"
                ) from exc


def _parts(step: StepDef) -> list[tuple[str, Any]]:
    parts: list[tuple[str, Any]] = [("func", step.func)]
    parts += [(f"argument {i}", value) for i, value in enumerate(step.args)]
    parts += [(f"keyword argument {name!r}", value) for name, value in step.kwargs.items()]
    return parts


def _inherited(plan: Plan, key: str, default: Any) -> Any:
    """A lookup of ``key`` in a step's config, then its containers', then the flow's."""
    index = plan.index
    cache: dict[str, Any] = {}

    def lookup(spec: NodeSpec) -> Any:
        path = spec.key.path
        if path not in cache:
            value, current = default, path
            while current:
                config = index.steps[current].config
                if key in config:
                    value = config[key]
                    break
                current = index.parents[current]
            cache[path] = value
        return cache[path]

    return lookup


def _own_config(spec: NodeSpec, key: str, default: Any) -> Any:
    return spec.step.config.get(key, default)


def _summary(scheduler: Scheduler) -> None:
    state = scheduler.state
    counts = Counter(status.value for status in state.status.values())
    never = sum(1 for key in state.nodes if key not in state.status)
    parts = [f"{counts[s.value]} {s.value}" for s in StepStatus if counts[s.value]]
    if never:
        parts.append(f"{never} not started")
    log.info("Summary: %s", ", ".join(parts) or "nothing ran")
    for status in (StepStatus.failure, StepStatus.skipped, StepStatus.interrupted):
        keys = sorted(
            (k for k, v in state.status.items() if v is status), key=lambda k: state.nodes[k].rank
        )
        if keys:
            shown = ", ".join(str(k) for k in keys[:20])
            more = f" and {len(keys) - 20} more" if len(keys) > 20 else ""
            level = logging.INFO if status is StepStatus.skipped else logging.WARNING
            log.log(level, "%s: %s%s", status.value.capitalize(), shown, more)


__all__ = ["RunMode", "check_sendable", "run_flow"]
