"""The handles a flow's builder gives back: steps, events, ``or_``/``and_``, and ``requires``.

A ``Step`` handle collects what ``add_step`` was given and becomes a frozen ``StepDef`` when the
flow is compiled; ``requirement`` turns what ``requires`` was given (pairs, tuples of them,
``or_``/``and_``, events) into the compiler's expression, checking what can be checked at once.
The handles are the only mutable part of a definition.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .arguments import is_status, not_a_status, status
from .compiler import NOTHING, AllOf, AnyOf, Atom, Expr, StepDef, atoms
from .errors import DefinitionError, DefinitionTypeError, UnknownStepError
from .legacy import placeholder
from .status import StepStatus


class _Operator:
    def __init__(self, *items: Any) -> None:
        self.items = items

    def __repr__(self) -> str:
        return f"{type(self).__name__.strip('_')}{self.items!r}"


class Or(_Operator):
    """True when any of its items is true (``seq.or_(...)``)."""


class And(_Operator):
    """True when all of its items are true (``seq.and_(...)``)."""


def or_(*items: Any) -> Or:
    """A requirement that holds when any item holds."""
    return Or(*items)


def and_(*items: Any) -> And:
    """A requirement that holds when every item holds."""
    return And(*items)


class Event:
    """A named, reusable requirement expression made by ``Sequent.add_event``."""

    def __init__(self, flow: Any, requires: Any, number: int) -> None:
        self.flow = flow
        self.requires = requires
        self.number = number

    def __repr__(self) -> str:
        return f"Event({self.number}, {self.requires!r})"


class Step:
    """A handle on a step added to a flow; ``add_step`` on it makes it a container.

    Slotted, and ``children`` a list only once the step has some: a flow of a million steps
    holds a million handles.
    """

    __slots__ = ("children", "definition", "flow", "parent")

    def __init__(self, flow: Any, parent: Step | None, definition: StepDef) -> None:
        self.flow = flow
        self.parent = parent
        self.definition = definition
        self.children: list[Step] | tuple[()] = ()

    def adopt(self, child: Step) -> None:
        """Add ``child`` (a new handle) as the last of this step's children."""
        if isinstance(self.children, list):
            self.children.append(child)
        else:  # its first child
            self.children = [child]

    @property
    def name(self) -> str:
        """The step's own name."""
        return self.definition.name

    @property
    def path(self) -> str:
        """The names from the top down, joined with ``_``."""
        return self.definition.path_name

    def add_step(
        self, name: str, func: Callable[..., Any] | None = None, *args: Any, **kwargs: Any
    ) -> Step:
        """Add a child step; this step becomes a container. Takes ``Sequent.add_step``'s args."""
        if self.definition.func is not None:
            raise DefinitionError(
                f"cannot add step {name!r} to {self.path!r}: {self.path!r} has a func, and a "
                f"container runs its children instead; drop func= from {self.path!r}"
            )
        step: Step = self.flow._add(self, name, func, *args, **kwargs)
        return step

    def add_event(self, requires: Any = None, **kwargs: Any) -> Event:
        """The same as ``flow.add_event``: the original had ``add_event`` on steps too."""
        event: Event = self.flow.add_event(requires, **kwargs)
        return event

    def define(self) -> StepDef:
        """The frozen definition of this step and everything below it.

        A leaf with no func is a placeholder that succeeds; a leaf's one-item ``repeats`` (the
        original's default, ``[1]``) is dropped, as the original ran such a leaf once.
        """
        step = self.definition
        if self.children:
            return attrs.evolve(step, children=tuple(c.define() for c in self.children))
        if step.func is None:
            step = attrs.evolve(step, func=placeholder)
        if isinstance(step.repeats, tuple) and len(step.repeats) == 1:
            step = attrs.evolve(step, repeats=None)
        return step

    def __repr__(self) -> str:
        return f"Step({self.path!r})"


# -- requirements --------------------------------------------------------------------------


def requirement(
    flow: Any, value: Any, parent: Step | None, owner: str, check_siblings: bool = True
) -> Expr:
    """Turn what ``requires`` was given into an expression; check what can be checked now."""
    if value is None or (isinstance(value, (tuple, list, Mapping)) and not value):
        return NOTHING  # () or the original's documented default, {}
    expr = _expression(flow, value, parent, owner)
    if check_siblings:
        parent_path = parent.definition.path if parent else ()
        for atom in atoms(expr):
            if atom.path[:-1] != parent_path:
                raise UnknownStepError(
                    f"step {owner!r} requires {'_'.join(atom.path)!r}, which is not a "
                    f"sibling; requires may name only steps of the same container, so move "
                    f"the step next to {owner!r} or drop the requirement"
                )
    return expr

def _intern(flow: Any, expr: Expr) -> Expr:
    """One object per distinct expression of a flow: steps with equal requirements share it,
    so the compiler and the scheduler handle it once (a wide join of equal requirements)."""
    shared: Expr = flow._expressions.setdefault(expr, expr)
    return shared


def _shown(value: Any) -> str:
    return f"sequent.StepStatus.{value.name}" if isinstance(value, StepStatus) else repr(value)


#: What may stand beside a step in a pair of ``requires`` other than a status (an AND of two).
_EXPRESSIONS = (Step, Event, Or, And, tuple, list)


def _expression(flow: Any, value: Any, parent: Step | None, owner: str) -> Expr:
    if isinstance(value, Event):
        if value.flow is not flow:
            raise DefinitionError(f"step {owner!r} requires an event of another flow")
        return _expression(flow, value.requires, parent, owner)
    if isinstance(value, Or):
        if not value.items:
            raise DefinitionError(
                f"step {owner!r} requires or_() with nothing in it, which can never hold; "
                f"give or_ at least one (step, status) pair"
            )
        return _intern(
            flow, AnyOf(tuple(_expression(flow, item, parent, owner) for item in value.items))
        )
    if isinstance(value, And):
        return _intern(
            flow, AllOf(tuple(_expression(flow, item, parent, owner) for item in value.items))
        )
    if isinstance(value, (tuple, list)):
        if len(value) == 2 and isinstance(value[0], (Step, str)):
            if is_status(value[1]):
                target = _target(flow, value[0], parent, owner)
                return _intern(flow, Atom(target, status(value[1], owner)))
            if not isinstance(value[1], _EXPRESSIONS):  # (step, "succes"), (step, None), ...
                name = value[0].path if isinstance(value[0], Step) else value[0]
                raise not_a_status(value[1], name, owner)
        if len(value) == 3 and isinstance(value[0], (Step, str)) and is_status(value[1]):
            name = value[0].path if isinstance(value[0], Step) else value[0]
            raise DefinitionTypeError(
                f"step {owner!r} requires {name!r} with three values {tuple(value)!r}; a "
                f"requirement is a (step, status) pair: write ({name}, {_shown(value[1])}) "
                f"alone, or several pairs in a tuple"
            )
        return _intern(flow, AllOf(tuple(_expression(flow, item, parent, owner) for item in value)))
    if isinstance(value, Step):
        raise DefinitionTypeError(
            f"step {owner!r} requires {value.path!r} without a status; write "
            f"({value.name}, sequent.StepStatus.success) or another status"
        )
    raise DefinitionTypeError(
        f"step {owner!r}: requires must be (step, status) pairs, tuples of them, "
        f"sequent.or_(...)/and_(...) or events; got {value!r}"
    )

def _target(flow: Any, target: Step | str, parent: Step | None, owner: str) -> tuple[str, ...]:
    if isinstance(target, Step):
        if target.flow is not flow:
            raise UnknownStepError(
                f"step {owner!r} requires {target.path!r}, a step of another flow; "
                f"require steps of this flow only"
            )
        return target.definition.path
    parent_path = parent.definition.path if parent else ()
    return (*parent_path, target)  # a sibling's name; compile() checks that it exists
