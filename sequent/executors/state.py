"""The state machine of one run: which step instances are ready, done, skipped or failed.

Mutates node statuses, iteration progress and container outcomes; nothing else does. It knows
nothing of time, threads, executors or the store: the scheduling core (``core.py``) feeds it
``activate``/``finish`` calls and drains what it reports (``changes``, ``ready``).

    activate(key) ──> active ──(container)──> iteration 1 ──> children evaluated
                                                  ...
    finish(key, outcome) ──> watchers re-evaluated ──> ready | skipped
                         └─> iteration progress ──> next iteration | container success/failure

A requirement evaluates to True, False (it can never become true: the node is ``skipped``) or
None (not decided yet).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..compiler import (
    ROOT,
    AllOf,
    AnyOf,
    Atom,
    Expr,
    Iteration,
    NodeKey,
    NodeSpec,
    Plan,
    expand_iterations,
    path_name,
    repeat_items,
)
from ..status import StepReplay, StepStatus

_READY = 1
_ACTIVE = 2

SUCCESS = StepStatus.success
FAILURE = StepStatus.failure
SKIPPED = StepStatus.skipped
READY = StepStatus.ready
ACTIVE = StepStatus.active
INTERRUPTED = StepStatus.interrupted

_MISSING: Any = object()

# A compiled requirement: ("a", path, status) | ("&", items) | ("|", items)
Compiled = tuple


def _compile_expr(expr: Expr) -> Compiled:
    if isinstance(expr, Atom):
        return ("a", path_name(expr.path), expr.status)
    if len(expr.items) == 1:  # and/or of one item: the item itself
        return _compile_expr(expr.items[0])
    if isinstance(expr, AllOf):
        return ("&", tuple(_compile_expr(item) for item in expr.items))
    assert isinstance(expr, AnyOf)
    return ("|", tuple(_compile_expr(item) for item in expr.items))


class Change:
    """One status change to report: the node, its new status, and details (error, replayed)."""

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
    """Mutates the statuses of one run's step instances as the core reports what happened.

    ``previous`` maps nodes to their latest status in the run being recovered (empty on a fresh
    run); a leaf whose step's recovery policy says skip is marked success when reached.
    """

    def __init__(
        self,
        plan: Plan,
        previous: Mapping[NodeKey, StepStatus] | None = None,
        stop_on_exception: Callable[[NodeSpec], bool] | None = None,
    ) -> None:
        self.plan = plan
        self.index = plan.index
        self.nodes: dict[NodeKey, NodeSpec] = dict(plan.nodes)
        self.iterations: dict[NodeKey, tuple[Iteration, ...]] = dict(plan.iterations)
        self.previous = previous or {}
        self.stop_on_exception = stop_on_exception or (lambda spec: True)
        self.status: dict[NodeKey, StepStatus] = {}
        self.flags: dict[NodeKey, int] = {}
        self.errors: dict[NodeKey, str] = {}
        self._iteration: dict[NodeKey, int] = {}
        self._remaining: dict[NodeKey, int] = {}
        self._failed_child: dict[NodeKey, NodeKey] = {}
        self._requires: dict[str, Compiled | None] = {}
        self._watch: dict[str, tuple[tuple[str, bool, bool], ...]] = {}
        self._stack: list[tuple[NodeKey, StepStatus]] = []
        #: Status changes since the last ``drain_changes``, in the order they happened.
        self.changes: list[Change] = []
        #: Nodes that became ready since the last ``drain_ready`` (the core launches them).
        self.ready: list[NodeKey] = []
        #: Nodes expanded at run time (callable repeats), for the store and the plan view.
        self.expanded: list[NodeSpec] = []
        #: Set once a failure that no level handles happened.
        self.failed = False
        #: Set when such a failure asks that no new step start (stop_on_exception).
        self.stopping = False
        self.finished = False

    # -- the core's calls -------------------------------------------------------------------

    def start(self) -> None:
        """Start the flow: its single top-level iteration."""
        self._iteration[ROOT] = 0
        self._begin_iteration(ROOT, self.iterations[ROOT][0])
        self._propagate()

    def activate(self, key: NodeKey) -> NodeSpec | None:
        """Mark ``key`` active; return its spec if it is a leaf to submit, None for a container."""
        spec = self.nodes[key]
        self._set(key, ACTIVE)
        if spec.step.is_container:
            self._enter_container(spec)
            self._propagate()
            return None
        self._propagate()
        return spec

    def finish(self, key: NodeKey, status: StepStatus, error: str | None = None) -> None:
        """Record that leaf ``key`` ended with ``status`` (success, failure or interrupted)."""
        if self.status.get(key) is not ACTIVE:
            return  # a late outcome (after a timeout or interruption) changes nothing
        if error is not None:
            self.errors[key] = error
        self._set(key, status, error)
        self._propagate()

    def fail_unstarted(self, key: NodeKey, error: str) -> None:
        """Fail ``key`` without running it (its resources can never be had)."""
        self.errors[key] = error
        self._set(key, ACTIVE)
        self._set(key, FAILURE, error)
        self._propagate()

    def drain_changes(self) -> list[Change]:
        """Return and forget the changes since the last call."""
        changes, self.changes = self.changes, []
        return changes

    def drain_ready(self) -> list[NodeKey]:
        """Return and forget the nodes that became ready since the last call."""
        ready, self.ready = self.ready, []
        return ready

    def close(self, reason: StepStatus = INTERRUPTED) -> None:
        """End the run where it stands: containers still active become failure or ``reason``.

        A container with an unhandled failure in its current iteration ends ``failure``; the
        others, cut short, end ``reason``. Nodes that never started keep no status.
        """
        active = [key for key, status in self.status.items() if status is ACTIVE]
        active.sort(key=lambda key: -len(key.sequence.split(".")))
        for key in active:
            spec = self.nodes[key]
            if spec.step.is_container:
                if key in self._failed_child:
                    self._set(key, *self._ending(key))
                else:
                    self._set(key, reason, "run ended before it finished")
                self._note_terminal(key, spec, start_next=False)
        self._stack.clear()  # cut short: nothing may follow from these changes
        if ROOT in self._failed_child:
            self.failed = True
        self.finished = True

    # -- propagation ------------------------------------------------------------------------

    def _set(
        self, key: NodeKey, status: StepStatus, error: str | None = None, replayed: bool = False
    ) -> None:
        self.status[key] = status
        if status is READY:
            self.flags[key] = self.flags.get(key, 0) | _READY
        elif status is ACTIVE:
            self.flags[key] = self.flags.get(key, 0) | _ACTIVE
        self.changes.append(Change(key, status, error, replayed))
        self._stack.append((key, status))

    def _propagate(self) -> None:
        stack = self._stack
        decided = self.status
        while stack:
            key, status = stack.pop()
            sequence = key.sequence
            terminal = status.is_terminal()
            watchers = self._watch.get(key.path)
            if watchers is None:
                watchers = self._watchers(key.path)
            for watcher, on_ready, on_active in watchers:
                if not terminal and not (on_ready if status is READY else on_active):
                    continue  # only a `ready`/`active` atom can change before the end
                if (watcher, sequence) in decided:
                    continue
                other = NodeKey(watcher, sequence)
                verdict = self.evaluate(other)
                if verdict is True:
                    self._make_ready(other)
                elif verdict is False:
                    self._set(other, SKIPPED)
            if terminal:
                self._note_terminal(key, self.nodes[key], start_next=True)

    def _watchers(self, path: str) -> tuple[tuple[str, bool, bool], ...]:
        """The siblings requiring ``path``, each with whether it names ``ready``/``active``."""
        found = []
        for watcher in self.index.watchers.get(path, ()):
            atoms = self.index.steps[watcher].requirement_atoms
            wanted = {atom.status for atom in atoms if atom.name == path}
            found.append((watcher, READY in wanted, ACTIVE in wanted))
        self._watch[path] = result = tuple(found)
        return result

    def _make_ready(self, key: NodeKey) -> None:
        self._set(key, READY)
        spec = self.nodes[key]
        if (
            self.previous
            and not spec.step.is_container
            and spec.step.replay(self.previous.get(key)) is StepReplay.skip
        ):
            self.flags[key] |= _ACTIVE
            self._set(key, SUCCESS, replayed=True)
            return
        self.ready.append(key)

    def _note_terminal(self, key: NodeKey, spec: NodeSpec, start_next: bool) -> None:
        parent = spec.parent
        status = self.status[key]
        if status is FAILURE and not self.index.handled[key.path]:
            self._failed_child.setdefault(parent, key)
            if self._escalates(spec):
                self.failed = True
                if self.stop_on_exception(spec):
                    self.stopping = True
        elif status is INTERRUPTED:
            self._failed_child.setdefault(parent, key)
        remaining = self._remaining[parent] - 1
        self._remaining[parent] = remaining
        if remaining == 0 and start_next:
            self._end_iteration(parent)

    def _escalates(self, spec: NodeSpec) -> bool:
        """True when a failure of ``spec`` reaches the top: no enclosing level handles it."""
        parent = spec.parent
        while parent != ROOT:
            if self.index.handled[parent.path]:
                return False
            parent = self.nodes[parent].parent
        return True

    def _end_iteration(self, container: NodeKey) -> None:
        if container in self._failed_child:
            if container == ROOT:
                self.failed = True
                self.finished = True
            else:
                self._set(container, *self._ending(container))
            return
        iterations = self.iterations[container]
        following = self._iteration[container] + 1
        if following < len(iterations):
            self._iteration[container] = following
            self._begin_iteration(container, iterations[following])
        elif container == ROOT:
            self.finished = True
        else:
            self._set(container, SUCCESS)

    def _ending(self, container: NodeKey) -> tuple[StepStatus, str]:
        """How a container whose iteration went wrong ends: ``failure``, or ``interrupted`` when
        what went wrong first was an interruption (a failure recorded before it wins)."""
        child = self._failed_child[container]
        if self.status.get(child) is INTERRUPTED:
            return INTERRUPTED, f"step {child.path!r} was interrupted at sequence {child.sequence}"
        return FAILURE, self._failure_message(container)

    def _failure_message(self, container: NodeKey) -> str:
        child = self._failed_child[container]
        return f"step {child.path!r} failed at sequence {child.sequence}"

    def _enter_container(self, spec: NodeSpec) -> None:
        key = spec.key
        if key not in self.iterations:
            try:
                items = repeat_items(spec.step)
            except Exception as exc:
                self.errors[key] = f"repeats of {key.path!r} raised {type(exc).__name__}: {exc}"
                self._set(key, FAILURE, self.errors[key])
                return
            nodes: dict[NodeKey, NodeSpec] = {}
            iterations: dict[NodeKey, tuple[Iteration, ...]] = {}
            iterations[key] = expand_iterations(spec, spec.step.children, items, nodes, iterations)
            self.nodes.update(nodes)
            self.iterations.update(iterations)
            self.expanded.extend(nodes.values())
        iterations_of = self.iterations[key]
        if not iterations_of:
            self._set(key, SUCCESS)
            return
        self._iteration[key] = 0
        self._begin_iteration(key, iterations_of[0])

    def _begin_iteration(self, container: NodeKey, iteration: Iteration) -> None:
        self._remaining[container] = len(iteration.children)
        for child in iteration.children:
            if child in self.status:
                continue  # already decided by a sibling's propagation
            verdict = self.evaluate(child)
            if verdict is True:
                self._make_ready(child)
            elif verdict is False:
                self._set(child, SKIPPED)

    # -- requirements -----------------------------------------------------------------------

    def evaluate(self, key: NodeKey) -> bool | None:
        """Evaluate ``key``'s requirement: True, False (never true), or None (undecided)."""
        compiled = self._requires.get(key.path, _MISSING)
        if compiled is _MISSING:
            requires = self.nodes[key].step.requires
            empty = isinstance(requires, AllOf) and not requires.items
            compiled = None if empty else _compile_expr(requires)
            self._requires[key.path] = compiled
        if compiled is None:
            return True
        return self._eval(compiled, key.sequence)

    def _eval(self, expr: Compiled, sequence: str) -> bool | None:
        kind = expr[0]
        if kind == "a":
            status = self.status.get((expr[1], sequence))  # type: ignore[call-overload]
            if status is None:
                return None
            wanted = expr[2]
            if wanted is SUCCESS or wanted is FAILURE:
                if status is wanted:
                    return True
                return False if status.is_terminal() else None
            if wanted is StepStatus.complete:
                if status is SUCCESS or status is FAILURE:
                    return True
                return False if status.is_terminal() else None
            flag = _READY if wanted is READY else _ACTIVE
            if self.flags.get((expr[1], sequence), 0) & flag:  # type: ignore[call-overload]
                return True
            return False if status.is_terminal() else None
        undecided = False
        if kind == "&":
            for item in expr[1]:
                verdict = self._eval(item, sequence)
                if verdict is False:
                    return False
                if verdict is None:
                    undecided = True
            return None if undecided else True
        for item in expr[1]:
            verdict = self._eval(item, sequence)
            if verdict is True:
                return True
            if verdict is None:
                undecided = True
        return None if undecided else False

    # -- queries ----------------------------------------------------------------------------

    def is_leaf(self, key: NodeKey) -> bool:
        """True when ``key`` is a leaf step instance."""
        return not self.nodes[key].step.is_container

    def result(self) -> bool:
        """True when the run finished with no failure that no level handled."""
        return self.finished and not self.failed


def describe(value: Any) -> str:
    """A short text for a value in messages."""
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."
