"""Frozen definitions of a flow: steps, requirement expressions and the flow itself.

The builder facade (``sequent.flow``) creates these; nothing here changes after creation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Union

import attrs

from ..status import StepReplay, StepStatus

Path = tuple[str, ...]


def path_name(path: Path) -> str:
    """Join a path's names with ``_``, as steps are shown to users (``s1_s11_s111``)."""
    return "_".join(path)


@attrs.frozen
class Atom:
    """A sibling step (by path) reaching a status."""

    path: Path
    status: StepStatus

    @functools.cached_property
    def name(self) -> str:
        """The required step's path joined with ``_``."""
        return path_name(self.path)


@attrs.frozen
class AllOf:
    """True when every item is true; an empty AllOf is always true."""

    items: tuple[Expr, ...]


@attrs.frozen
class AnyOf:
    """True when at least one item is true; an empty AnyOf is never true."""

    items: tuple[Expr, ...]


Expr = Union[Atom, AllOf, AnyOf]  # noqa: UP007 - a runtime alias, Python 3.10 too

#: The requirement of a step that requires nothing.
NOTHING = AllOf(())


def atoms(expr: Expr) -> Iterable[Atom]:
    """Yield every atom of an expression, depth first, left to right."""
    if isinstance(expr, Atom):
        yield expr
    else:
        for item in expr.items:
            yield from atoms(item)


DEFAULT_RECOVERY: Mapping[StepStatus, StepReplay] = {
    StepStatus.ready: StepReplay.rerun,
    StepStatus.active: StepReplay.rerun,
    StepStatus.success: StepReplay.skip,
    StepStatus.failure: StepReplay.rerun,
    StepStatus.skipped: StepReplay.rerun,
    StepStatus.interrupted: StepReplay.rerun,
}


@attrs.frozen(eq=False)
class StepDef:
    """One step as the user defined it: a leaf (``func``) or a container (``children``).

    ``order`` is the position of the ``add_step`` call that created it, across the whole flow;
    steps that become ready together start in this order.
    """

    name: str
    path: Path
    order: int
    func: Callable[..., Any] | None = None
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = attrs.field(factory=dict)
    requires: Expr = NOTHING
    delay: float = 0.0
    acquires: tuple[tuple[Any, int], ...] = ()
    releases: tuple[tuple[Any, int], ...] | None = None
    recovery: Mapping[StepStatus, StepReplay] = attrs.field(factory=lambda: dict(DEFAULT_RECOVERY))
    repeats: Any = None
    config: Mapping[str, Any] = attrs.field(factory=dict)
    hosts: tuple[str, ...] | None = None
    retries: int = 0
    retry_delay: float = 0.0
    timeout: float | None = None
    children: tuple[StepDef, ...] = ()

    @property
    def is_container(self) -> bool:
        """True for a step that has children (and so no func)."""
        return bool(self.children)

    @functools.cached_property
    def path_name(self) -> str:
        """The path joined with ``_``."""
        return path_name(self.path)

    @functools.cached_property
    def requirement_atoms(self) -> tuple[Atom, ...]:
        """Every atom of ``requires``, depth first, left to right."""
        return tuple(atoms(self.requires))

    def replay(self, previous: StepStatus | None) -> StepReplay:
        """What a recover run does with an instance whose latest recorded status is ``previous``."""
        if previous is None:
            return StepReplay.rerun
        return self.recovery.get(previous, DEFAULT_RECOVERY.get(previous, StepReplay.rerun))


@attrs.frozen(eq=False)
class FlowDef:
    """A whole flow: its name, its top-level steps in definition order, and its configuration."""

    name: str
    steps: tuple[StepDef, ...]
    config: Mapping[str, Any] = attrs.field(factory=dict)
