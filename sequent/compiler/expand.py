"""Expand definitions into step instances: containers times repeats, as ``(path, sequence)`` nodes.

Pure: definitions in, frozen records out. Iteration *k* of a container running at sequence ``P``
runs its children at ``P.k``; top-level steps run at ``1``.
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import attrs

from ..status import CONDITIONS, StepStatus
from .definitions import FlowDef, StepDef
from .requirements import NOTHING, Requirement, path_name


class NodeKey(NamedTuple):
    """One step instance: the step's path (``s1_s11``) and its sequence (``1.2``)."""

    path: str
    sequence: str

    def __str__(self) -> str:
        return f"{self.path}/{self.sequence}"


#: The flow itself, as the container of the top-level steps.
ROOT = NodeKey("", "")


def child_sequence(parent_sequence: str, ordinal: int) -> str:
    """The sequence at which iteration ``ordinal`` of a container at ``parent_sequence`` runs."""
    return f"{parent_sequence}.{ordinal}" if parent_sequence else str(ordinal)


class NodeSpec(NamedTuple):
    """A step instance: its definition, its container instance, and its iteration's item.

    ``numbers`` are the ordinals of the iterations it is in, from the top (one tuple shared by
    an iteration's instances). A named tuple, so immutable and three times cheaper to make
    than a frozen attrs class (a compile makes one per node); compared by identity, as before.
    """

    key: NodeKey
    step: StepDef
    parent: NodeKey
    ordinal: int
    item: Any
    numbers: tuple[int, ...]

    @property
    def rank(self) -> tuple[int, tuple[int, ...]]:
        """Its place in definition order, then sequence order (what nodes are sorted by)."""
        return (self.step.order, self.numbers)

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def __hash__(self) -> int:
        return id(self)


@attrs.frozen(slots=True, eq=False)
class Iteration:
    """One iteration of a container instance and the step instances it runs."""

    container: NodeKey
    ordinal: int
    item: Any
    sequence: str
    children: tuple[NodeKey, ...]


#: One entry of ``StepIndex.watch``: a compiled requirement, its atoms naming the watched
#: step (condition, tree node), and the sibling steps that share that requirement.
Watch = tuple[Requirement, tuple[tuple[int, int], ...], tuple[str, ...]]


@attrs.frozen(eq=False)
class StepIndex:
    """Per-definition facts the scheduler looks up by path name, derived once from the flow.

    ``requirements[p]`` is step ``p``'s compiled requirement; ``watch[p]`` lists what watches
    ``p`` (see ``Watch``): steps with one and the same requirement expression share an entry,
    so a wide join of identical requirements costs one entry per distinct expression.
    ``requirements`` and ``handled`` hold only the steps that require something, and those
    handled (a fan of a million steps holds neither); a step not held reads as requiring
    nothing / not handled. ``handled[p]`` says whether a sibling requires ``p``'s failure or
    completion (so a failure of ``p`` is handled).
    """

    steps: Mapping[str, StepDef]
    requirements: Mapping[str, Requirement]
    watch: Mapping[str, tuple[Watch, ...]]
    handled: Mapping[str, bool]

    @functools.cached_property
    def parents(self) -> Mapping[str, str]:
        """``parents[p]``: the path of the container of step ``p`` (``""`` at the top); made
        on first use (``--only``, ``--rerun``, the DOT graph), not by every compile."""
        return {name: path_name(step.path[:-1]) for name, step in self.steps.items()}

    @functools.cached_property
    def watchers(self) -> Mapping[str, tuple[str, ...]]:
        """``watchers[p]``: the sibling paths whose requirement names ``p``, in definition
        order."""
        found: dict[str, tuple[str, ...]] = {}
        for name in self.steps:
            names = {watcher for _, _, watchers in self.watch.get(name, ()) for watcher in watchers}
            found[name] = tuple(sorted(names, key=lambda other: self.steps[other].order))
        return found


#: Make a ``NodeKey`` / ``NodeSpec`` from a tuple of its fields, without a Python-level call
#: (a compile makes one of each per node).
_new_key = functools.partial(tuple.__new__, NodeKey)
_new_spec = functools.partial(tuple.__new__, NodeSpec)


class _Flags(dict[str, bool]):
    """Flags by step path: a path not in it is False."""

    def __missing__(self, key: str) -> bool:
        return False


#: The compiled form of "requires nothing", shared by every step that requires nothing.
_NONE = NOTHING.compiled


class _Requirements(dict[str, Requirement]):
    """Compiled requirements by step path, holding only those that require something."""

    def __init__(self, steps: Mapping[str, StepDef]) -> None:
        super().__init__()
        self.steps = steps

    def __missing__(self, key: str) -> Requirement:
        if key in self.steps:
            return _NONE
        raise KeyError(key)


_PATH_NAME = operator.attrgetter("path_name")
_CHILDREN = operator.attrgetter("children")

_HANDLING = (CONDITIONS.index(StepStatus.failure), CONDITIONS.index(StepStatus.complete))


def index_steps(flow: FlowDef) -> StepIndex:
    """Derive the lookup tables of ``StepIndex`` from a validated flow."""
    steps: dict[str, StepDef] = {}
    requirements = _Requirements(steps)  # only the steps that require something
    watch: dict[str, list[Watch]] = {}
    handled = _Flags()  # only the handled ones: a fan of a million steps has none
    groups: list[tuple[StepDef, ...]] = [flow.steps]
    for siblings in groups:  # breadth first; grows as containers are met
        names = list(map(_PATH_NAME, siblings))
        compiled = [step.requires.compiled for step in siblings]
        steps.update(zip(names, siblings, strict=True))
        sharing: dict[int, tuple[Requirement, list[str]]] = {}  # by id of the requirement
        if compiled.count(_NONE) != len(compiled):  # (most steps of a fan require nothing)
            for name, requirement in zip(names, compiled, strict=True):
                if requirement is not _NONE:
                    requirements[name] = requirement
                if requirement.sources:  # (a step that requires nothing watches nothing)
                    sharing.setdefault(id(requirement), (requirement, []))[1].append(name)
        groups.extend(step.children for step in filter(_CHILDREN, siblings))
        for requirement, watching in sharing.values():
            watchers = tuple(watching)
            for source, entries in requirement.sources.items():
                watch.setdefault(source, []).append((requirement, tuple(entries), watchers))
                if any(condition in _HANDLING for condition, _ in entries):
                    handled[source] = True
    return StepIndex(
        steps=steps,
        requirements=requirements,
        watch={name: tuple(found) for name, found in watch.items()},
        handled=handled,
    )


def expand_iterations(
    container: NodeSpec | None,
    body: tuple[StepDef, ...],
    items: Iterable[Any],
    nodes: dict[NodeKey, NodeSpec],
    iterations: dict[NodeKey, tuple[Iteration, ...]],
) -> tuple[Iteration, ...]:
    """Add the instances of ``body`` for each item to ``nodes``; return the container's iterations.

    Nested containers with static repeats are expanded too; one with a callable ``repeats`` is
    left for the scheduler to expand when it starts. ``container`` None stands for the flow.
    ``nodes`` and ``iterations`` are the caller's fresh accumulators.
    """
    key = container.key if container is not None else ROOT
    numbers = container.numbers if container is not None else ()
    names = list(map(_PATH_NAME, body))
    nested = any(not callable(step.repeats) for step in filter(_CHILDREN, body))
    result = []
    for ordinal, item in enumerate(items, start=1):
        sequence = child_sequence(key.sequence, ordinal)
        rank = (*numbers, ordinal)
        children = list(map(_new_key, zip(names, itertools.repeat(sequence))))
        if not nested:  # the common case, in bulk (no Python-level call per node)
            fixed = map(itertools.repeat, (key, ordinal, item, rank))  # endless: strict=False
            fields = zip(children, body, *fixed, strict=False)
            nodes.update(zip(children, map(_new_spec, fields), strict=True))
        else:  # each nested container expanded right after its own node, as ever
            for child, step in zip(children, body, strict=True):
                spec = nodes[child] = _new_spec((child, step, key, ordinal, item, rank))
                if step.children and not callable(step.repeats):
                    iterations[child] = expand_iterations(
                        spec, step.children, repeat_items(step), nodes, iterations
                    )
        result.append(Iteration(key, ordinal, item, sequence, tuple(children)))
    return tuple(result)


def repeat_items(step: StepDef) -> tuple[Any, ...]:
    """The items a container iterates over; a callable ``repeats`` is called here."""
    if step.repeats is None:
        return (None,)
    if callable(step.repeats):
        items = step.repeats()
        unordered = isinstance(items, (set, frozenset))
        if unordered or isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
            why = (
                "whose order changes from one process to the next (a recover would match the "
                "wrong items)"
                if unordered
                else "not a sequence of items"
            )
            raise TypeError(
                f"the callable repeats of step {path_name(step.path)!r} returned a "
                f"{type(items).__name__}, {why}; return a list (for example sorted(...))"
            )
        return tuple(items)
    return tuple(step.repeats)
