"""The structure codec: a compiled flow as JSON-able data, and that data compiled back.

A run records the structure of the flow it ran (``structure_of``), so that a store can be read,
drawn and compared without the flow's code. ``read_structure`` turns the recorded data (plus the
nodes created at run time) into the shape ``Store.structure`` returns; ``plan_from_structure``
compiles that shape again with stand-in functions; ``describe_changes`` names what differs
between two recorded structures. Pure: no I/O, no store.

    Plan ──structure_of──> {"format": 3, "flow", "steps"} ──(store, JSON)──┐
    Plan <──plan_from_structure── read_structure(recorded, expansions) <───┘

``decoded`` turns a recorded structure of any format (3: the definitions and how they expand;
1 and 2, written by earlier versions: one ``[path, sequence, item]`` per node) into the per-node
view readers use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from . import requirements
from .definitions import DEFAULT_RECOVERY, FlowDef, StepDef
from .graph import Plan, compile_flow

#: Longest repeat-item text kept in the structure.
MAX_ITEM_CHARS = 200


# -- encoding --------------------------------------------------------------------------------


def structure_of(plan: Plan) -> dict[str, Any]:
    """The compiled flow as JSON-able data: each step definition once, and how it expands.

    Format 3: ``steps`` holds one dict per definition, in definition order: ``path``, and
    only what is not left at its default: ``order`` (when it is not the entry's position),
    ``parent`` for a child step, ``kind`` for a container, ``func``, ``requires`` (or
    ``requires_as``: the path of an earlier step with the same expression), ``repeats``
    (``{"count": n}`` or ``{"callable": name}``) with ``items`` (the repr of each static
    iteration's value), ``delay``, ``retries``, ... The step instances are not listed: they
    follow from the steps (``decoded`` expands them), so a fan of 100,000 steps records
    100,000 small entries and nothing per node. Formats 1 and 2 listed ``nodes``
    (``[path, sequence, item]`` per static instance); ``decoded`` reads every format.
    """
    steps: list[dict[str, Any]] = []
    shared: dict[int, str] = {}  # requirement expression (by id) -> first step recorded with it
    names: dict[int, str | None] = {}  # callable (by id) -> its recorded name
    found: list[tuple[StepDef, str | None]] = []
    pending: list[tuple[StepDef, str | None]] = [(step, None) for step in reversed(plan.flow.steps)]
    while pending:  # depth first, children in definition order
        step, parent = pending.pop()
        found.append((step, parent))
        pending.extend((child, step.path_name) for child in reversed(step.children))
    found.sort(key=lambda pair: pair[0].order)
    for position, (step, parent) in enumerate(found):
        entry = _step_entry(step, parent, shared, names)
        if step.order != position:
            entry["order"] = step.order
        steps.append(entry)
    return {"format": FORMAT, "flow": plan.flow.name, "steps": steps}


#: The format ``structure_of`` writes.
FORMAT = 3


def _step_entry(
    step: StepDef, parent: str | None, shared: dict[int, str], names: dict[int, str | None]
) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": step.path_name}
    if parent is not None:
        entry["parent"] = parent
    if step.children:
        entry["kind"] = "container"
    if step.func is not None:
        key = id(step.func)
        name = names.get(key)
        if name is None:
            name = names[key] = _callable_name(step.func)
        entry["func"] = name
    requires = step.requires
    if requires is not requirements.NOTHING:
        first = shared.get(id(requires))
        if first is not None:  # the same expression as an earlier step's: name that step
            entry["requires_as"] = first
        else:
            data = requirements.to_data(requires)
            if data is not None:
                shared[id(requires)] = step.path_name
                entry["requires"] = data
    if step.repeats is not None:
        entry["repeats"] = _repeats(step.repeats)
        if not callable(step.repeats):
            entry["items"] = [item_text(item) for item in step.repeats]
    if step.parallel != 1:
        entry["parallel"] = step.parallel  # 0: no limit
    if step.delay or step.retries or step.retry_delay or step.timeout:
        for name in ("delay", "retries", "retry_delay", "timeout"):
            value = getattr(step, name)
            if value:
                entry[name] = value
    _other_options(step, entry)
    return entry


def _other_options(step: StepDef, entry: dict[str, Any]) -> None:
    if step.hosts:
        entry["hosts"] = list(step.hosts)
    if step.acquires:
        entry["acquires"] = [[pool.name, amount] for pool, amount in step.acquires]
    if step.releases is not None:
        entry["releases"] = [[pool.name, amount] for pool, amount in step.releases]
    if step.recovery is not DEFAULT_RECOVERY:
        recovery = {
            status.value: replay.value
            for status, replay in step.recovery.items()
            if DEFAULT_RECOVERY.get(status) is not replay
        }
        if recovery:
            entry["recovery"] = recovery
    if step.config:
        entry["config"] = dict(step.config)


def item_text(item: Any) -> str | None:
    """A repeat item as recorded: its repr, cut to ``MAX_ITEM_CHARS`` (None for no item)."""
    if item is None:
        return None
    try:
        text = repr(item)
    except Exception as exc:
        text = f"<{type(item).__name__} whose repr raised {type(exc).__name__}>"
    return text if len(text) <= MAX_ITEM_CHARS else text[: MAX_ITEM_CHARS - 3] + "..."


def _repeats(repeats: Any) -> Any:
    if repeats is None:
        return None
    if callable(repeats):
        return {"callable": _callable_name(repeats)}
    return {"count": len(repeats)}


def _callable_name(func: Any) -> str | None:
    if func is None:
        return None
    name = getattr(func, "__qualname__", None)
    if isinstance(name, str):
        return f"{getattr(func, '__module__', None) or '?'}.{name}"
    return item_text(func)


# -- decoding --------------------------------------------------------------------------------


def decoded(recorded: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded structure of any format in the per-node shape formats 1 and 2 recorded.

    That is ``flow``, ``steps`` (each with its ``order``; ``items`` dropped) and ``nodes``:
    ``[path, sequence, item]`` per statically known step instance, in definition order, then
    sequence order. A structure that lists its nodes (formats 1 and 2, or one decoded
    already) comes back as a copy; a format 3 one has its nodes expanded from its steps.
    """
    structure = dict(recorded)
    if "nodes" in structure:
        return structure
    entries = list(structure.get("steps", ()))
    steps = []
    for position, entry in enumerate(entries):
        step = dict(entry)
        step.setdefault("order", position)
        steps.append(step)
    structure["nodes"] = _expanded_nodes(steps)
    for step in steps:
        step.pop("items", None)
    structure["steps"] = steps
    return structure


def _expanded_nodes(steps: list[dict[str, Any]]) -> list[list[Any]]:
    """The static step instances of format 3 ``steps``, as ``expand_iterations`` makes them."""
    children: dict[str | None, list[dict[str, Any]]] = {}
    for step in sorted(steps, key=_order):
        children.setdefault(step.get("parent"), []).append(step)
    found: list[tuple[int, tuple[int, ...], str, str, str | None]] = []
    pending: list[tuple[str | None, str, tuple[int, ...], list[Any]]] = [(None, "", (), [None])]
    while pending:
        parent, parent_sequence, numbers, items = pending.pop()
        body = children.get(parent, ())
        for ordinal, item in enumerate(items, start=1):
            sequence = f"{parent_sequence}.{ordinal}" if parent_sequence else str(ordinal)
            rank = (*numbers, ordinal)
            for step in body:
                found.append((step["order"], rank, step["path"], sequence, item))
                inner = _static_items(step)
                if step["path"] in children and inner is not None:
                    pending.append((step["path"], sequence, rank, inner))
    found.sort(key=lambda node: (node[0], node[1]))
    return [[path, sequence, item] for _, _, path, sequence, item in found]


def _static_items(step: Mapping[str, Any]) -> list[Any] | None:
    """The recorded item texts a container iterates over; None when known only at run time."""
    repeats = step.get("repeats")
    if repeats is None:
        return [None]
    if "callable" in repeats:
        return None
    items = step.get("items")
    return list(items) if items is not None else [None] * int(repeats.get("count", 0))


def read_structure(
    recorded: Mapping[str, Any] | None, expansions: Iterable[tuple[Any, ...]] = ()
) -> dict[str, Any]:
    """The shape ``Store.structure`` returns, from a recorded structure and run-time expansions.

    Each step gains ``parent``, ``kind`` and ``name``; each node becomes a dict with ``path``,
    ``sequence``, ``parent`` ([path, sequence]), ``ordinal``, ``item`` and ``expanded``.
    ``expansions`` are ``(path, sequence, parent_path, parent_sequence, ordinal, item)`` rows.
    """
    structure = decoded(recorded) if recorded else {"flow": None, "steps": [], "nodes": []}
    steps = resolved_steps(structure)
    for step in steps:
        parent = step.setdefault("parent", None)
        step.setdefault("kind", "step")
        step["name"] = step["path"][len(parent) + 1 :] if parent else step["path"]
    parents = {step["path"]: step["parent"] or "" for step in steps}
    nodes = []
    for path, sequence, item in structure["nodes"]:
        parent_sequence, _, ordinal = sequence.rpartition(".")
        parent = parents.get(path, "")
        nodes.append(
            {
                "path": path,
                "sequence": sequence,
                "parent": [parent, parent_sequence if parent else ""],
                "ordinal": int(ordinal),
                "item": item,
                "expanded": False,
            }
        )
    for path, sequence, parent_path, parent_sequence, ordinal, item in expansions:
        nodes.append(
            {
                "path": path,
                "sequence": sequence,
                "parent": [parent_path, parent_sequence],
                "ordinal": ordinal,
                "item": item,
                "expanded": True,
            }
        )
    structure["steps"] = steps
    structure["nodes"] = nodes
    return structure


class _Shown:
    """A stand-in for a recorded repeat item: its repr is the recorded text."""

    def __init__(self, text: str | None) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text if self.text is not None else "?"


def _recorded_step(*args: Any, **kwargs: Any) -> None:
    """Stands in for a recorded step's function when a structure is compiled again."""


def _at_run_time() -> tuple[()]:
    """Stands in for a recorded callable ``repeats``."""
    return ()


def plan_from_structure(structure: Mapping[str, Any]) -> Plan:
    """Compile a structure as ``read_structure`` gives it again, with stand-in functions.

    Raises the compiler's ``SequentError`` if the structure is not a valid flow.
    """
    steps = list(structure.get("steps", ()))
    paths: dict[str, tuple[str, ...]] = {}
    for step in sorted(steps, key=_order):
        parent = step.get("parent")
        paths[step["path"]] = (*paths[parent], step["name"]) if parent else (step["name"],)
    items: dict[tuple[str, int], str | None] = {}
    for node in structure.get("nodes", ()):
        parent = node.get("parent") or ["", ""]
        items.setdefault((parent[0], node.get("ordinal", 1)), node.get("item"))
    children: dict[str | None, list[Mapping[str, Any]]] = {}
    for step in steps:
        children.setdefault(step.get("parent"), []).append(step)

    def define(step: Mapping[str, Any]) -> StepDef:
        kids = tuple(define(c) for c in sorted(children.get(step["path"], []), key=_order))
        return StepDef(
            name=step["name"],
            path=paths[step["path"]],
            order=step["order"],
            func=None if kids else _recorded_step,
            requires=requirements.from_data(step.get("requires"), paths),
            repeats=_parse_repeats(step, items),
            children=kids,
            parallel=int(step.get("parallel", 1)) if kids else 1,
        )

    top = tuple(define(step) for step in sorted(children.get(None, []), key=_order))
    return compile_flow(FlowDef(structure.get("flow") or "flow", top))


def _parse_repeats(step: Mapping[str, Any], items: Mapping[tuple[str, int], str | None]) -> Any:
    repeats = step.get("repeats")
    if isinstance(repeats, Mapping) and "callable" in repeats:
        return _at_run_time
    if isinstance(repeats, Mapping) and "count" in repeats:
        return tuple(_Shown(items.get((step["path"], k))) for k in range(1, repeats["count"] + 1))
    return None


def _order(step: Mapping[str, Any]) -> int:
    return int(step["order"])


# -- comparing -------------------------------------------------------------------------------


def resolved_steps(structure: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Copies of a recorded structure's steps, each with its own ``requires``.

    A step recorded with ``requires_as`` (its requirement is the same expression as that
    earlier step's, recorded once) gets that step's ``requires``.
    """
    steps = [dict(step) for step in structure.get("steps", ())]
    recorded = {step["path"]: step.get("requires") for step in steps if "requires" in step}
    for step in steps:
        first = step.pop("requires_as", None)
        if first is not None:
            step["requires"] = recorded[first]
    return steps


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any], run_id: str) -> list[str]:
    """Messages naming the steps and nodes added, removed or changed between two structures."""
    notes: list[str] = []
    old, new = decoded(old), decoded(new)
    old_steps = {step["path"]: step for step in resolved_steps(old)}
    new_steps = {step["path"]: step for step in resolved_steps(new)}
    added = [path for path in new_steps if path not in old_steps]
    removed = [path for path in old_steps if path not in new_steps]
    compared = ("kind", "requires", "repeats", "parallel")
    changed = [
        path
        for path in new_steps
        if path in old_steps
        and any(new_steps[path].get(field) != old_steps[path].get(field) for field in compared)
    ]
    old_nodes = [(node[0], node[1]) for node in old.get("nodes", ())]
    new_nodes = [(node[0], node[1]) for node in new.get("nodes", ())]
    old_set, new_set = set(old_nodes), set(new_nodes)
    nodes_added = [key for key in new_nodes if key not in old_set]
    nodes_removed = [key for key in old_nodes if key not in new_set]
    if not (added or removed or changed or nodes_added or nodes_removed):
        return notes
    notes.append(
        f"The flow's structure changed since run {run_id} was last recorded; nodes are matched "
        f"by (path, sequence)"
    )
    for label, paths in (("added", added), ("removed", removed), ("changed", changed)):
        if paths:
            notes.append(f"Steps {label}: {_listed(paths)}")
    for label, keys in (("added (will run)", nodes_added), ("removed (ignored)", nodes_removed)):
        if keys:
            notes.append(f"Nodes {label}: {_listed([f'{p}/{s}' for p, s in keys])}")
    return notes


def _listed(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


__all__ = [
    "FORMAT",
    "MAX_ITEM_CHARS",
    "decoded",
    "describe_changes",
    "item_text",
    "plan_from_structure",
    "read_structure",
    "resolved_steps",
    "structure_of",
]
