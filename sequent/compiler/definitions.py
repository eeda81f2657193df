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
    #: How many of a container's iterations may run at the same time (0: no limit).
    parallel: int = 1

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
