"""Frozen definitions of a flow: steps and the flow itself (expressions: ``requirements``).

The builder facade (``sequent.flow``) creates these; nothing here changes after creation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ..status import StepReplay, StepStatus
from .requirements import NOTHING, AllOf, AnyOf, Atom, Expr, Path, atoms, path_name

__all__ = [
    "DEFAULT_RECOVERY",
    "NOTHING",
    "NO_OPTIONS",
    "AllOf",
    "AnyOf",
    "Atom",
    "Expr",
    "FlowDef",
    "Path",
    "StepDef",
    "atoms",
    "path_name",
]

#: Every step that sets no ``recovery=`` shares this one mapping (never changed).
DEFAULT_RECOVERY: Mapping[StepStatus, StepReplay] = {
    StepStatus.ready: StepReplay.rerun,
    StepStatus.active: StepReplay.rerun,
    StepStatus.success: StepReplay.skip,
    StepStatus.failure: StepReplay.rerun,
    StepStatus.skipped: StepReplay.rerun,
    StepStatus.interrupted: StepReplay.rerun,
}


#: The ``kwargs`` and ``config`` of every step that sets none: one shared mapping, never
#: changed (a million steps would otherwise hold two million empty dicts).
NO_OPTIONS: Mapping[str, Any] = {}


def _joined(step: StepDef) -> str:
    return path_name(step.path)


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
    kwargs: Mapping[str, Any] = NO_OPTIONS
    requires: Expr = NOTHING
    delay: float = 0.0
    acquires: tuple[tuple[Any, int], ...] = ()
    releases: tuple[tuple[Any, int], ...] | None = None
    recovery: Mapping[StepStatus, StepReplay] = DEFAULT_RECOVERY
    repeats: Any = None
    config: Mapping[str, Any] = NO_OPTIONS
    hosts: tuple[str, ...] | None = None
    retries: int = 0
    retry_delay: float = 0.0
    timeout: float | None = None
    children: tuple[StepDef, ...] = ()
    #: How many of a container's iterations may run at the same time (0: no limit).
    parallel: int = 1
    #: The path joined with ``_`` (given by the builder, which has it already).
    path_name: str = attrs.field(default=attrs.Factory(_joined, takes_self=True))

    @property
    def is_container(self) -> bool:
        """True for a step that has children (and so no func)."""
        return bool(self.children)

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
