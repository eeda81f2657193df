"""One run of a compiled flow, from its plan to its result: check, record, schedule, summarise.

``run_flow(plan, backend, store, options)`` takes everything it needs as arguments and keeps
nothing: the caller (``Sequent.run``) owns the executor and the store across runs. Everything
that can be wrong with the input is found before the store is written or a step runs: steps
are checked for sendability, then the store opened and the run to recover looked up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .compiler import NodeKey, NodeSpec, Plan, StepDef, path_name
from .errors import DefinitionTypeError, NotSendableError
from .executors import RunOptions, Scheduler
from .legacy import SequentWarning
from .logfolder import LogFolder, RunFolder, check_log_root, default_logdir
from .logs import CLOSING, RunLogging
from .selection import Selection, select
from .status import RunMode, StepStatus

log = logging.getLogger("sequent")


@attrs.frozen
class FlowOptions:
    """What one run of a flow is asked to do, besides its plan, executor and store.

    ``config`` is the flow's configuration (``sequent.config``: ``logdir``, ``max_concurrent``,
    ``stop_on_exception``, and what an executor's ``prepare`` reads); ``max_loops`` -1 means
    no limit on scheduling rounds; ``progress`` True draws a live display on standard
    error (a rich ``Console`` draws on that one instead); ``force`` takes the run over from
    another orchestrator the store shows running it (see ``sequent.store.lease``). Raises
    ``DefinitionTypeError`` for a ``max_loops`` that is not a whole number.
    """

    flow_name: str
    config: Mapping[str, Any]
    mode: RunMode = RunMode.restart
    recovery_run: str | None = None
    logging_level: int = logging.INFO
    max_loops: int = attrs.field(default=-1)
    progress: Any = False
    #: ``--only`` / ``--rerun`` step paths and ``--downstream`` (see ``selection.py``).
    only: tuple[str, ...] = ()
    rerun: tuple[str, ...] = ()
    downstream: bool = False
    force: bool = False

    @max_loops.validator
    def _check_max_loops(self, attribute: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise DefinitionTypeError(f"run(max_loops=...) takes a whole number, got {value!r}")


@attrs.frozen
class Finished:
    """How a run ended: its ``result`` (True: no failure went unhandled), its id, and the
    signal (``"SIGTERM"``, ``"KeyboardInterrupt"``) that interrupted it, if any."""

    result: bool
    run_id: str
    interrupted_by: str | None = None


def run_flow(
    plan: Plan,
    backend: Any,
    store: Any,
    options: FlowOptions,
    begun: Callable[[str], None] | None = None,
) -> Finished:
    """Run ``plan`` once on ``backend``, recording into ``store`` (a restart or a recover).

    ``begun`` is called with the run id as soon as the run is recorded, so a caller knows which
    run it was even when the run then ends with an exception (a store that fills up mid-run).

    Raises ``NotSendableError`` when a step cannot reach a remote executor's workers,
    ``SelectionError`` for ``only``/``rerun`` that cannot work, the store's
    ``RecoveryError``/``StoreError``, ``LeaseError`` (another orchestrator holds the run) and
    ``LogFolderError`` (the log folder is a link or another user's) before anything runs or is
    written. A signal that interrupts the run is recorded and named in the result;
    ``redeliver`` hands it on afterwards.
    """
    if backend.remote:
        check_sendable(plan, backend.name)
    prepare = getattr(backend, "prepare", None)
    if prepare is not None:
        prepare(plan, options.config)  # e.g. Dask: connect, resolve hosts=; raises before any write
    selection = choose_steps(plan, store, options)
    session, folder = _begin(plan, backend, store, options)
    if begun is not None:
        begun(session.run_id)
    display, recorder = _display(plan, options, session.run_id, session)
    with session.releasing(), display, RunLogging(folder, options.logging_level):
        _opening_lines(backend, store, options, session, folder)
        _announce(plan, backend, options, session.run_id, prepared=prepare is not None)
        run_options = attrs.evolve(_run_options(plan, options, session), kept=selection.kept)
        previous = selection.previous(session.previous)
        scheduler = Scheduler(plan, backend, recorder, run_options, previous)
        result = False
        try:
            result = scheduler.run()
        finally:
            try:
                session.finish(result)
            finally:  # the run log ends with the result even when the store failed
                recovering = options.mode is RunMode.recover or bool(selection)
                _summary(scheduler, recovering)
                word = "success" if result else "failure"
                log.info("Processing finished with: %s", word, extra=CLOSING)
    return Finished(result, session.run_id, scheduler.interrupted_by)


def _display(plan: Plan, options: FlowOptions, run_id: str, session: Any) -> tuple[Any, Any]:
    """The live progress display (or a no-op) and the recorder that feeds it and ``session``."""
    if not options.progress:
        return contextlib.nullcontext(), session
    from .progress import LiveProgress

    console = None if options.progress is True else options.progress
    display = LiveProgress(plan, options.flow_name, run_id, console=console)
    return display, display.wrap(session)


def _opening_lines(
    backend: Any, store: Any, options: FlowOptions, session: Any, folder: LogFolder
) -> None:
    """The run log's first lines: the store, the run, and how it differs from the last try."""
    log.info("Sequent store file: %s", store.path)
    log.info(
        "Run %s of flow %r (%s, attempt %d) on the %s executor; logs in %s",
        session.run_id,
        options.flow_name,
        options.mode.value,
        session.attempt,
        backend.name,
        folder.path,
    )
    for message in getattr(session, "differences", ()):
        # a run recorded for another flow name is recovered as asked, but said loudly
        other_flow = " was recorded for flow " in message
        log.log(logging.WARNING if other_flow else logging.INFO, "%s", message)


def check_logs_first(options: FlowOptions, store_path: str) -> None:
    """Refuse the log folder a run would refuse, before its store is made (exit 2 writes nothing).

    A recover given no ``logdir`` is not checked here: it continues in the folder its run
    recorded, which only the store knows, and which ``_begin`` checks before anything is written
    (a recover never makes a store). Raises ``LogFolderError``.
    """
    logdir = options.config.get("logdir")
    if logdir or options.mode is not RunMode.recover:
        check_log_root(logdir or default_logdir(store_path), options.flow_name)


def _begin(plan: Plan, backend: Any, store: Any, options: FlowOptions) -> tuple[Any, LogFolder]:
    """Record the start of the run and make its log folder, in one transaction of the store."""
    logs = RunFolder(
        options.config.get("logdir") or None,  # None: a recover continues where its run logged
        options.flow_name,
        options.config.get("log_permissions", "private"),
        default_logdir(store.path),
    )
    try:
        session = store.begin(
            plan,
            flow_name=options.flow_name,
            mode=options.mode,
            recovery_run=options.recovery_run,
            executor=backend.name,
            logs=logs,  # made inside the transaction that records the start
            force=options.force,
        )
    except BaseException:
        logs.close()
        raise
    assert logs.folder is not None
    return session, logs.folder


def _announce(plan: Plan, backend: Any, options: FlowOptions, run_id: str, prepared: bool) -> None:
    """Log where steps run and what the executor ignores; settle a recover's orphans."""
    if hasattr(backend, "where"):
        log.info("Steps run on %s", backend.where())
    for notice in getattr(backend, "notices", ()):  # said in prepare, before the log was open
        log.warning("%s", notice)
    if not prepared:
        _warn_hosts_ignored(plan, backend.name)
    settle = getattr(backend, "settle_orphans", None)
    if settle is not None and options.mode is RunMode.recover:
        settle(run_id)  # steps its dead orchestrator left running: never twice at once


def _run_options(plan: Plan, options: FlowOptions, session: Any) -> RunOptions:
    config = options.config
    return RunOptions(
        run_id=session.run_id,
        flow_name=options.flow_name,
        recovery=session.attempt,
        max_concurrent=max(config["max_concurrent"], 0),
        max_loops=options.max_loops,
        stop_on_exception=_inherited(plan, "stop_on_exception", config["stop_on_exception"]),
        step_config=_own_config,
        logger_name=f"sequent.{options.flow_name}",
        lease=getattr(session, "lease_watch", None),
    )


def reimported_main() -> bool:
    """True in a child process (spawn, forkserver, a Dask worker) while it re-imports the main
    script of its parent, as ``__mp_main__``: a script without an ``if __name__ ==
    "__main__":`` guard then builds and runs its flows again, and those runs must not reach
    the store (the parent's run, and its recover, are the real ones)."""
    if "__mp_main__" not in sys.modules:  # the name only multiprocessing's children import
        return False
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__mp_main__":
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _warn_hosts_ignored(plan: Plan, executor: str) -> None:
    """One ``SequentWarning`` per run naming the steps whose ``hosts=`` a local executor ignores,
    pointing at the caller's line outside the package (as the original's leftovers warn)."""
    named = sorted({spec.step.path_name for spec in plan.nodes.values() if spec.step.hosts})
    if not named:
        return
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    level, frame = 1, sys._getframe(0)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(package):
        level, frame = level + 1, frame.f_back
    warnings.warn(
        f"hosts= is ignored on the {executor} executor (it runs every step on this machine); "
        f"steps with hosts: {', '.join(named)}. Use executor='dask' to place them on Dask "
        "workers, or drop hosts= to silence this warning",
        SequentWarning,
        stacklevel=level,
    )


def redeliver(reason: str | None) -> None:
    """Hand the signal that interrupted a run, now recorded, to the handler it would have met.

    Python's default handlers make SIGINT raise ``KeyboardInterrupt`` and SIGTERM end the
    process (thread steps still running are abandoned); an application's own handler is called
    instead, and ``run()`` then returns False. Does nothing for None.
    """
    if reason is None:
        return
    if reason == "KeyboardInterrupt":
        raise KeyboardInterrupt
    signum = getattr(signal, reason, None)
    if signum in (signal.SIGINT, signal.SIGTERM):
        signal.raise_signal(signum)


def check_sendable(plan: Plan, executor: str) -> None:
    """Raise ``NotSendableError`` for the first step whose func or arguments cannot be pickled."""
    import cloudpickle  # only runs whose steps go to other processes need it

    checked: dict[int, Any] = {}  # values already pickled (kept, so their ids stay theirs)
    for step in plan.index.steps.values():
        if step.is_container:
            _check_items(step, executor, cloudpickle.dumps)
            continue
        for what, value in _parts(step):
            if id(value) in checked:
                continue  # one function shared by many steps is pickled once
            checked[id(value)] = value
            try:
                cloudpickle.dumps(value)
            except Exception as exc:
                raise NotSendableError(
                    f"step {step.path_name!r}: its {what} cannot be sent to a {executor} worker "
                    f"({type(exc).__name__}: {exc}); pass plain data (or create the object "
                    f"inside the step), or use executor='thread'"
                ) from exc


def _check_items(step: StepDef, executor: str, dumps: Callable[[Any], bytes]) -> None:
    """Raise ``NotSendableError`` for an item of ``step``'s repeats that cannot be pickled
    (each step of an iteration is sent its item)."""
    items = step.repeats
    if not isinstance(items, tuple) or not items:
        return
    try:
        dumps(items)  # one call for all: the common case
    except Exception:
        pass
    else:
        return
    for ordinal, item in enumerate(items, 1):
        try:
            dumps(item)
        except Exception as exc:
            raise NotSendableError(
                f"step {step.path_name!r}: item {ordinal} of its repeats ({type(item).__name__}) "
                f"cannot be sent to a {executor} worker with the steps of that iteration "
                f"({type(exc).__name__}: {exc}); repeat over plain data (a name, a path, a "
                f"number) and create the object inside the step, or use executor='thread'"
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
            value, parts = default, index.steps[path].path
            while parts:  # the step, then each container it is in, from the inside out
                config = index.steps[path_name(parts)].config
                if key in config:
                    value = config[key]
                    break
                parts = parts[:-1]
            cache[path] = value
        return cache[path]

    return lookup


def _own_config(spec: NodeSpec, key: str, default: Any) -> Any:
    return spec.step.config.get(key, default)


def choose_steps(plan: Plan, store: Any, options: FlowOptions) -> Selection:
    """The steps ``only``/``rerun`` choose, checked against the run to recover (read only)."""
    if not options.only and not options.rerun:
        return Selection()
    previous: Mapping[NodeKey, StepStatus] = {}
    run_id = None
    if options.mode is RunMode.recover:
        found = store.recovery(options.flow_name, options.recovery_run)
        previous, run_id = found.previous, found.run_id
    return select(plan, options.only, options.rerun, options.downstream, previous, run_id)


def _counts(scheduler: Scheduler) -> str:
    """``N recovered, M ran`` (and ``K kept`` for steps ``--only`` left out), leaves only."""
    nodes = scheduler.state.nodes
    leaves = [key for key in scheduler.ran if not nodes[key].step.is_container]
    replayed = scheduler.replayed
    recovered = sum(1 for status in replayed.values() if status is StepStatus.success)
    text = f"{recovered} recovered, {len(leaves)} ran"
    kept = len(replayed) - recovered
    return text + (f", {kept} kept" if kept else "")


def _summary(scheduler: Scheduler, recovering: bool = False) -> None:
    """Log the counts per status, steps and containers apart, then the steps that went wrong.

    A recover (or a run choosing steps) first says how many steps it recovered and ran."""
    state = scheduler.state
    steps: Counter[str] = Counter()
    containers: Counter[str] = Counter()
    for key, spec in state.nodes.items():
        status = state.status.get(key)
        counts = containers if spec.step.is_container else steps
        counts[status.value if status is not None else "not started"] += 1
    text = _counted(steps, "step")
    if recovering:
        text = f"{_counts(scheduler)}; {text}"
    if containers:
        text += f"; {_counted(containers, 'container')}"
    log.info("Summary: %s", text)
    for status in (StepStatus.failure, StepStatus.skipped, StepStatus.interrupted):
        keys = sorted(
            (k for k, v in state.status.items() if v is status), key=lambda k: state.nodes[k].rank
        )
        leaves = [k for k in keys if not state.nodes[k].step.is_container]
        boxes = [k for k in keys if state.nodes[k].step.is_container]
        if keys:
            text = _listed(leaves) if leaves else "no steps"
            if boxes:
                text += f" (containers: {_listed(boxes)})"
            level = logging.INFO if status is StepStatus.skipped else logging.WARNING
            log.log(level, "%s: %s", status.value.capitalize(), text)


def _counted(counts: Counter[str], noun: str) -> str:
    """``5 steps: 4 success, 1 failure``: the total, then each status in StepStatus order."""
    total = sum(counts.values())
    order = [status.value for status in StepStatus] + ["not started"]
    parts = [f"{counts[name]} {name}" for name in order if counts[name]]
    return f"{total} {noun}{'' if total == 1 else 's'}" + (f": {', '.join(parts)}" if parts else "")


def _listed(keys: list[Any]) -> str:
    """The first 20 of ``keys`` as ``path/sequence``, and how many more there are."""
    more = f" and {len(keys) - 20} more" if len(keys) > 20 else ""
    return ", ".join(str(k) for k in keys[:20]) + more

__all__ = ["Finished", "FlowOptions", "RunMode", "check_sendable", "redeliver", "run_flow"]
