"""One attempt's timeline: its step instances as lines of an SVG, grouped by container.

    container instance (box/1)          ── a thin span, a toggle
      iteration k of it (box/1 #k)      ── a dashed span, a toggle (only with several iterations)
        step instance (box_a/1.k)       ── failed tries (hatched), then the last try's bar

The page holds the lines as compact JSON beside an empty SVG; its script draws the lines
whose groups are open (or, with a filter, the instances that match) as ``g.row`` elements,
stacked, and sets the SVG's height and viewBox to them, so a view of 10,000 instances costs
only the lines shown. Groups start open unless the attempt has more than ``OPEN_LIMIT``
lines; then only the groups holding a problem (a failure or an interruption) start open.
Times are seconds from the attempt's start (``data-t0``), from which the script zooms.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from ..compiler import NodeKey
from .marks import Mark
from .model import Try, tries_of

#: An attempt with more lines than this starts with only its problem groups open.
OPEN_LIMIT = 200
LABEL_WIDTH, PLOT_WIDTH, RIGHT, TOP, ROW_HEIGHT = 330, 860, 90, 30, 16


@attrs.frozen
class Row:
    """One step instance in one attempt, and what its timeline line draws."""

    key: NodeKey
    container: bool
    status: str
    start: float | None
    end: float | None
    replayed: bool
    retries: tuple[tuple[float, float, str], ...]  # (start, end, error) of failed tries
    error: str | None
    rank: tuple[Any, ...]
    mark: Mark | None = None
    note: str = ""

    @property
    def executed(self) -> bool:
        """True when the step's code ran in this attempt (it gets a ``rect.bar``)."""
        return (
            not self.container
            and not self.replayed
            and self.start is not None
            and self.status not in ("skipped", "ready")
        )

    @property
    def first(self) -> float:
        """When the line begins: its first try, else its start or end."""
        times = [
            t for t in (self.retries[0][0] if self.retries else None, self.start, self.end) if t
        ]
        return min(times) if times else float("inf")


def timeline_rows(
    nodes: Iterable[Mapping[str, Any]],
    events: Iterable[Mapping[str, Any]],
    retry_delays: Mapping[str, float] | None = None,
    marks: Mapping[tuple[str, str], Mark] | None = None,
    tries: Mapping[tuple[int, str, str], list[Try]] | None = None,
) -> list[Row]:
    """The rows of one attempt (``nodes`` of one attempt), in the order they started.

    Every try's times are the ones its events recorded; ``retry_delays`` is accepted for
    compatibility and not needed.
    """
    del retry_delays
    tries = tries if tries is not None else tries_of(events)
    marks = marks or {}
    rows = [
        row_of(node, tries.get((node["attempt"], node["path"], node["sequence"]), []), marks)
        for node in nodes
    ]
    rows.sort(key=lambda row: (row.first, row.rank))
    return rows


def row_of(node: Mapping[str, Any], tries: list[Try], marks: Mapping[Any, Mark]) -> Row:
    """The ``Row`` of one node row, given its tries (``tries_of``) and the marks by key."""
    key = NodeKey(node["path"], node["sequence"])
    final = tries[-1] if tries and tries[-1].status == node["status"] else None
    failed = tries[:-1] if final is not None else tries
    start = node.get("started")
    if final is not None:
        start = final.start
    elif failed and node["status"] != "interrupted":
        start = start if start is not None else failed[-1].end
    return Row(
        key=key,
        container=node.get("kind") == "container",
        status=node["status"],
        start=start,
        end=node.get("ended"),
        replayed=bool(node.get("replayed")),
        retries=tuple((t.start or 0.0, t.end or 0.0, t.error or t.status) for t in failed),
        error=node.get("error"),
        rank=(
            node.get("step_order") if node.get("step_order") is not None else 1 << 30,
            tuple(int(p) for p in key.sequence.split(".") if p.isdigit()),
        ),
        mark=marks.get((key.path, key.sequence)),
    )


@attrs.frozen
class Line:
    """One drawn line: a step or container instance (``row``), or an iteration of one."""

    id: str
    parent: str | None
    depth: int
    label: str
    row: Row | None
    start: float | None
    end: float | None
    problem: bool
    group: bool


def lines_of(rows: list[Row], parents: Mapping[str, str | None], prefix: str = "t") -> list[Line]:
    """Rows arranged as a tree: each container instance, then its iterations and children.

    ``parents`` maps each step path to its container's path (None at the top).
    """
    by_key = {(row.key.path, row.key.sequence): row for row in rows}
    children: dict[tuple[str, str] | None, list[Row]] = {}
    for row in rows:  # rows come sorted by start: children lists keep that order
        parent = parents.get(row.key.path)
        owner = (parent, row.key.sequence.rpartition(".")[0]) if parent else None
        children.setdefault(owner if owner in by_key else None, []).append(row)
    lines: list[Line] = []

    def problem(items: list[Line]) -> bool:
        return any(line.problem for line in items)

    def visit(row: Row, parent_id: str | None, depth: int) -> list[Line]:
        own = f"{prefix}-{row.key.path}@{row.key.sequence}"
        kids = children.get((row.key.path, row.key.sequence), [])
        iterations: dict[str, list[Row]] = {}
        for kid in kids:
            iterations.setdefault(kid.key.sequence.rpartition(".")[2], []).append(kid)
        inner: list[Line] = []
        if len(iterations) > 1:
            for ordinal in sorted(iterations, key=lambda k: int(k) if k.isdigit() else 0):
                group_id = f"{own}#{ordinal}"
                below = [
                    ln for kid in iterations[ordinal] for ln in visit(kid, group_id, depth + 2)
                ]
                starts = [ln.start for ln in below if ln.start]
                ends = [ln.end for ln in below if ln.end]
                inner.append(
                    Line(
                        group_id,
                        own,
                        depth + 1,
                        f"iteration {ordinal}",
                        None,
                        min(starts) if starts else None,
                        max(ends) if ends else None,
                        problem(below),
                        True,
                    )
                )
                inner += below
        else:
            inner = [ln for kid in kids for ln in visit(kid, own, depth + 1)]
        bad = row.mark is not None and row.mark.is_problem and not row.container
        parent = parents.get(row.key.path)
        step = row.key.path[len(parent) + 1 :] if parent and depth else row.key.path
        name = f"{step}/{row.key.sequence}"
        head = Line(
            own, parent_id, depth, name, row, row.start, row.end, bad or problem(inner), bool(kids)
        )
        return [head, *inner]

    for row in children.get(None, []):
        lines += visit(row, None, 0)
    return lines


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def seconds_text(value: float) -> str:
    """A duration as people read it: ``850 ms``, ``2.40 s``, ``3.1 min``."""
    if value >= 3600:
        return f"{value / 3600:.1f} h"
    if value >= 60:
        return f"{value / 60:.1f} min"
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 0.01:
        return f"{value * 1000:.0f} ms"
    return f"{value * 1000:.1f} ms"


def default_open(lines: list[Line]) -> list[bool]:
    """Which groups start open: all of them in a small view, else those holding a problem."""
    small = len(lines) <= OPEN_LIMIT
    return [small or line.problem for line in lines]


def first_line(text: str | None, limit: int = 300) -> str:
    """The first non-empty line of an error, cut to ``limit`` characters."""
    for line in (text or "").strip().splitlines():
        return line[:limit]
    return ""


def timeline_svg(
    rows: list[Row],
    begin: float | None = None,
    end: float | None = None,
    parents: Mapping[str, str | None] | None = None,
    prefix: str = "t",
) -> str:
    """One attempt's timeline: an empty ``svg.timeline`` and its lines as JSON, drawn by the
    page's script (rows from ``timeline_rows``; ``parents`` maps step paths to containers)."""
    lines = lines_of(rows, parents or {}, prefix)
    times = [t for row in rows for t in (row.start, row.end) if t]
    times += [t for row in rows for r in row.retries for t in r[:2]]
    t0 = min(times + ([begin] if begin else [])) if times or begin else 0.0
    t1 = max(times + ([end] if end else [])) if times or end else t0
    index = {line.id: number for number, line in enumerate(lines)}

    def at(moment: float | None, default: float | None = t1) -> float | None:
        """Seconds from ``t0``; a missing end is the attempt's end, a missing start None."""
        moment = moment if moment is not None else default
        return round(moment - t0, 4) if moment is not None else None

    data = []
    for line, is_open in zip(lines, default_open(lines), strict=True):
        row = line.row
        item: list[Any] = [
            line.id[len(prefix) + 1 :],
            index.get(line.parent or "", -1),
            line.depth,
            line.label,
            int(is_open),
            int(line.problem),
        ]
        if row is None:
            item += ["iteration", "", "", "", at(line.start, None), at(line.end)]
        else:
            kind = "container" if row.container else "step" if row.executed else "mark"
            draw = row.end or row.start if kind == "mark" else row.start
            item += [
                kind,
                f"{row.key.path}/{row.key.sequence}",
                row.status,
                row.mark.value if row.mark else "",
                at(draw, None),
                at(row.end),
            ]
            item.append([[at(a), at(b), first_line(e)] for a, b, e in row.retries])
            item.append(first_line(row.error))
            item.append(row.note)
        data.append(item)
    return (
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{TOTAL_WIDTH}" '
        f'height="{TOP + 10}" viewBox="0 0 {TOTAL_WIDTH} {TOP + 10}" data-prefix="{prefix}" '
        f'data-t0="{t0:.4f}" data-span="{max(t1 - t0, 1e-3):.4f}" data-row-height="{ROW_HEIGHT}" '
        f'data-top="{TOP}"></svg><script type="application/json" class="lines">'
        f"{script_json(data)}</script>"
    )


TOTAL_WIDTH = LABEL_WIDTH + PLOT_WIDTH + RIGHT


def script_json(data: Any) -> str:
    """JSON safe inside a script element: every ``<`` written ``\\u003c`` (as JSON allows), so
    neither ``</script>`` nor ``<!--`` (which makes ``<script`` hide the closing tag) can end
    or swallow it."""
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
