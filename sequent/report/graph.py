"""The run's graph, one level at a time: each container's children, with their marks' counts.

    top level:  [a ✔1] ──success──> [box ▸ ✔98 ✖1 ⊘1] ──success──> [z ⊘1]   (drawn top-down)
    box:        [s1 ✔100] ──> [s2 ✔99 ✖1]     (a panel of its own, opened from its node)

Each level is drawn by Graphviz (all of them in one ``dot`` call) as inline SVG: a step is one
node however many instances it has, filled by its most telling mark and labelled with the
count of each mark; a container is a folder-shaped node, white, with the counts of every step
instance inside it, linking to its own panel. Steps and containers holding an unhandled
failure (the failing path) get a thick dark red border; handled failures a dashed one; steps
marked by hand a purple one. Panels on the failing path start open, the others closed.
Without Graphviz, the same levels are nested lists.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping
from typing import Any

from ..compiler import NodeKey, requirements
from ..graphviz import GraphvizError, render
from ..marks import handled_paths
from ..status import StepStatus
from .marks import BY_WEIGHT, Mark, mark_of

#: Seconds Graphviz may take to lay the graphs out before the page falls back to lists.
GRAPHVIZ_TIMEOUT = 60.0
#: Kept for compatibility: the graph no longer switches views by size.
EXPANDED_LIMIT = 500

#: Fill colour of each mark (the status colours of ``sequent graph``, refined by meaning).
MARK_COLORS = {
    Mark.unhandled: "#f4a3a3",
    Mark.handled: "#f9d3c4",
    Mark.interrupted: "#ffc078",
    Mark.active: "#ffe08a",
    Mark.ready: "#cfe3ff",
    Mark.marked: "#e3d2f5",
    Mark.skipped: "#d9d9d9",
    Mark.rerun: "#c9eec4",
    Mark.recovered: "#dff2dc",
    Mark.success: "#a8e6a1",
}
NOT_REACHED = "#ffffff"
_BORDERS = {  # mark -> (colour, width, dashed)
    Mark.unhandled: ("#8b0000", 3.0, False),
    Mark.handled: ("#b03030", 1.6, True),
    Mark.marked: ("#6a2fb0", 2.2, False),
    Mark.interrupted: ("#b35c00", 2.0, False),
}


def graph_section(
    structure: Mapping[str, Any],
    statuses: Mapping[Any, Any],
    parallel_note: bool = True,
) -> str:
    """The graph panels of a run: ``statuses`` maps (path, sequence) to a ``Mark`` (or a
    ``StepStatus``, marked here as ``sequent show`` marks it)."""
    marks = _as_marks(structure, statuses)
    steps = list(structure.get("steps", ()))
    children: dict[str | None, list[Mapping[str, Any]]] = {}
    for step in sorted(steps, key=lambda s: int(s["order"])):
        children.setdefault(step.get("parent"), []).append(step)
    counts = _counts(steps, children, marks)
    levels = [None] + [s["path"] for s in steps if s.get("kind") == "container"]
    svgs, why = graphviz_svgs([_level_dot(p, children, counts, marks) for p in levels])
    if svgs is None:
        body = _list(None, children, counts)
        return f'<p class="note">{_e(why)}</p><div class="graph-list">{body}</div>'
    drawn = dict(zip(levels, svgs, strict=True))
    return f'<div class="graph">{_panel(None, structure, children, counts, drawn)}</div>'


def _as_marks(structure: Mapping[str, Any], statuses: Mapping[Any, Any]) -> dict[Any, Mark]:
    handled = handled_paths(structure)
    marks = {}
    for key, value in statuses.items():
        if isinstance(value, StepStatus):
            value = mark_of({"path": key[0], "status": value.value}, handled)
        marks[(key[0], key[1]) if isinstance(key, NodeKey) else key] = value
    return marks


def _counts(
    steps: list[Mapping[str, Any]],
    children: Mapping[str | None, list[Mapping[str, Any]]],
    marks: Mapping[tuple[str, str], Mark],
) -> dict[str, Counter[Mark]]:
    """Each step's marks counted; a container's are those of every step instance inside it."""
    own: dict[str, Counter[Mark]] = {step["path"]: Counter() for step in steps}
    for (path, _), mark in marks.items():
        if path in own:
            own[path][mark] += 1

    def total(step: Mapping[str, Any]) -> Counter[Mark]:
        if step.get("kind") != "container":
            return own[step["path"]]
        found: Counter[Mark] = Counter()
        for child in children.get(step["path"], ()):
            found += total(child)
        own[step["path"]] = found
        return found

    for step in children.get(None, ()):
        total(step)
    return own


def _count_text(counter: Counter[Mark]) -> str:
    return "  ".join(f"{mark.symbol}{counter[mark]:,}" for mark in BY_WEIGHT if counter[mark])


def _container_words(step: Mapping[str, Any]) -> str:
    repeats = step.get("repeats")
    words = []
    if isinstance(repeats, Mapping) and "count" in repeats:
        words.append(f"{repeats['count']:,} iterations")
    elif isinstance(repeats, Mapping):
        words.append("iterations at run time")
    parallel = step.get("parallel")
    if parallel is True or parallel == 0:
        words.append("all at once")
    elif isinstance(parallel, int) and parallel > 1:
        words.append(f"up to {parallel} at once")
    return ", ".join(words)


def _level_dot(
    parent: str | None,
    children: Mapping[str | None, list[Mapping[str, Any]]],
    counts: Mapping[str, Counter[Mark]],
    marks: Mapping[tuple[str, str], Mark],
) -> str:
    lines = [
        f"digraph {_quote(parent or 'flow')} {{",
        # top-down, and the parts that do not wait on each other side by side, 8 to a row, in
        # definition order (a level of 30 independent steps stays a block, not a column)
        "  graph [fontname=Helvetica, fontsize=11, nodesep=0.25, ranksep=0.35, pack=true, "
        'packmode="array_u8", bgcolor="transparent"];',
        '  node [shape=box, style="rounded,filled", fontname=Helvetica, fontsize=10];',
        '  edge [fontname=Helvetica, fontsize=9, color="#666666"];',
    ]
    kids = children.get(parent, [])
    unhandled = [key for key, mark in marks.items() if mark is Mark.unhandled]
    for step in kids:
        lines.append(f"  {_quote(step['path'])} [{_node_attributes(step, counts, unhandled)}];")
    known = {step["path"] for step in kids}
    for step in kids:
        for source, status, under_or in _edges(step.get("requires")):
            if source in known:
                style = ", style=dashed" if under_or else ""
                label = f"{status} (or)" if under_or else status
                lines.append(
                    f"  {_quote(source)} -> {_quote(step['path'])} [label={_quote(label)}{style}];"
                )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _node_attributes(
    step: Mapping[str, Any],
    counts: Mapping[str, Counter[Mark]],
    unhandled: list[tuple[str, str]],
) -> str:
    counter = counts.get(step["path"], Counter())
    top = next((mark for mark in BY_WEIGHT if counter[mark]), None)
    container = step.get("kind") == "container"
    name = step.get("name") or step["path"]
    label = [f"{name} \u25b8" if container else name]
    if container and _container_words(step):
        label.append(_container_words(step))
    label.append(_count_text(counter) or "not reached")
    failed = sorted(seq for path, seq in unhandled if path == step["path"])
    if failed and not container:
        label.append("\u2716 at " + ", ".join(failed[:3]) + (" \u2026" if len(failed) > 3 else ""))
    fill = "#ffffff" if container else MARK_COLORS[top] if top else NOT_REACHED
    border = next((_BORDERS[m] for m in _BORDERS if counter[m]), ("#555555", 1.0, False))
    style = ["filled"] if container else ["rounded", "filled"]
    if border[2]:
        style.append("dashed")
    attributes = [
        f"label={_quote(chr(10).join(label))}",
        f"fillcolor={_quote(fill)}",
        f"color={_quote(border[0])}",
        f"penwidth={border[1]}",
        f"style={_quote(','.join(style))}",
        f"id={_quote('node-' + step['path'])}",
        f"sortv={int(step['order'])}",
        f"tooltip={_quote(step['path'])}",
    ]
    if container:
        attributes += ["shape=folder", f"URL={_quote('#g-' + step['path'])}"]
    return ", ".join(attributes)


def _edges(data: Any, under_or: bool = False) -> list[tuple[str, str, bool]]:
    return list(requirements.data_edges(data, under_or))


def _panel(
    parent: str | None,
    structure: Mapping[str, Any],
    children: Mapping[str | None, list[Mapping[str, Any]]],
    counts: Mapping[str, Counter[Mark]],
    drawn: Mapping[str | None, str],
) -> str:
    steps = {step["path"]: step for kids in children.values() for step in kids}
    if parent is None:
        title, counter = f"flow {structure.get('flow') or ''!r}: top level", Counter[Mark]()
        for step in children.get(None, ()):
            counter += counts[step["path"]]
    else:
        words = _container_words(steps[parent])
        title = f"{parent} (container{', ' + words if words else ''})"
        counter = counts[parent]
    inner = "".join(
        _panel(step["path"], structure, children, counts, drawn)
        for step in children.get(parent, ())
        if step.get("kind") == "container"
    )
    is_open = parent is None or counter[Mark.unhandled] or counter[Mark.interrupted]
    failing = " failing" if counter[Mark.unhandled] else ""
    return (
        f'<details class="level{failing}" id="g-{_e(parent or "")}"{" open" if is_open else ""}>'
        f'<summary>{_e(title)} <span class="counts">{_e(_count_text(counter))}</span></summary>'
        f'<div class="scroll">{drawn[parent]}</div>{inner}</details>'
    )


def _list(
    parent: str | None,
    children: Mapping[str | None, list[Mapping[str, Any]]],
    counts: Mapping[str, Counter[Mark]],
) -> str:
    items = []
    for step in children.get(parent, ()):
        chips = "".join(
            f'<span class="chip m-{mark.value}">{mark.symbol} {n:,} {_e(mark.label)}</span>'
            for mark in BY_WEIGHT
            if (n := counts[step["path"]][mark])
        )
        requires = _edges(step.get("requires"))
        needs = (
            f' <span class="needs">requires '
            f"{_e(', '.join(f'{path}:{status}' for path, status, _ in requires))}</span>"
            if requires
            else ""
        )
        items.append(
            f"<li><b>{_e(step.get('name') or step['path'])}</b> {chips}{needs}"
            f"{_list(step['path'], children, counts)}</li>"
        )
    return f"<ul>{''.join(items)}</ul>" if items else ""


def graphviz_svg(dot_text: str) -> tuple[str | None, str]:
    """Lay ``dot_text`` out as SVG with Graphviz; (None, why) when that cannot be done."""
    svgs, why = graphviz_svgs([dot_text])
    return (svgs[0] if svgs else None), why


def graphviz_svgs(dot_texts: list[str]) -> tuple[list[str] | None, str]:
    """Lay several graphs out in one ``dot`` call; (None, why) when that cannot be done."""
    try:
        output = render(dot_texts, "svg", GRAPHVIZ_TIMEOUT)
    except GraphvizError as exc:
        return None, f"{str(exc)[:300]}; the steps are listed instead"
    text = output.decode("utf-8", errors="replace")
    svgs = [part[: part.rindex("</svg>") + 6] for part in text.split("<svg")[1:]]
    if len(svgs) != len(dot_texts):
        return None, "Graphviz gave fewer drawings than graphs; the steps are listed instead"
    return ["<svg" + svg for svg in svgs], ""


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
