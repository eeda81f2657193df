"""Validate a flow definition and compile it into a frozen networkx DAG of step instances.

``compile_flow`` is the compiler's entry point: pure, no I/O. In ``Plan.graph`` (built on first
use) nodes are ``NodeKey(path, sequence)`` with the ``NodeSpec`` under ``"spec"``; edges are
``kind="requires"`` (a sibling's status, under ``"statuses"``) or ``kind="contains"`` (a
container instance to its children).
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import CycleError, DefinitionError, UnknownStepError
from ..status import CONDITIONS
from .definitions import FlowDef, StepDef, path_name
from .expand import (
    _CHILDREN,
    ROOT,
    Iteration,
    NodeKey,
    NodeSpec,
    StepIndex,
    expand_iterations,
    index_steps,
)
from .requirements import NOTHING, Expr, atoms

if TYPE_CHECKING:
    import networkx as nx


@attrs.frozen(eq=False)
class Plan:
    """A compiled flow: every statically known step instance, its iterations, and the DAG.

    ``iterations[k]`` holds the iterations of container instance ``k`` (``ROOT`` for the flow);
    a container whose ``repeats`` is callable has none until the scheduler expands it.
    """

    flow: FlowDef
    index: StepIndex
    nodes: Mapping[NodeKey, NodeSpec]
    iterations: Mapping[NodeKey, tuple[Iteration, ...]]

    @functools.cached_property
    def graph(self) -> nx.DiGraph:
        """The frozen networkx DAG of ``nodes`` (see ``build_graph``), built on first use.

        A run needs only ``nodes``, ``iterations`` and ``index``; drawing and reviewing a flow
        read the graph. Building it for 100,000 nodes takes about a second, so only then.
        """
        return build_graph(self.nodes, self.iterations)

    def order(self) -> list[NodeKey]:
        """Every node in definition order, then sequence order."""
        return sorted(self.nodes, key=lambda key: self.nodes[key].rank)


def compile_flow(flow: FlowDef) -> Plan:
    """Validate ``flow`` and expand it into a ``Plan``.

    Raises ``UnknownStepError`` for a requirement on a step that is not a sibling,
    ``CycleError`` for requirements that form a cycle and ``DefinitionError`` for a leaf without
    a func.
    """
    with collection_paused():
        validate(flow)
        nodes: dict[NodeKey, NodeSpec] = {}
        iterations: dict[Any, Any] = {}
        iterations[ROOT] = expand_iterations(None, flow.steps, (None,), nodes, iterations)
        return Plan(flow=flow, index=index_steps(flow), nodes=nodes, iterations=iterations)


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """No garbage collection inside: compiling makes millions of objects that all live, so a
    collection would walk them all for nothing (it doubled the compile time of large flows)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def build_graph(
    nodes: Mapping[NodeKey, NodeSpec], iterations: Mapping[NodeKey, tuple[Iteration, ...]]
) -> nx.DiGraph:
    """The frozen DAG of ``nodes``: requirement edges between siblings, containment edges."""
    import networkx as nx  # only drawing and reviewing a flow need the graph

    graph = nx.DiGraph()
    graph.add_nodes_from((key, {"spec": spec}) for key, spec in nodes.items())
    edges: dict[tuple[NodeKey, NodeKey], list[str]] = {}
    for key, spec in nodes.items():
        for atom in spec.step.requirement_atoms:
            source = NodeKey(atom.name, key.sequence)
            edges.setdefault((source, key), []).append(atom.status.value)
    graph.add_edges_from(
        (source, target, {"kind": "requires", "statuses": tuple(statuses)})
        for (source, target), statuses in edges.items()
    )
    graph.add_edges_from(
        (container, child, {"kind": "contains", "ordinal": iteration.ordinal})
        for container, its in iterations.items()
        if container != ROOT
        for iteration in its
        for child in iteration.children
    )
    return nx.freeze(graph)


def validate(flow: FlowDef) -> None:
    """Check every sibling group of ``flow``: references, cycles and leaf/container shape.

    Raises ``UnknownStepError``, ``CycleError`` or ``DefinitionError`` naming the step.
    """
    _validate_siblings(flow.steps, "the flow")


def _validate_siblings(siblings: tuple[StepDef, ...], where: str) -> None:
    known: dict[str, StepDef] = {}  # made when a step first requires something (not in a fan)
    paths: set[tuple[str, ...]] = set()
    latest: dict[int, int] = {}  # expression (by id) -> the latest definition order it names
    ordered = True  # every step requires only steps defined before it: no cycle possible
    for step in siblings:
        if step.children or step.func is None or step.repeats is not None or step.parallel != 1:
            _check_shape(step)  # (not the plain leaf most steps are: no call for those)
        requires = step.requires
        if requires is NOTHING:  # nothing to check, no order to keep (most steps of a fan)
            continue
        last = latest.get(id(requires))
        if last is None:  # steps with equal requires share one expression: check it once
            if not known:
                known = {step.path_name: step for step in siblings}
                paths = {step.path for step in siblings}
            _check_atoms(step, requires, paths, where)
            sources = requires.compiled.sources
            last = latest[id(requires)] = max((known[name].order for name in sources), default=-1)
        ordered = ordered and last < step.order
    if not ordered:
        deps = {step.path_name: set(step.requires.compiled.sources) for step in siblings}
        names = _cycle(deps)
        if names:
            shown = " -> ".join((*names, names[0]))
            raise CycleError(
                f"requirements form a cycle in {where}: {shown}; remove one of these "
                f"requirements",
                cycle=names,
            )
    for step in filter(_CHILDREN, siblings):
        _validate_siblings(step.children, f"container {step.path_name!r}")


def _check_shape(step: StepDef) -> None:
    """Raise for a step whose func, children, repeats and parallel do not go together (the
    caller skips the plain leaf most steps are)."""
    if step.children and step.func is None:
        return
    if step.is_container and step.func is not None:
        raise DefinitionError(
            f"step {step.path_name!r} has both a func and child steps; a container runs "
            f"its children, so drop func= or move it into a child step"
        )
    if not step.is_container and step.func is None:
        raise DefinitionError(
            f"step {step.path_name!r} has no func and no child steps; give it func= or "
            f"add steps to it with {step.name}.add_step(...)"
        )
    if not step.is_container and step.parallel != 1:
        raise DefinitionError(
            f"step {step.path_name!r} has parallel={step.parallel} but no child steps; "
            f"parallel applies to containers, so add child steps or drop parallel="
        )
    if not step.is_container and step.repeats is not None:
        raise DefinitionError(
            f"step {step.path_name!r} has repeats= but no child steps; repeats applies to "
            f"containers, so add the work as a child step of {step.name!r}"
        )


def _check_atoms(step: StepDef, requires: Expr, paths: set[tuple[str, ...]], where: str) -> None:
    for atom in atoms(requires):
        if atom.path not in paths:
            other = atom.name
            raise UnknownStepError(
                f"step {step.path_name!r} requires {other!r}, which is not a sibling in "
                f"{where}; requires may name only steps of the same container, so move "
                f"{other!r} next to {step.path_name!r} or drop the requirement"
            )
        if atom.status not in CONDITIONS:
            raise DefinitionError(
                f"step {step.path_name!r} requires status {atom.status!r} of "
                f"{path_name(atom.path)!r}; use ready, active, success, failure or complete"
            )


def _cycle(deps: Mapping[str, set[str]]) -> tuple[str, ...]:
    """One cycle among ``deps`` (step -> steps it requires), in requirement order, or ``()``.

    Kahn's algorithm peels off the steps whose requirements are all peeled; what stays is on a
    cycle or behind one. Walking back from any of those through requirements that also stayed
    must come round to a step already seen: that stretch is a cycle.
    """
    waiting = {name: len(needs) for name, needs in deps.items()}
    dependents: dict[str, list[str]] = {name: [] for name in deps}
    for name, needs in deps.items():
        for need in needs:
            dependents[need].append(name)
    free = [name for name, count in waiting.items() if count == 0]
    while free:
        for dependent in dependents[free.pop()]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                free.append(dependent)
    stuck = [name for name, count in waiting.items() if count > 0]
    if not stuck:
        return ()
    seen: dict[str, int] = {}
    walk: list[str] = []
    name = stuck[0]
    while name not in seen:
        seen[name] = len(walk)
        walk.append(name)
        name = min(need for need in deps[name] if waiting[need] > 0)
    return tuple(reversed(walk[seen[name] :]))
