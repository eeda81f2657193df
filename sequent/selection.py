"""Choosing steps on the command line: ``--only``, ``recover --rerun [--downstream]``.

A ``Selection`` says, per step path, what a run does with its instances:

* ``--only STEP,...``: the instances of those steps (and of every step inside them) run; the
  containers around them run as needed to reach them; every other leaf instance is *kept*: it
  takes its latest status in the recovered run without running (a step that never ran there,
  or any step in a fresh run, ends ``skipped``). What a chosen step requires among the kept
  steps must show ``success`` in the recovered run, else ``select`` refuses the selection.
* ``--rerun STEP,...``: those steps' instances (and everything inside them) run again even
  though their latest status would be recovered; with ``--downstream`` so does every step
  after them (its requirements name them, directly or through their containers).

Pure: reads the plan and the previous statuses, mutates nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from .compiler import NodeKey, Plan
from .errors import SelectionError
from .status import StepStatus

_SHOWN = 12


@attrs.frozen
class Selection:
    """Which step paths a run keeps (``--only``) and which it reruns (``--rerun``)."""

    kept: frozenset[str] = frozenset()
    rerun: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.kept or self.rerun)

    def previous(self, previous: Mapping[NodeKey, StepStatus]) -> dict[NodeKey, StepStatus]:
        """``previous`` without the instances to rerun, so that their policy reruns them."""
        return {key: status for key, status in previous.items() if key.path not in self.rerun}


def parse_steps(values: Iterable[str]) -> list[str]:
    """``--only a,b --only c`` as ``['a', 'b', 'c']`` (blanks dropped)."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def select(
    plan: Plan,
    only: Iterable[str] = (),
    rerun: Iterable[str] = (),
    downstream: bool = False,
    previous: Mapping[NodeKey, StepStatus] | None = None,
    run_id: str | None = None,
) -> Selection:
    """The ``Selection`` for ``--only`` / ``--rerun`` step paths over ``plan``.

    ``previous`` holds the latest statuses of the recovered run ``run_id`` (None for a fresh
    run). Raises ``SelectionError`` for a step that is not in the flow, and for a chosen step
    requiring a kept step that did not succeed in the recovered run.
    """
    index = plan.index
    only = _known(plan, list(only), "--only")
    rerun_paths = _known(plan, list(rerun), "--rerun")
    children = _children(index.parents)
    again = _inside(rerun_paths, children)
    if downstream:
        again = _downstream(again, index.watchers, index.parents, children)
    kept: frozenset[str] = frozenset()
    if only:
        chosen = _inside(only, children)
        around = {parent for path in chosen for parent in _ancestors(path, index.parents)}
        kept = frozenset(
            path
            for path, step in index.steps.items()
            if path not in chosen and path not in around and not step.is_container
        )
        _check_requirements(plan, chosen, previous or {}, run_id)
    return Selection(kept=kept, rerun=frozenset(again))


def _known(plan: Plan, names: list[str], option: str) -> set[str]:
    steps = plan.index.steps
    unknown = [name for name in names if name not in steps]
    if unknown:
        listed = ", ".join(list(steps)[:_SHOWN]) + (" ..." if len(steps) > _SHOWN else "")
        raise SelectionError(
            f"{option} {','.join(unknown)}: no step {unknown[0]!r} in the flow; name steps by "
            f"their path (names from the top joined by '_'): {listed}"
        )
    return set(names)


def _children(parents: Mapping[str, str]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for path, parent in parents.items():
        result.setdefault(parent, []).append(path)
    return result


def _inside(paths: Iterable[str], children: Mapping[str, list[str]]) -> set[str]:
    """``paths`` and every step inside them."""
    result: set[str] = set()
    stack = list(paths)
    while stack:
        path = stack.pop()
        if path not in result:
            result.add(path)
            stack.extend(children.get(path, ()))
    return result


def _ancestors(path: str, parents: Mapping[str, str]) -> list[str]:
    result = []
    parent = parents.get(path, "")
    while parent:
        result.append(parent)
        parent = parents.get(parent, "")
    return result


def _downstream(
    paths: set[str],
    watchers: Mapping[str, tuple[str, ...]],
    parents: Mapping[str, str],
    children: Mapping[str, list[str]],
) -> set[str]:
    """``paths`` and every step after them: those requiring them or their containers."""
    result = set(paths)
    stack = list(paths)
    while stack:
        path = stack.pop()
        for source in [path, *_ancestors(path, parents)]:
            for after in _inside(watchers.get(source, ()), children):
                if after not in result:
                    result.add(after)
                    stack.append(after)
    return result


def _check_requirements(
    plan: Plan,
    chosen: set[str],
    previous: Mapping[NodeKey, StepStatus],
    run_id: str | None,
) -> None:
    index = plan.index
    for needed, watchers in index.watchers.items():
        if needed in chosen:
            continue
        for path in watchers:
            if path not in chosen:
                continue
            for key in (k for k in plan.nodes if k.path == path):
                before = previous.get(NodeKey(needed, key.sequence))
                if before is StepStatus.success:
                    continue
                if run_id is None:
                    why = "this is a fresh run, in which it has not run"
                    fix = f"add {needed!r} to --only, or use `sequent recover --only`"
                else:
                    shown = before.value if before else "it never ran"
                    why = f"it did not succeed in run {run_id} (latest status: {shown})"
                    fix = f"add {needed!r} to --only, or recover it first"
                raise SelectionError(
                    f"--only {path}: {path!r} at sequence {key.sequence} requires {needed!r}, "
                    f"which is not among --only and {why}; {fix}"
                )


__all__ = ["Selection", "parse_steps", "select"]
