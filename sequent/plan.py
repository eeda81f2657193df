"""Dry runs: what a run of a flow would do, in the order it would do it, running nothing.

``dry_run`` drives the run's own state machine (``RunState``) the way the scheduling core does
(``executors/dryrun.py``: what became ready first, then definition and sequence order) with
every leaf succeeding at once. Nothing is called, submitted or written: a recover reads the
run being recovered from a store opened read-only, and containers whose ``repeats`` is a
callable are not entered (the callable is user code; it runs when a real run reaches it).

Actions:

* ``run``: the step instance would execute (a container: at least one instance inside runs);
* ``skip``: a recover would mark it success without running it (its recovery policy skips its
  previous status; a container: everything inside is skipped);
* ``never reached``: its requirement cannot hold when every step before it succeeds (it waits
  for a failure, say), so the run would mark it ``skipped``;
* ``expanded at run time``: a container with a callable ``repeats``; its instances are known
  only when a run reaches it;
* ``kept``: ``--only`` leaves the step out: it keeps its previous status without running
  (``skipped`` when it has none).

A node whose latest status is a manual mark (``sequent mark``) says so, with who and why.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from .compiler import NodeKey, Plan
from .errors import RecoveryError
from .executors.dryrun import AT_RUN_TIME, KEPT, NEVER, RUN, SKIP, Rehearsal, rehearse
from .selection import Selection
from .status import RunMode, StepStatus
from .store import Recovery, read_store


@attrs.frozen
class PlannedNode:
    """One step instance of a dry run: what would happen to it, and why."""

    key: NodeKey
    action: str
    container: bool
    previous: StepStatus | None = None
    reason: str = ""

    @property
    def path(self) -> str:
        """The step's path (``s1_s11_s111``)."""
        return self.key.path

    @property
    def sequence(self) -> str:
        """The instance's sequence (``1.2.1``)."""
        return self.key.sequence


@attrs.frozen
class DryRun:
    """The result of ``Sequent.plan()``: the planned nodes in execution order.

    Iterating gives ``PlannedNode`` records. ``run_id`` and ``attempt`` name the run a recover
    would continue (None and 0 for a restart).
    """

    flow_name: str
    mode: RunMode
    nodes: tuple[PlannedNode, ...]
    run_id: str | None = None
    attempt: int = 0

    def __iter__(self) -> Iterator[PlannedNode]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def keys(self, action: str | None = None, leaves_only: bool = False) -> list[NodeKey]:
        """The node keys in execution order, optionally only those with ``action``."""
        return [
            node.key
            for node in self.nodes
            if (action is None or node.action == action) and not (leaves_only and node.container)
        ]

    def counts(self) -> dict[str, int]:
        """How many step instances (leaves) get each action."""
        result: dict[str, int] = {}
        for node in self.nodes:
            if not node.container:
                result[node.action] = result.get(node.action, 0) + 1
        return result

    def text(self) -> str:
        """A plain table, one line per node, for people and for the ``sequent plan`` command."""
        head = f"Plan of flow {self.flow_name!r}: {self.mode.value}"
        if self.run_id:
            head += f" of run {self.run_id} (it would be attempt {self.attempt})"
        width = max([len(str(node.key)) for node in self.nodes] + [4])
        lines = [head, f"{'#':>4}  {'node':<{width}}  {'action':<20}  previous  note"]
        for number, node in enumerate(self.nodes, start=1):
            kind = " (container)" if node.container else ""
            previous = node.previous.value if node.previous else "-"
            lines.append(
                f"{number:>4}  {str(node.key):<{width}}  {node.action:<20}  {previous:<8}  "
                f"{node.reason}{kind}".rstrip()
            )
        counts = self.counts()
        lines.append(
            "Steps: " + (", ".join(f"{n} {action}" for action, n in counts.items()) or "none")
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()


def simulate(
    plan: Plan,
    previous: Mapping[NodeKey, StepStatus] | None = None,
    selection: Selection | None = None,
    marks: Mapping[NodeKey, str] | None = None,
) -> list[PlannedNode]:
    """Plan ``plan`` as a run would go with every leaf succeeding; ``previous`` for a recover.

    ``selection`` is what ``--only``/``--rerun`` chose; ``marks`` describes the nodes whose
    latest status is a manual mark. Returns the nodes in the order the run would reach them
    (then those it would not reach, in definition order). Calls no step and no ``repeats``
    callable.
    """
    selection = selection or Selection()
    shown = dict(previous or {})
    rehearsal = rehearse(plan, selection.previous(shown), selection.kept)
    nodes = rehearsal.nodes
    actions = _actions(rehearsal)
    order = list(rehearsal.reached)
    order += sorted((k for k in nodes if k not in rehearsal.reached), key=lambda k: nodes[k].rank)
    result = []
    for key in order:
        container = nodes[key].step.is_container
        reason = _reason(actions[key], container, shown.get(key), bool(shown))
        if key.path in selection.rerun and actions[key] == RUN and not container:
            before = shown.get(key)
            reason = f"reruns (--rerun): previous status {before.value if before else '-'}"
        if marks and key in marks:
            reason += f" ({marks[key]})"
        reason = _with_parallel(reason, nodes[key].step.parallel)
        result.append(PlannedNode(key, actions[key], container, shown.get(key), reason))
    return result


def _actions(rehearsal: Rehearsal) -> dict[NodeKey, str]:
    """Each node's action: a leaf's is what the rehearsal reached; a container's follows from
    its children's (it runs when anything inside runs, is skipped when everything is)."""
    children: dict[NodeKey, list[NodeKey]] = {}
    for key, spec in rehearsal.nodes.items():
        children.setdefault(spec.parent, []).append(key)
    actions: dict[NodeKey, str] = {}

    def action_of(key: NodeKey) -> str:
        if key not in actions:
            reach = rehearsal.reached.get(key, NEVER)
            if reach != NEVER and rehearsal.nodes[key].step.is_container:
                inside = {action_of(child) for child in children.get(key, [])}
                reach = _container_action(key in rehearsal.deferred, inside)
            actions[key] = reach
        return actions[key]

    return {key: action_of(key) for key in rehearsal.nodes}


def _container_action(deferred: bool, inside: set[str]) -> str:
    if deferred:
        return AT_RUN_TIME
    if inside and inside <= {SKIP, NEVER, KEPT}:
        return SKIP
    return RUN


def _with_parallel(reason: str, parallel: int) -> str:
    """``reason`` with a parallel container's note: its iterations up to N (or all) at once."""
    if parallel == 1:
        return reason
    note = "iterations all at once" if parallel == 0 else f"iterations up to {parallel} at once"
    return f"{reason}; {note}" if reason else note


def _reason(action: str, container: bool, before: StepStatus | None, recovering: bool) -> str:
    if action == KEPT:
        shown = before.value if before else "none, so skipped"
        return f"not in --only: keeps its previous status ({shown})"
    if action == SKIP:
        if container:
            return "everything inside is skipped"
        return f"recovered: previous status {before.value if before else '-'}"
    if action == NEVER:
        return "its requirement cannot hold when the steps before it succeed"
    if action == AT_RUN_TIME:
        return "repeats is a callable, called when the run reaches it"
    if recovering and not container:
        return f"reruns: previous status {before.value}" if before else "reruns: not run before"
    return ""


def dry_run(
    plan: Plan,
    flow_name: str,
    recovery: Recovery | None = None,
    selection: Selection | None = None,
    marks: Mapping[NodeKey, str] | None = None,
) -> DryRun:
    """What a run of ``plan`` would do, running nothing: a restart, or a recover of ``recovery``.

    ``recovery`` is what the store says a recover would start from (``find_recovery``);
    ``selection`` what ``--only``/``--rerun`` chose (``selection.select``); ``marks`` the
    nodes whose latest status is a manual mark (``recorded_marks``).
    """
    if recovery is None:
        return DryRun(flow_name, RunMode.restart, tuple(simulate(plan, selection=selection)))
    nodes = simulate(plan, recovery.previous, selection, marks)
    return DryRun(
        flow_name, RunMode.recover, tuple(nodes), run_id=recovery.run_id, attempt=recovery.attempt
    )


def find_recovery(store: Any, flow_name: str, run_id: str | None) -> Recovery:
    """The run a recover of ``flow_name`` would continue (default: its latest), read from ``store``.

    Raises ``RecoveryError`` as a real recover would: no store, no run of this flow, or no run
    ``run_id``.
    """
    if not store.exists:
        raise RecoveryError(
            f"nothing to recover: the store {store.path!r} does not exist, so it holds no run "
            f"of flow {flow_name!r}; run the flow with RunMode.restart first, or pass the "
            f"store= path the failed run used"
        )
    found: Recovery = store.recovery(flow_name, run_id)
    return found


def recorded_marks(store: Any, run_id: str) -> dict[NodeKey, str]:
    """The nodes of run ``run_id`` whose latest status is a manual mark, described."""
    from .marks import describe_mark, latest_marks

    return {key: describe_mark(mark) for key, mark in latest_marks(store, run_id).items()}


def latest_statuses(store: Any, run_id: str) -> dict[NodeKey, StepStatus]:
    """Each node's latest recorded status in run ``run_id``; ``RecoveryError`` if unknown."""
    return {
        NodeKey(row["path"], row["sequence"]): StepStatus(row["status"])
        for row in store.nodes(run_id)
    }


__all__ = [
    "AT_RUN_TIME",
    "KEPT",
    "NEVER",
    "RUN",
    "SKIP",
    "DryRun",
    "PlannedNode",
    "dry_run",
    "find_recovery",
    "latest_statuses",
    "recorded_marks",
    "read_store",
    "simulate",
]
