"""Random flows for the property tests: a plain description, a builder, and a reference model.

A ``FlowSpec`` describes a flow as data (so hypothesis can print and shrink it); ``build``
turns it into a ``sequent.Sequent``; ``expected`` computes, independently of sequent's own state
machine, the status every node must end with when no ``stop_on_exception`` cuts the run short.

Flows are acyclic by construction: a step may only require siblings defined before it.
Containers may run their iterations in parallel (``parallel`` 1, 2 or 0). Leaves behave the
same in every iteration, so which iterations begin is known without timing: all of them when
the first one succeeds, else the first ``parallel`` (all, for 0), which begin together.
Leaf kinds: ``ok`` (``operator.add``), ``boom`` (``operator.truediv(1, 0)`` raises) and ``die``
(``os._exit(3)``: the worker process dies; process-based executors only) are builtins, so they
can be sent to any executor; ``logged`` and ``flaky`` append each call to a
side file, and ``flaky`` fails on its first call per node (see ``called``).
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

import sequent as seq
from sequent.status import StepStatus

S = StepStatus
CONDITIONS = (S.ready, S.active, S.success, S.failure, S.complete)
NAMES = "abcd"


# -- the description ----------------------------------------------------------------------


@dataclass(frozen=True)
class Atom:
    """``(earlier sibling number, status)``."""

    target: int
    status: StepStatus


@dataclass(frozen=True)
class Op:
    """``or_``/``and_`` (``kind``) or a plain tuple (``"tuple"``, an AND) of expressions."""

    kind: str
    items: tuple[Expr, ...]


Expr = Atom | Op


@dataclass(frozen=True)
class StepSpec:
    """A leaf (``kind`` ok/boom/flaky) or a container (``kind`` box, with ``children``)."""

    kind: str
    requires: Expr | None = None
    as_event: bool = False
    repeats: tuple[int, ...] | None = None
    children: tuple[StepSpec, ...] = ()
    stop: bool | None = None  # the step's own config stop_on_exception, None if unset
    retries: int = 0
    parallel: int = 1  # a container's iterations at once (0: no limit)


@dataclass(frozen=True)
class FlowSpec:
    """A whole flow: top-level steps and the flow's config."""

    steps: tuple[StepSpec, ...]
    stop: bool = True
    max_concurrent: int = 0

    def size(self) -> int:
        """The number of nodes a full run (every container entered) would have."""
        return sum(_size(step) for step in self.steps)


def _size(step: StepSpec) -> int:
    if step.kind != "box":
        return 1
    reps = 1 if step.repeats is None else len(step.repeats)
    return 1 + reps * sum(_size(child) for child in step.children)


# -- strategies ---------------------------------------------------------------------------


def expressions(earlier: int, depth: int = 2) -> st.SearchStrategy[Expr]:
    """A requirement over sibling numbers ``0..earlier-1``, nesting or_/and_/tuples."""
    atoms = st.builds(Atom, st.integers(0, earlier - 1), st.sampled_from(CONDITIONS))
    if depth == 0:
        return atoms
    inner = expressions(earlier, depth - 1)
    ops = st.builds(
        Op,
        st.sampled_from(("or", "and", "tuple")),
        st.lists(inner, min_size=1, max_size=3).map(tuple),
    )
    return st.one_of(atoms, atoms, ops)


@st.composite
def sibling_groups(
    draw: Any, depth: int, leaf_kinds: tuple[str, ...], max_siblings: int
) -> tuple[StepSpec, ...]:
    """One container's children (or the flow's steps); containers only above ``depth`` 1."""
    count = draw(st.integers(1, max_siblings))
    steps = []
    for number in range(count):
        requires = None
        if number and draw(st.booleans()):
            requires = draw(expressions(number))
        as_event = requires is not None and draw(st.integers(0, 4)) == 0
        stop = draw(st.sampled_from((None, None, None, True, False)))
        if depth > 1 and draw(st.integers(0, 2)) == 0:
            repeats = draw(st.one_of(st.none(), st.lists(st.integers(0, 9), max_size=3).map(tuple)))
            children = draw(sibling_groups(depth - 1, leaf_kinds, max(2, max_siblings - 1)))
            parallel = draw(st.sampled_from((1, 1, 2, 0)))
            steps.append(
                StepSpec("box", requires, as_event, repeats, children, stop=stop, parallel=parallel)
            )
        else:
            kind = draw(st.sampled_from(leaf_kinds))
            retries = draw(st.sampled_from((0, 0, 0, 1))) if kind == "boom" else 0
            steps.append(StepSpec(kind, requires, as_event, stop=stop, retries=retries))
    return tuple(steps)


def flows(
    leaf_kinds: tuple[str, ...] = ("ok", "ok", "boom"),
    max_siblings: int = 4,
    depth: int = 3,
    stop: st.SearchStrategy[bool] | None = None,
) -> st.SearchStrategy[FlowSpec]:
    """Random flows up to ``depth`` levels of containers with 0..3 static repeats."""
    return st.builds(
        FlowSpec,
        sibling_groups(depth, leaf_kinds, max_siblings),
        stop if stop is not None else st.booleans(),
        st.sampled_from((0, 0, 1, 2, 3)),
    )


# -- building -----------------------------------------------------------------------------


def called(marker_dir: str, log_file: str, fail_first: bool) -> None:
    """Append ``path@sequence recovery ok|fail`` to ``log_file``; with ``fail_first``, fail the
    first call for this node (a marker file in ``marker_dir`` remembers it) and succeed later.
    """
    context = seq.current()
    assert context is not None
    node = f"{context.name}@{context.sequence}"
    marker = Path(marker_dir) / node
    fail = fail_first and not marker.exists()
    with open(log_file, "a", encoding="utf-8") as log:
        log.write(f"{node} {context.recovery} {'fail' if fail else 'ok'}\n")
    if fail:
        marker.touch()
        raise RuntimeError(f"first attempt of {node} fails on purpose")


def build(
    spec: FlowSpec,
    executor: Any,
    *,
    store: str = ":memory:",
    logdir: str,
    name: str = "prop",
    side_files: tuple[str, str] | None = None,
    run_mode: seq.RunMode = seq.RunMode.restart,
) -> seq.Sequent:
    """The ``Sequent`` that ``spec`` describes."""
    flow = seq.Sequent(
        name=name,
        store=store,
        executor=executor,
        run_mode=run_mode,
        logging_level="WARNING",
        config={
            "stop_on_exception": spec.stop,
            "max_concurrent": spec.max_concurrent,
            "logdir": logdir,
        },
    )
    _add_group(flow, flow, spec.steps, side_files)
    return flow


def _add_group(
    flow: seq.Sequent, parent: Any, steps: tuple[StepSpec, ...], side_files: Any
) -> None:
    handles: list[seq.Step] = []
    for number, step in enumerate(steps):
        options: dict[str, Any] = {}
        if step.requires is not None:
            requires: Any = _requirement(step.requires, handles)
            if step.as_event:
                requires = flow.add_event(requires)
            options["requires"] = requires
        if step.stop is not None:
            options["config"] = {"stop_on_exception": step.stop}
        name = NAMES[number]
        if step.kind == "box":
            handle = parent.add_step(
                name, repeats=step.repeats, parallel=step.parallel, **options
            )
            _add_group(flow, handle, step.children, side_files)
        else:
            func, args = _leaf(step.kind, side_files)
            handle = parent.add_step(name, func=func, args=args, retries=step.retries, **options)
        handles.append(handle)


def _leaf(kind: str, side_files: Any) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    if kind == "ok":
        return operator.add, (1, 2)
    if kind == "boom":
        return operator.truediv, (1, 0)
    if kind == "die":
        return os._exit, (3,)
    assert kind in ("flaky", "logged") and side_files is not None
    return called, (*side_files, kind == "flaky")


def _requirement(expr: Expr, handles: list[seq.Step]) -> Any:
    if isinstance(expr, Atom):
        return (handles[expr.target], expr.status)
    items = tuple(_requirement(item, handles) for item in expr.items)
    if expr.kind == "or":
        return seq.or_(*items)
    if expr.kind == "and":
        return seq.and_(*items)
    return items  # a plain tuple of requirements means AND


# -- the reference model -------------------------------------------------------------------


@dataclass
class Expected:
    """What a run without stop_on_exception must end with."""

    status: dict[tuple[str, str], StepStatus] = field(default_factory=dict)
    result: bool = True
    #: Nodes whose failure reaches the top with stop_on_exception in force: a run may stop.
    stoppers: set[tuple[str, str]] = field(default_factory=set)
    #: The kind of every node (``box`` for containers).
    kind: dict[tuple[str, str], str] = field(default_factory=dict)


def expected(spec: FlowSpec, succeeds: Callable[[StepSpec], bool] | None = None) -> Expected:
    """The final status of every node, computed from the description alone.

    ``succeeds`` says whether a leaf's call succeeds (default: all but ``boom``, ``die`` and the
    first call of ``flaky``).
    Nodes of container iterations that never start, and the children of skipped containers,
    get no status.
    """
    outcome = succeeds or (lambda step: step.kind not in ("boom", "die", "flaky"))
    model = Expected()
    failed = _group(spec.steps, (), "1", spec.stop, True, outcome, model)
    model.result = not failed
    return model


def _group(
    steps: tuple[StepSpec, ...],
    parent: tuple[str, ...],
    sequence: str,
    stop: bool,
    escalates: bool,
    outcome: Callable[[StepSpec], bool],
    model: Expected,
) -> bool:
    """Run one iteration of a sibling group; True when a failure in it went unhandled."""
    handled = _handled(steps)
    done: list[tuple[StepStatus, bool]] = []  # (status, was ready) per earlier sibling
    failed = False
    for number, step in enumerate(steps):
        path = (*parent, NAMES[number])
        key = ("_".join(path), sequence)
        own_stop = stop if step.stop is None else step.stop
        ready = step.requires is None or _holds(step.requires, done)
        if not ready:
            status = S.skipped
        elif step.kind != "box":
            status = S.success if outcome(step) else S.failure
        else:
            status = S.success
            items = (None,) if step.repeats is None else step.repeats
            begun = len(items) if not step.parallel else min(step.parallel, len(items))
            for ordinal, _ in enumerate(items, start=1):
                child_escalates = escalates and not handled[number]
                if _group(
                    step.children,
                    path,
                    f"{sequence}.{ordinal}",
                    own_stop,
                    child_escalates,
                    outcome,
                    model,
                ):
                    status = S.failure
                    if ordinal >= begun:
                        break  # the iterations begun with this one still run to their end
        model.status[key] = status
        model.kind[key] = step.kind
        done.append((status, ready))
        if status is S.failure and not handled[number]:
            failed = True
            if escalates and own_stop:
                model.stoppers.add(key)
    return failed


def _handled(steps: tuple[StepSpec, ...]) -> list[bool]:
    handled = [False] * len(steps)
    for step in steps:
        for atom in _atoms(step.requires):
            if atom.status in (S.failure, S.complete):
                handled[atom.target] = True
    return handled


def _atoms(expr: Expr | None) -> Iterator[Atom]:
    if expr is None:
        return
    if isinstance(expr, Atom):
        yield expr
        return
    for item in expr.items:
        yield from _atoms(item)


def _holds(expr: Expr, done: list[tuple[StepStatus, bool]]) -> bool:
    if isinstance(expr, Atom):
        status, ready = done[expr.target]
        if expr.status in (S.ready, S.active):
            return ready
        if expr.status is S.complete:
            return status in (S.success, S.failure)
        return status is expr.status
    values = [_holds(item, done) for item in expr.items]
    return any(values) if expr.kind == "or" else all(values)


def kinds(spec: FlowSpec) -> set[str]:
    """The leaf kinds ``spec`` uses."""
    found: set[str] = set()

    def visit(steps: tuple[StepSpec, ...]) -> None:
        for step in steps:
            found.add(step.kind)
            visit(step.children)

    visit(spec.steps)
    return found
