"""The state machine of one run, shaped like ``graphlib.TopologicalSorter``.

Mutates node statuses, iteration progress and container outcomes; nothing else does. It knows
nothing of time, threads, executors or the store. A driver (the scheduling core, a dry run)
reads like graphlib's own loop::

    state.prepare()
    while state.is_active():
        for node in state.get_ready():        # requirements hold: launch when a slot is free
            spec = state.start(node)          # active; None for a container (entered here)
            ...
        state.done(node, status, error)       # a leaf that ended: success/failure/interrupted

and drains ``get_changes()`` to record every status change in order. A step instance goes

    (waiting) ──requirement holds──> ready ──start──> active ──done──> success | failure
         └──requirement can never hold──> skipped                    └─> interrupted

and a container's ``start`` begins its first iteration (up to ``parallel`` of them); the end of
an iteration's last child begins the next one, or ends the container (success, or failure once
the iterations under way after an unhandled failure have ended: no further one begins).

Requirements are compiled once per step (``compiler.requirements``): each status change
decides atoms of the steps watching it, and a watcher's count of undecided atoms (or, for
``or_``, the sub-expression the atom is in) says when it is ready or can never be.
Misuse raises ``ValueError``: starting a node that is not ready, finishing one not active.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from traceback import format_exc
from typing import Any

from ..compiler import (
    ROOT,
    Iteration,
    NodeKey,
    NodeSpec,
    Plan,
    Requirement,
    expand_iterations,
    repeat_items,
)
from ..compiler.requirements import UNDECIDED, verdicts
from ..status import StepReplay, StepStatus

SUCCESS = StepStatus.success
FAILURE = StepStatus.failure
SKIPPED = StepStatus.skipped
READY = StepStatus.ready
ACTIVE = StepStatus.active
INTERRUPTED = StepStatus.interrupted
_KEEPABLE = (SUCCESS, FAILURE, SKIPPED, INTERRUPTED)
_ENDINGS = (SUCCESS, FAILURE, INTERRUPTED)
_NEVER = -(1 << 40)  # a pure AND's count once an atom was False: it stays below zero
_DECIDED: Any = [-1]  # an or_ expression's state once decided


class Change:
    """One status change to record: the node, its new status, and details (error, replayed)."""

    __slots__ = ("key", "status", "error", "replayed")

    def __init__(
        self, key: NodeKey, status: StepStatus, error: str | None = None, replayed: bool = False
    ) -> None:
        self.key = key
        self.status = status
        self.error = error
        self.replayed = replayed

    def __repr__(self) -> str:
        return f"Change({self.key}, {self.status.value})"


class RunState:
    """Mutates the statuses of one run's step instances as its driver reports what happened.

    ``previous`` maps nodes to their latest status in the run being recovered (empty on a fresh
    run); a leaf whose step's recovery policy says skip is marked success when reached. A leaf
    of a step path in ``kept`` (``--only`` left it out) takes its previous status when reached,
    without running (``skipped`` when it has none); a failure kept so stops nothing.
    ``call_repeats`` False (a dry run): a container whose ``repeats`` is callable is entered
    with no iterations and listed in ``deferred`` instead of calling user code.
    """

    def __init__(
        self,
        plan: Plan,
        previous: Mapping[NodeKey, StepStatus] | None = None,
        stop_on_exception: Callable[[NodeSpec], bool] | None = None,
        call_repeats: bool = True,
        kept: frozenset[str] = frozenset(),
    ) -> None:
        self.index = plan.index
        self.nodes: dict[NodeKey, NodeSpec] = dict(plan.nodes)
        self.iterations: dict[NodeKey, tuple[Iteration, ...]] = dict(plan.iterations)
        self.previous = previous or {}
        self.kept = kept
        self.stop_on_exception = stop_on_exception or (lambda spec: True)
        self.call_repeats = call_repeats
        #: The status of every node that has one.
        self.status: dict[NodeKey, StepStatus] = {}
        #: Containers with a callable ``repeats`` that a dry run did not expand.
        self.deferred: set[NodeKey] = set()
        #: Containers whose callable ``repeats`` failed: (the error, its traceback text), for
        #: the driver to log and record (taken with ``pop``).
        self.repeats_failed: dict[NodeKey, tuple[str, str]] = {}
        #: Set once a failure that no level handles happened.
        self.failed = False
        #: Set when such a failure asks that no new step start (stop_on_exception).
        self.stopping = False
        self._finished = False
        self._prepared = False
        self._next: dict[NodeKey, int] = {}  # container -> index of the next iteration to begin
        self._open: dict[NodeKey, set[int]] = {}  # container -> iterations begun, not ended
        self._remaining: dict[tuple[NodeKey, int], int] = {}  # (container, iteration) -> left
        self._failed_child: dict[NodeKey, NodeKey] = {}
        # Per sequence, per watching step: undecided atoms (a count, or a list for or_)
        self._pending: dict[str, dict[str, Any]] = {}
        self._queue: deque[tuple[NodeKey, StepStatus, StepStatus | None, bool]] = deque()
        self._changes: list[Change] = []
        self._ready: list[NodeKey] = []
        self._expanded: list[NodeSpec] = []

    # -- the protocol -----------------------------------------------------------------------

    def prepare(self) -> None:
        """Begin the flow's single top-level iteration. Raises ``ValueError`` when called twice."""
        if self._prepared:
            raise ValueError("prepare() was already called")
        self._prepared = True
        self._next[ROOT] = 0
        self._open[ROOT] = set()
        self._fill(ROOT)
        self._propagate()

    def get_ready(self) -> list[NodeKey]:
        """Return the nodes that became ready since the last call, in the order they did."""
        ready, self._ready = self._ready, []
        return ready

    def start(self, key: NodeKey) -> NodeSpec | None:
        """Mark ready ``key`` active; return its spec if it is a leaf to run, None for a
        container (its first iteration begins here). Raises ``ValueError`` if it is not ready."""
        if self.status.get(key) is not READY:
            raise ValueError(f"node {key} is {self._shown(key)}, not ready; start only nodes "
                             f"that get_ready() returned, once")  # fmt: skip
        spec = self.nodes[key]
        self._set(key, ACTIVE)
        if spec.step.children:
            self._enter_container(spec)
            self._propagate()
            return None
        self._propagate()
        return spec

    def done(self, key: NodeKey, status: StepStatus, error: str | None = None) -> None:
        """Record that active leaf ``key`` ended with ``status`` (success, failure, interrupted).

        Raises ``ValueError`` for another status, a container, or a node that is not active.
        """
        if status not in _ENDINGS:
            raise ValueError(f"done({key}, {status}): a step ends in success, failure or "
                             f"interrupted")  # fmt: skip
        if self.status.get(key) is not ACTIVE or self.nodes[key].step.children:
            raise ValueError(f"node {key} is {self._shown(key)}, not an active step; done() "
                             f"takes each started leaf once")  # fmt: skip
        self._set(key, status, error)
        self._propagate()

    def fail_unstarted(self, key: NodeKey, error: str) -> None:
        """Fail ready ``key`` without running it (its resources can never be had).

        Raises ``ValueError`` if it is not ready.
        """
        if self.status.get(key) is not READY:
            raise ValueError(f"node {key} is {self._shown(key)}, not ready")
        self._set(key, ACTIVE)
        self._set(key, FAILURE, error)
        self._propagate()

    def is_active(self) -> bool:
        """True until the run has ended (every iteration done, or ``close()``)."""
        return not self._finished

    def result(self) -> bool:
        """True when the run finished with no failure that no level handled."""
        return self._finished and not self.failed

    def get_changes(self) -> list[Change]:
        """Return the status changes since the last call, in the order they happened."""
        changes, self._changes = self._changes, []
        return changes

    def get_expanded(self) -> list[NodeSpec]:
        """Return the nodes created at run time (callable repeats) since the last call."""
        expanded, self._expanded = self._expanded, []
        return expanded

    def close(self, status: StepStatus = INTERRUPTED, reason: str = "the run ended") -> None:
        """End the run where it stands (stopped, interrupted, or out of rounds).

        Nodes of the iterations under way that never started (ready, or still waiting) end
        ``skipped`` with ``reason`` as their error; a leaf still active ends ``interrupted``;
        a container still active ends ``failure`` when its iteration had an unhandled failure,
        else ``status``. Innermost first, so every node of a begun iteration is decided.
        """
        if self._finished:
            return
        containers = [key for key, now in self.status.items()
                      if now is ACTIVE and self.nodes[key].step.children]  # fmt: skip
        containers.sort(key=lambda key: -len(key.sequence.split(".")))
        for container in (*containers, ROOT):
            for child in self._current_children(container):
                now = self.status.get(child)
                if now is None or now is READY:
                    self._set(child, SKIPPED, f"not started: {reason}")
                    self._note_terminal(child, self.nodes[child], start_next=False)
                elif now is ACTIVE and not self.nodes[child].step.children:
                    self._set(child, INTERRUPTED, f"still running when {reason}")
                    self._note_terminal(child, self.nodes[child], start_next=False)
            if container == ROOT:
                break
            if container in self._failed_child:
                self._set(container, *self._ending(container))
            else:
                self._set(container, status, f"cut short: {reason}")
            self._note_terminal(container, self.nodes[container], start_next=False)
        self._queue.clear()  # cut short: nothing may follow from these changes
        if ROOT in self._failed_child:
            self.failed = True
        self._finished = True

    # -- propagation ------------------------------------------------------------------------

    def _set(
        self, key: NodeKey, status: StepStatus, error: str | None = None, replayed: bool = False
    ) -> None:
        previous = self.status.get(key)
        self.status[key] = status
        self._changes.append(Change(key, status, error, replayed))
        self._queue.append((key, status, previous, replayed))

    def _propagate(self) -> None:
        """Apply queued changes to their watchers, and iteration progress, until none is left."""
        queue = self._queue
        watch = self.index.watch
        while queue:
            key, status, previous, replayed = queue.popleft()
            path, sequence = key
            groups = watch.get(path)
            if groups:
                found = verdicts(status, previous, replayed)
                if found is not UNDECIDED:
                    pending = self._pending.get(sequence)
                    if pending is None:
                        pending = self._pending[sequence] = {}
                    for requirement, entries, watchers in groups:
                        if requirement.simple:
                            self._count(requirement, entries, watchers, found, pending, sequence)
                        else:
                            self._climb(requirement, entries, watchers, found, pending, sequence)
            if status is not READY and status is not ACTIVE:
                self._note_terminal(key, self.nodes[key], start_next=True)

    def _count(
        self,
        requirement: Requirement,
        entries: tuple[tuple[int, int], ...],
        watchers: tuple[str, ...],
        found: tuple[bool | None, ...],
        pending: dict[str, Any],
        sequence: str,
    ) -> None:
        """A pure AND: count down each watcher's undecided atoms; a False atom skips it."""
        held = 0
        for condition, _ in entries:
            verdict = found[condition]
            if verdict is None:
                continue
            if not verdict:
                for watcher in watchers:
                    if pending.get(watcher, 0) >= 0:  # not skipped before
                        pending[watcher] = _NEVER
                        self._set(NodeKey(watcher, sequence), SKIPPED)
                return
            held += 1
        if not held:
            return
        initial = requirement.counts[0]
        for watcher in watchers:
            left = pending.get(watcher, initial) - held
            if left > 0:
                pending[watcher] = left
            elif left == 0:
                pending.pop(watcher, None)
                self._make_ready(NodeKey(watcher, sequence))
            # below zero: skipped before (``_NEVER``)

    def _climb(
        self,
        requirement: Requirement,
        entries: tuple[tuple[int, int], ...],
        watchers: tuple[str, ...],
        found: tuple[bool | None, ...],
        pending: dict[str, Any],
        sequence: str,
    ) -> None:
        """An expression with ``or_``: apply each verdict to the sub-expression it is in."""
        for watcher in watchers:
            counts = pending.get(watcher)
            if counts is _DECIDED:
                continue
            if counts is None:
                counts = pending[watcher] = requirement.fresh()
            for condition, node in entries:
                verdict = found[condition]
                if verdict is None:
                    continue
                holds = requirement.apply(counts, node, verdict)
                if holds is None:
                    continue
                pending[watcher] = _DECIDED
                if holds:
                    self._make_ready(NodeKey(watcher, sequence))
                else:
                    self._set(NodeKey(watcher, sequence), SKIPPED)
                break

    def _make_ready(self, key: NodeKey) -> None:
        self._set(key, READY)
        if key.path in self.kept and not self.nodes[key].step.children:
            before = self.previous.get(key)
            status = before if before in _KEEPABLE else SKIPPED
            self._set(key, status, replayed=status is not SKIPPED)  # it ran in an earlier attempt
            return
        if self.previous:
            step = self.nodes[key].step
            if not step.children and step.replay(self.previous.get(key)) is StepReplay.skip:
                self._set(key, SUCCESS, replayed=True)
                return
        self._ready.append(key)

    def _note_terminal(self, key: NodeKey, spec: NodeSpec, start_next: bool) -> None:
        parent = spec.parent
        status = self.status[key]
        if status is FAILURE and not self.index.handled[key.path]:
            self._failed_child.setdefault(parent, key)
            if self._escalates(spec):
                self.failed = True
                if self.stop_on_exception(spec) and key.path not in self.kept:
                    self.stopping = True
        elif status is INTERRUPTED:
            self._failed_child.setdefault(parent, key)
        iteration = (parent, spec.ordinal - 1)
        remaining = self._remaining[iteration] - 1
        self._remaining[iteration] = remaining
        if remaining == 0 and start_next:
            self._end_iteration(parent, spec.ordinal - 1)

    def _escalates(self, spec: NodeSpec) -> bool:
        """True when a failure of ``spec`` reaches the top: no enclosing level handles it."""
        parent = spec.parent
        while parent != ROOT:
            if self.index.handled[parent.path]:
                return False
            parent = self.nodes[parent].parent
        return True

    def _end_iteration(self, container: NodeKey, index: int) -> None:
        """Iteration ``index`` of ``container`` ended: begin the next ones, or end the container.

        After an unhandled failure no iteration begins; the container ends when the last one
        under way has.
        """
        under_way = self._open[container]
        under_way.discard(index)
        if container not in self._failed_child:
            self._fill(container)
        if under_way:
            return
        if container in self._failed_child:
            if container == ROOT:
                self.failed = True
                self._finished = True
            else:
                self._set(container, *self._ending(container))
        elif container == ROOT:
            self._finished = True
        else:
            self._set(container, SUCCESS)

    def _fill(self, container: NodeKey) -> None:
        """Begin iterations of ``container``, in order, while fewer than ``parallel`` run."""
        iterations = self.iterations[container]
        limit = self.nodes[container].step.parallel if container != ROOT else 1
        under_way = self._open[container]
        following = self._next[container]
        while following < len(iterations) and (limit == 0 or len(under_way) < limit):
            under_way.add(following)
            self._next[container] = following + 1
            self._begin_iteration(container, iterations[following], following)
            following += 1

    def _ending(self, container: NodeKey) -> tuple[StepStatus, str]:
        """How a container whose iteration went wrong ends: ``failure``, or ``interrupted`` when
        what went wrong first was an interruption (a failure recorded before it wins)."""
        child = self._failed_child[container]
        if self.status.get(child) is INTERRUPTED:
            return INTERRUPTED, f"step {child.path!r} was interrupted at sequence {child.sequence}"
        return FAILURE, f"step {child.path!r} failed at sequence {child.sequence}"

    def _enter_container(self, spec: NodeSpec) -> None:
        key = spec.key
        if key not in self.iterations:
            if not self.call_repeats:
                self.iterations[key] = ()
                self.deferred.add(key)
            else:
                try:
                    items = repeat_items(spec.step)
                except Exception as exc:
                    error = f"repeats of {key.path!r} raised {type(exc).__name__}: {exc}"
                    self.repeats_failed[key] = (error, format_exc())
                    self._set(key, FAILURE, error)
                    return
                nodes: dict[NodeKey, NodeSpec] = {}
                iterations: dict[NodeKey, tuple[Iteration, ...]] = {}
                iterations[key] = expand_iterations(
                    spec, spec.step.children, items, nodes, iterations
                )
                self.nodes.update(nodes)
                self.iterations.update(iterations)
                self._expanded.extend(nodes.values())
        if not self.iterations[key]:
            self._set(key, SUCCESS)
            return
        self._next[key] = 0
        self._open[key] = set()
        self._fill(key)

    def _begin_iteration(self, container: NodeKey, iteration: Iteration, index: int) -> None:
        self._remaining[(container, index)] = len(iteration.children)
        requirements = self.index.requirements
        for child in iteration.children:
            holds = requirements[child.path].constant
            if holds is True:
                self._make_ready(child)
            elif holds is False:
                self._set(child, SKIPPED)

    def _current_children(self, container: NodeKey) -> tuple[NodeKey, ...]:
        """The step instances of ``container``'s iterations under way, in iteration order."""
        iterations = self.iterations.get(container, ())
        under_way = sorted(self._open.get(container, ()))
        return tuple(child for index in under_way for child in iterations[index].children)

    def _shown(self, key: NodeKey) -> str:
        if key not in self.nodes:
            return "not a node of this run"
        status = self.status.get(key)
        return status.value if status is not None else "waiting"
