"""Requirement expressions, and every walk over them: atoms, text, stored data, compiled form.

A step's ``requires`` is an ``Expr``: ``Atom`` (a sibling reaching a status), ``AllOf`` and
``AnyOf`` nesting freely. Everything that reads an expression goes through this module: the
definitions (``atoms``), the DOT view (``text``, ``edges``), the store (``to_data``) and the
report (``from_data``), and the state machine (``compile_requirement``).

The compiled form is incremental. Each atom of a step instance's requirement is decided once,
True or False, by one status change of the step it names (``verdicts``). The requirement is a
small tree of AND/OR nodes, each counting its children still undecided:

    AND: a False child decides it False; the last True child decides it True
    OR:  a True child decides it True;   the last False child decides it False

so an atom's verdict climbs only as far as it changes something, and the cost of an event is
independent of how wide the join is. A pure AND of atoms (most requirements) is one node: its
state is a single count.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Union

import attrs

from ..status import CONDITIONS, TERMINAL, StepStatus

Path = tuple[str, ...]


def path_name(path: Path) -> str:
    """Join a path's names with ``_``, as steps are shown to users (``s1_s11_s111``)."""
    return "_".join(path)


@attrs.frozen(cache_hash=True)
class Atom:
    """A sibling step (by path) reaching a status."""

    path: Path
    status: StepStatus

    @functools.cached_property
    def name(self) -> str:
        """The required step's path joined with ``_``."""
        return path_name(self.path)

    @functools.cached_property
    def compiled(self) -> Requirement:
        """This expression compiled (``compile_requirement``), once per expression object."""
        return compile_requirement(self)


@attrs.frozen(cache_hash=True)
class AllOf:
    """True when every item is true; an empty AllOf is always true."""

    items: tuple[Expr, ...]

    @functools.cached_property
    def compiled(self) -> Requirement:
        """This expression compiled (``compile_requirement``), once per expression object."""
        return compile_requirement(self)


@attrs.frozen(cache_hash=True)
class AnyOf:
    """True when at least one item is true; an empty AnyOf is never true."""

    items: tuple[Expr, ...]

    @functools.cached_property
    def compiled(self) -> Requirement:
        """This expression compiled (``compile_requirement``), once per expression object."""
        return compile_requirement(self)


Expr = Union[Atom, AllOf, AnyOf]  # noqa: UP007 - a runtime alias, Python 3.10 too

#: The requirement of a step that requires nothing.
NOTHING = AllOf(())

_CONDITION = {status: number for number, status in enumerate(CONDITIONS)}

# -- walks ---------------------------------------------------------------------------------


def atoms(expr: Expr) -> Iterator[Atom]:
    """Yield every atom of an expression, depth first, left to right."""
    if isinstance(expr, Atom):
        yield expr
    else:
        for item in expr.items:
            yield from atoms(item)


def edges(expr: Expr, under_or: bool = False) -> Iterator[tuple[Atom, bool]]:
    """Every atom of ``expr`` and whether an ``or`` (of more than one item) encloses it."""
    if isinstance(expr, Atom):
        yield expr, under_or
        return
    inner = under_or or (isinstance(expr, AnyOf) and len(expr.items) > 1)
    for item in expr.items:
        yield from edges(item, inner)


def is_conjunction(expr: Expr) -> bool:
    """True when ``expr`` is a plain AND of atoms (no ``or`` of more than one item in it)."""
    return all(not under_or for _, under_or in edges(expr))


def text(expr: Expr, top: bool = True) -> str:
    """A requirement as people read it: ``s1:success or (s2:failure and s3:complete)``."""
    if isinstance(expr, Atom):
        return f"{expr.path[-1]}:{expr.status.value}"
    if not expr.items:
        return "nothing" if isinstance(expr, AllOf) else "never"
    if len(expr.items) == 1:
        return text(expr.items[0], top)
    word = " and " if isinstance(expr, AllOf) else " or "
    joined = word.join(text(item, top=False) for item in expr.items)
    return joined if top else f"({joined})"


def to_data(expr: Expr) -> Any:
    """JSON-able data for ``expr``: ``{"step", "status"}``, ``{"all": [...]}``, ``{"any": [...]}``.

    An empty AND (requires nothing) is None; an AND or OR of one item is that item.
    """
    if isinstance(expr, Atom):
        return {"step": path_name(expr.path), "status": expr.status.value}
    if isinstance(expr, AllOf):
        if not expr.items:
            return None
        if len(expr.items) == 1:
            return to_data(expr.items[0])
        return {"all": [to_data(item) for item in expr.items]}
    return {"any": [to_data(item) for item in expr.items]}


def from_data(data: Any, paths: Mapping[str, Path]) -> Expr:
    """The expression ``to_data`` made; ``paths`` maps a step's path name to its path.

    Raises ``KeyError`` or ``ValueError`` for data that ``to_data`` cannot have made.
    """
    if data is None:
        return NOTHING
    if "step" in data:
        return Atom(paths[data["step"]], StepStatus(data["status"]))
    if "all" in data:
        return AllOf(tuple(from_data(item, paths) for item in data["all"]))
    return AnyOf(tuple(from_data(item, paths) for item in data["any"]))


def data_edges(data: Any, under_or: bool = False) -> Iterator[tuple[str, str, bool]]:
    """``edges`` of the data ``to_data`` made: ``(step path name, status, under an or)``."""
    if not data:
        return
    if "step" in data:
        yield data["step"], data["status"], under_or
        return
    items = data.get("all", data.get("any", ()))
    inner = under_or or ("any" in data and len(items) > 1)
    for item in items:
        yield from data_edges(item, inner)


# -- the compiled, incremental form ----------------------------------------------------------


def verdicts(
    status: StepStatus, previous: StepStatus | None, replayed: bool
) -> tuple[bool | None, ...]:
    """What one status change of a step decides for each condition of ``CONDITIONS``.

    ``previous`` is the step instance's status before the change (None, ready or active);
    ``replayed``: a recover marked it success without running it (it counts as started).
    Each atom is decided by exactly one change: True, False (it can never hold), or None (not
    by this change).
    """
    return _VERDICTS[status, previous, replayed]


def _verdicts(
    status: StepStatus, previous: StepStatus | None, replayed: bool
) -> tuple[bool | None, ...]:
    if status is StepStatus.ready:
        return (True, None, None, None, None)
    if status is StepStatus.active:
        return (None, True, None, None, None)
    ready = False if previous is None else None  # was it ever ready? then already decided
    if replayed:
        active: bool | None = True
    else:
        active = None if previous is StepStatus.active else False
    success = status is StepStatus.success
    failure = status is StepStatus.failure
    return (ready, active, success, failure, success or failure)


_VERDICTS = {
    (status, previous, replayed): _verdicts(status, previous, replayed)
    for status in (StepStatus.ready, StepStatus.active, *TERMINAL)
    for previous in (None, StepStatus.ready, StepStatus.active)
    for replayed in (False, True)
}

#: ``verdicts`` results that decide nothing (a change no atom of that kind waits for).
UNDECIDED = (None, None, None, None, None)


class Requirement:
    """One step's requirement compiled for incremental evaluation, shared by its instances.

    ``constant`` is True (it holds from the start), False (it can never hold) or None (it
    depends on atoms). ``sources[name]`` lists, for each atom naming sibling ``name``, its
    condition (an index into ``CONDITIONS``) and the tree node it belongs to. Node 0 is the
    root; ``conjunction[i]`` says whether node ``i`` is an AND, ``counts[i]`` how many children
    it has, ``parents[i]`` its parent (-1 for the root). ``simple``: the tree is one AND node.
    """

    __slots__ = ("constant", "sources", "conjunction", "counts", "parents", "simple")

    def __init__(self) -> None:
        self.constant: bool | None = None
        self.sources: dict[str, list[tuple[int, int]]] = {}
        self.conjunction: list[bool] = []
        self.counts: list[int] = []
        self.parents: list[int] = []
        self.simple = True

    def fresh(self) -> Any:
        """The state of an instance none of whose atoms is decided: a count, or a list."""
        return self.counts[0] if self.simple else list(self.counts)

    def apply(self, counts: list[int], node: int, verdict: bool) -> bool | None:
        """Mutates ``counts``: apply an atom's ``verdict`` under ``node``; return the root's
        verdict when this decides it, else None. A decided node's count is -1."""
        while True:
            remaining = counts[node]
            if remaining < 0:
                return None  # decided before: nothing changes above it
            if verdict is not self.conjunction[node]:  # AND meets False, OR meets True
                counts[node] = -1
            elif remaining == 1:
                counts[node] = -1
            else:
                counts[node] = remaining - 1
                return None
            node = self.parents[node]
            if node < 0:
                return verdict


def compile_requirement(expr: Expr) -> Requirement:
    """Compile ``expr`` once for incremental evaluation (see ``Requirement``)."""
    requirement = Requirement()
    folded = _fold(expr)
    if isinstance(folded, bool):
        requirement.constant = folded
        return requirement
    if isinstance(folded, Atom):
        folded = AllOf((folded,))
    _add_node(requirement, folded, -1)
    requirement.simple = len(requirement.counts) == 1 and requirement.conjunction[0]
    return requirement


def _add_node(requirement: Requirement, expr: AllOf | AnyOf, parent: int) -> None:
    node = len(requirement.counts)
    requirement.conjunction.append(isinstance(expr, AllOf))
    requirement.counts.append(len(expr.items))
    requirement.parents.append(parent)
    for item in expr.items:
        if isinstance(item, Atom):
            entry = (_CONDITION[item.status], node)
            requirement.sources.setdefault(path_name(item.path), []).append(entry)
        else:
            _add_node(requirement, item, node)


def _fold(expr: Expr) -> Expr | bool:
    """``expr`` without constants, one-item groups or a group nested in one of its kind."""
    if isinstance(expr, Atom):
        return expr
    conjunction = isinstance(expr, AllOf)
    items: list[Expr] = []
    for item in expr.items:
        folded = _fold(item)
        if isinstance(folded, bool):
            if folded is not conjunction:
                return folded  # AND with a false item, OR with a true one
            continue  # a neutral item
        if isinstance(folded, AllOf if conjunction else AnyOf):
            items.extend(folded.items)
        else:
            items.append(folded)
    if not items:
        return conjunction  # every item neutral: AND holds, OR never does
    if len(items) == 1:
        return items[0]
    return AllOf(tuple(items)) if conjunction else AnyOf(tuple(items))


def watched(requirements: Iterable[tuple[str, Requirement]]) -> dict[str, list[Any]]:
    """For each step name, the requirements that name it: ``(watcher, requirement, entries)``."""
    found: dict[str, list[Any]] = {}
    for watcher, requirement in requirements:
        for source, entries in requirement.sources.items():
            found.setdefault(source, []).append((watcher, requirement, tuple(entries)))
    return found
