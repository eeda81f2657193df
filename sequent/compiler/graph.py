"""Validate a flow definition and compile it into a frozen networkx DAG of step instances.

``compile_flow`` is the compiler's entry point: pure, no I/O. Nodes are ``NodeKey(path,
sequence)`` with the ``NodeSpec`` under ``"spec"``; edges are ``kind="requires"`` (a sibling's
status, under ``"statuses"``) or ``kind="contains"`` (a container instance to its children).
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import networkx as nx

from ..errors import CycleError, DefinitionError, UnknownStepError
from ..status import StepStatus
from .definitions import FlowDef, StepDef, atoms, path_name
from .expand import (
    ROOT,
    Iteration,
    NodeKey,
    NodeSpec,
    StepIndex,
    expand_iterations,
    index_steps,
)


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
    graph: nx.DiGraph

    def order(self) -> list[NodeKey]:
        """Every node in definition order, then sequence order."""
        return sorted(self.nodes, key=lambda key: self.nodes[key].rank)


def compile_flow(flow: FlowDef) -> Plan:
    """Validate ``flow`` and expand it into a ``Plan``.

    Raises ``UnknownStepError`` for a requirement on a step that is not a sibling,
    ``CycleError`` for requirements that form a cycle and ``DefinitionError`` for a leaf without
    a func.
    """
    validate(flow)
    nodes: dict[NodeKey, NodeSpec] = {}
    iterations: dict = {}
    iterations[ROOT] = expand_iterations(None, flow.steps, (None,), nodes, iterations)
    return Plan(
        flow=flow,
        index=index_steps(flow),
        nodes=nodes,
        iterations=iterations,
        graph=build_graph(nodes, iterations),
    )


def build_graph(
    nodes: Mapping[NodeKey, NodeSpec], iterations: Mapping[NodeKey, tuple[Iteration, ...]]
) -> nx.DiGraph:
    """The frozen DAG of ``nodes``: requirement edges between siblings, containment edges."""
    graph = nx.DiGraph()
    graph.add_nodes_from((key, {"spec": spec}) for key, spec in nodes.items())
    edges: dict[tuple[NodeKey, NodeKey], list[str]] = {}
    for key, spec in nodes.items():
        for atom in atoms(spec.step.requires):
            source = NodeKey(path_name(atom.path), key.sequence)
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
    known = {step.path: step for step in siblings}
    deps = nx.DiGraph()
    for step in siblings:
        deps.add_node(step.path_name)
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
        if not step.is_container and step.repeats is not None:
            raise DefinitionError(
                f"step {step.path_name!r} has repeats= but no child steps; repeats applies to "
                f"containers, so add the work as a child step of {step.name!r}"
            )
        for atom in atoms(step.requires):
            if atom.path not in known:
                other = path_name(atom.path)
                raise UnknownStepError(
                    f"step {step.path_name!r} requires {other!r}, which is not a sibling in "
                    f"{where}; requires may name only steps of the same container, so move "
                    f"{other!r} next to {step.path_name!r} or drop the requirement"
                )
            if atom.status not in _CONDITIONS:
                raise DefinitionError(
                    f"step {step.path_name!r} requires status {atom.status!r} of "
                    f"{path_name(atom.path)!r}; use ready, active, success, failure or complete"
                )
            deps.add_edge(path_name(atom.path), step.path_name)
    try:
        cycle = nx.find_cycle(deps)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        names = tuple(edge[0] for edge in cycle)
        shown = " -> ".join((*names, names[0]))
        raise CycleError(
            f"requirements form a cycle in {where}: {shown}; remove one of these requirements",
            cycle=names,
        )
    for step in siblings:
        if step.is_container:
            _validate_siblings(step.children, f"container {step.path_name!r}")


_CONDITIONS = frozenset(
    {
        StepStatus.ready,
        StepStatus.active,
        StepStatus.success,
        StepStatus.failure,
        StepStatus.complete,
    }
)
