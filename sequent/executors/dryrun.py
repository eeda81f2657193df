"""The dry run's driver: the run's own ``RunState``, every leaf succeeding at once, nothing run.

A second driver of the protocol the scheduling core drives, in the order the core launches
(what became ready first, then definition order, then sequence order)::

    state.prepare()
    order.push(state.get_ready())
    while state.is_active() and order:
        node = order.pop()
        if state.start(node) is not None:    # a leaf: it would run, and succeeds at once
            order.push(state.get_ready())
            state.done(node, SUCCESS)
        order.push(state.get_ready())

Mutates only its own ``RunState``. Calls no step and no ``repeats`` callable (such a container
is entered with no iterations and listed as deferred); writes nothing.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping

import attrs

from ..compiler import NodeKey, NodeSpec, Plan
from ..status import StepStatus
from .state import RunState

#: The step instance would execute (a container: something inside it runs).
RUN = "run"
#: A recover would mark it success without running it (its recovery policy skips it).
SKIP = "skip"
#: Its requirement cannot hold when every step before it succeeds: the run marks it skipped.
NEVER = "never reached"
#: A container whose callable ``repeats`` is called only when a real run reaches it.
AT_RUN_TIME = "expanded at run time"
#: ``--only`` leaves it out: it keeps its previous status without running.
KEPT = "kept"


class LaunchOrder:
    """Ready nodes in the order a run starts them: earlier ``push`` first, then by rank."""

    def __init__(self, nodes: Mapping[NodeKey, NodeSpec]) -> None:
        self._nodes = nodes
        self._heap: list[tuple[int, tuple[int, tuple[int, ...]], NodeKey]] = []
        self._moment = 0

    def push(self, keys: Iterable[NodeKey]) -> None:
        """Add the nodes that became ready at one moment."""
        self._moment += 1
        for key in keys:
            heapq.heappush(self._heap, (self._moment, self._nodes[key].rank, key))

    def pop(self) -> NodeKey:
        """The next node to start."""
        return heapq.heappop(self._heap)[2]

    def __bool__(self) -> bool:
        return bool(self._heap)


@attrs.frozen
class Rehearsal:
    """What a dry run reached: each node's first decisive change, in the order it happened.

    ``reached`` maps nodes to ``RUN`` (it became active), ``SKIP`` (recovered as success),
    ``KEPT`` (left out by ``--only``) or ``NEVER`` (skipped); nodes it never reached are
    absent. ``deferred`` holds the containers whose ``repeats`` is callable; ``nodes`` every
    node of the plan.
    """

    nodes: Mapping[NodeKey, NodeSpec]
    reached: Mapping[NodeKey, str]
    deferred: frozenset[NodeKey]


def rehearse(
    plan: Plan,
    previous: Mapping[NodeKey, StepStatus] | None = None,
    kept: frozenset[str] = frozenset(),
) -> Rehearsal:
    """Drive ``plan``'s ``RunState`` as a run would go with every leaf succeeding.

    ``previous`` holds the latest statuses of the run a recover would continue; ``kept`` the
    step paths ``--only`` leaves out (``RunState``'s ``kept``).
    """
    state = RunState(plan, previous or {}, call_repeats=False, kept=kept)
    order = LaunchOrder(state.nodes)
    state.prepare()
    order.push(state.get_ready())
    while state.is_active() and order:
        node = order.pop()
        if state.start(node) is not None:
            order.push(state.get_ready())
            state.done(node, StepStatus.success)
        order.push(state.get_ready())
    reached: dict[NodeKey, str] = {}
    readied: set[NodeKey] = set()
    for change in state.get_changes():
        if change.key in reached:
            continue
        if change.status is StepStatus.ready:
            readied.add(change.key)
        elif change.key.path in kept and change.key in readied:
            reached[change.key] = KEPT
        elif change.status is StepStatus.success and change.replayed:
            reached[change.key] = SKIP
        elif change.status is StepStatus.active:
            reached[change.key] = RUN
        elif change.status is StepStatus.skipped:
            reached[change.key] = NEVER
    return Rehearsal(dict(state.nodes), reached, frozenset(state.deferred))
