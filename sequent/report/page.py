"""The report page: a header that says what happened, the timelines, the graph, the grid.

header    state, duration, counts by mark (each a filter), then the failed instances
          (unhandled first), the interrupted ones and the ones rerun after failing, each linking
          to its grid row, its timeline line and its log
timeline  one per attempt (``timeline``)
graph     one panel per container (``graph``)
grid      step instances x attempts: each cell the instance's mark in that attempt, times
"""

from __future__ import annotations

import html
import os
from collections import Counter
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import attrs

from ..marks import handled_paths
from ..status import StepStatus
from ..text import clock_text, result_text
from .assets import CSS, SCRIPT
from .graph import MARK_COLORS, NOT_REACHED, graph_section
from .marks import BY_WEIGHT, Mark, mark_of
from .model import RunView, load_run
from .timeline import (
    Row,
    default_open,
    first_line,
    lines_of,
    row_of,
    script_json,
    seconds_text,
    timeline_rows,
    timeline_svg,
)

#: The header lists at most this many instances of each kind; the filter finds the rest.
LISTED = 50


def write_report(store: Any, run_id: str, output: str | os.PathLike[str]) -> str:
    """Write the report of run ``run_id`` to ``output``; return the path written.

    Raises ``RecoveryError`` when the store holds no such run.
    """
    text = build_report(store, run_id)
    with open(output, "w", encoding="utf-8") as handle:
        handle.write(text)
    return os.fspath(output)


def build_report(store: Any, run_id: str) -> str:
    """The HTML page of run ``run_id`` read from ``store`` (reads only)."""
    view = load_run(store, run_id)
    parents = {path: step.get("parent") for path, step in view.steps.items()}
    sections = []
    for attempt in view.attempts:
        number = attempt["attempt"]
        rows = timeline_rows(
            view.nodes(number),
            view.events.get(number, []),
            marks=attempt_marks(view, number),
            tries=view.tries,
        )
        rows = [_with_earlier_run(view, row) if row.replayed else row for row in rows]
        svg = timeline_svg(
            rows, attempt.get("started"), attempt.get("ended"), parents, prefix=f"t{number}"
        )
        sections.append(_attempt_section(attempt, rows, svg))
    graph = graph_section(view.structure, view.marks)
    return _page(view, sections, graph)


def _with_earlier_run(view: RunView, row: Row) -> Row:
    """A row skipped by a recover, noting when the attempt that succeeded ran it."""
    history = view.history.get((row.key.path, row.key.sequence), {})
    for number in sorted(history, reverse=True):
        earlier = history[number]
        if earlier["status"] == "success" and not earlier.get("replayed") and earlier["started"]:
            took = (
                f", took {seconds_text(earlier['ended'] - earlier['started'])}"
                if earlier.get("ended")
                else ""
            )
            note = f"ran in attempt {number}: started {clock_text(earlier['started'])}{took}"
            return attrs.evolve(row, note=note)
    return row


def attempt_marks(view: RunView, number: int) -> dict[tuple[str, str], Mark]:
    """Each instance's mark as attempt ``number`` left it."""
    handled = handled_paths(view.structure)
    marks = {}
    for key, rows in view.history.items():
        row = rows.get(number)
        if row is not None:
            before = any(
                r["status"] in ("failure", "interrupted") for n, r in rows.items() if n < number
            )
            marks[key] = mark_of(row, handled, before)
    return marks


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _attempt_section(attempt: Mapping[str, Any], rows: list[Any], svg: str) -> str:
    result = result_text(attempt.get("result"))
    if result == "failure" and any(row.status == "interrupted" for row in rows):
        result = "interrupted"
    executed = sum(1 for row in rows if row.executed)
    replayed = sum(1 for row in rows if row.replayed)
    took = (
        seconds_text(attempt["ended"] - attempt["started"])
        if attempt.get("ended") and attempt.get("started")
        else "did not end"
    )
    facts = [
        f"{attempt.get('mode', '')}",
        f"started {clock_text(attempt.get('started'))}",
        took,
        f"{executed:,} steps ran",
    ]
    if replayed:
        facts.append(f"{replayed:,} skipped as already successful")
    if attempt.get("executor"):
        facts.append(f"{attempt['executor']} executor")
    if attempt.get("logdir"):
        facts.append(f"logs in {attempt['logdir']}")
    number = attempt["attempt"]
    zoom = "".join(
        f'<button type="button" data-zoom="{what}">{label}</button>'
        for what, label in (("in", "zoom in"), ("out", "zoom out"), ("fit", "fit"))
    )
    return (
        f'<section class="attempt" data-attempt="{number}">'
        f'<h3>Attempt {number} <span class="badge {result}">{result}</span></h3>'
        f'<p class="facts">{_e(" · ".join(facts))} <span class="zoom">{zoom}</span></p>'
        f'<div class="scroll tl">{svg}</div></section>'
    )


def _header(view: RunView) -> str:
    run, attempts = view.run, view.attempts
    state = result_text(run.get("result"))
    if state == "failure" and any(p.mark is Mark.interrupted for p in view.problems):
        state = "interrupted"
    ends = [float(a["ended"]) for a in attempts if a.get("ended")]
    took = (
        seconds_text(max(ends) - run["started"]) if ends and run.get("started") else "did not end"
    )
    facts = [
        f"flow {run['flow_name']!r}",
        f"{len(attempts)} attempt{'s' * (len(attempts) != 1)}",
        f"took {took}",
        f"started {clock_text(run.get('started'))}",
        f"ended {clock_text(max(ends) if ends else None)}",
    ]
    for name in ("host", "user", "sequent_version"):
        if run.get(name):
            facts.append(f"{name.replace('_', ' ')} {run[name]}")
    leaves = Counter(
        view.marks[(n["path"], n["sequence"])] for n in view.latest if n.get("kind") != "container"
    )
    counts = "".join(
        f'<a class="chip m-{mark.value}" href="#filter={mark.value}">{mark.symbol} '
        f"{leaves[mark]:,} {_e(mark.label)}</a>"
        for mark in BY_WEIGHT
        if leaves[mark]
    )
    return (
        f'<header class="summary st-{state}">'
        f'<h1>Run {_e(run["run_id"])} <span class="badge {state}">{state}</span></h1>'
        f'<p class="facts">{_e(" · ".join(facts))}</p>'
        f'<p class="counts">{counts or "no steps"}</p>{_problems(view)}</header>'
    )


def _problems(view: RunView) -> str:
    failed = [p for p in view.problems if p.mark is not Mark.interrupted]
    stopped = [p for p in view.problems if p.mark is Mark.interrupted]
    parts = []
    for title, items, css, word in (
        ("Failed", failed, "failed", "failure"),
        ("Interrupted", stopped, "interrupted", "interrupted"),
    ):
        if not items:
            continue
        listed = []
        for problem in items[:LISTED]:
            key = f"{problem.key[0]}@{problem.key[1]}"
            log = (
                f' <a class="log" href="{_e(problem.log)}">log</a>'
                if problem.log
                else ' <span class="nolog">no log recorded</span>'
            )
            listed.append(
                f'<li class="problem" data-mark="{problem.mark.value}" '
                f'data-node="{_e(problem.name)}">'
                f'<span class="sym m-{problem.mark.value}">{problem.mark.symbol}</span> '
                f'<a class="row-link" href="#i-{quote(key)}">{_e(problem.name)}</a> '
                f'<span class="why">{_e(problem.mark.label)}, attempt {problem.attempt}</span> '
                f"<code>{_e(problem.error or '(no error recorded)')}</code> "
                f'<a class="tl-link" href="#t{problem.attempt}-{quote(key)}">timeline</a>{log}</li>'
            )
        more = (
            f'<li class="more"><a href="#filter={word}">and {len(items) - LISTED:,} more</a></li>'
            if len(items) > LISTED
            else ""
        )
        parts.append(
            f'<div class="{css}"><h2>{title}: {len(items):,}</h2>'
            f'<ol class="problems">{"".join(listed)}{more}</ol></div>'
        )
    if view.rerun:
        names = ", ".join(f"{path}/{seq}" for path, seq in view.rerun[:LISTED])
        more = f" and {len(view.rerun) - LISTED:,} more" if len(view.rerun) > LISTED else ""
        parts.append(
            f'<p class="rerun">{Mark.rerun.symbol} Failed in an earlier attempt, then '
            f"succeeded when rerun: {_e(names)}{more}</p>"
        )
    return "".join(parts)


def _grid(view: RunView) -> str:
    """The step instances x attempts grid: an empty table and its lines as JSON (drawn by the
    page's script, grouped by container as the timelines are)."""
    numbers = [a["attempt"] for a in view.attempts]
    handled = handled_paths(view.structure)
    parents = {path: step.get("parent") for path, step in view.steps.items()}
    rows = [row_of(node, [], view.marks) for node in view.latest]
    lines = lines_of(rows, parents, "i")
    index = {line.id: number for number, line in enumerate(lines)}
    t0 = view.run.get("started") or 0.0
    data = []
    for line, is_open in zip(lines, default_open(lines), strict=True):
        item: list[Any] = [
            line.id[2:],
            index.get(line.parent or "", -1),
            line.depth,
            line.label,
            int(is_open),
            int(line.problem),
        ]
        if line.row is None:
            data.append([*item, "iteration", "", "", "", [], "", ""])
            continue
        key = (line.row.key.path, line.row.key.sequence)
        node = view.history[key][max(view.history[key])]
        cells, failed = [], False
        for number in numbers:
            row = view.history[key].get(number)
            cells.append(0 if row is None else _cell(view, row, mark_of(row, handled, failed), t0))
            failed = failed or (row is not None and row["status"] in ("failure", "interrupted"))
        mark = view.marks[key]
        trace = (node.get("traceback") or node.get("error") or "") if mark.is_problem else ""
        data.append(
            [
                *item,
                "container" if line.row.container else "step",
                f"{key[0]}/{key[1]}",
                node["status"],
                mark.value,
                cells,
                first_line(node.get("error")),
                trace,
            ]
        )
    head = "".join(f'<th class="att">attempt {n}</th>' for n in numbers)
    return (
        f'<table class="grid" data-t0="{t0:.4f}"><thead><tr><th>step instance</th>{head}'
        f"<th>error (latest)</th></tr></thead><tbody></tbody></table>"
        f'<script type="application/json" class="lines">{script_json(data)}</script>'
    )


def _cell(view: RunView, row: Mapping[str, Any], mark: Mark, t0: float) -> list[Any]:
    """One grid cell: [mark, start, seconds, tries, details] (start from the run's start)."""
    tries = view.tries.get((row["attempt"], row["path"], row["sequence"]), [])
    started, ended = row.get("started"), row.get("ended")
    notes = []
    for t in tries if len(tries) > 1 else ():  # one try: its times are the cell's own
        took = seconds_text(t.end - t.start) if t.end and t.start else "?"
        error = f": {first_line(t.error, 120)}" if t.error else ""
        notes.append(f"try {t.retry + 1}: {clock_text(t.start)}, {took}, {t.status}{error}")
    if row.get("marked_by"):
        reason = f": {row['reason']}" if row.get("reason") else ""
        notes.append(f"{row['status']}, marked by {row['marked_by']}{reason}")
    where = ":".join(str(v) for v in (row.get("host"), row.get("pid")) if v)
    if where:
        notes.append(f"on {where}")
    return [
        mark.value,
        round(started - t0, 4) if started and not row.get("replayed") else None,
        round(ended - started, 4) if started and ended and not row.get("replayed") else None,
        len(tries),
        "\n".join(notes),
    ]


def _legend() -> str:
    items = [f'<span class="chip m-{m.value}">{m.symbol} {_e(m.label)}</span>' for m in BY_WEIGHT]
    items.append('<span class="chip retry-chip">failed try (retried)</span>')
    items.append('<span class="chip">\u25c6 skipped / done earlier (timeline)</span>')
    items.append(f'<span class="chip" style="background:{NOT_REACHED}">not reached</span>')
    return f'<p class="legend">{"".join(items)}</p>'


def _page(view: RunView, sections: list[str], graph: str) -> str:
    run = view.run
    colors = "".join(f".m-{m.value}{{background:{c};fill:{c}}}" for m, c in MARK_COLORS.items())
    data = {
        "run_id": run["run_id"],
        "flow": run["flow_name"],
        "result": result_text(run.get("result")),
        "attempts": [a["attempt"] for a in view.attempts],
        "marks": {mark.value: [mark.symbol, mark.label] for mark in Mark},
        "statuses": [status.value for status in StepStatus],
    }
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>sequent run {_e(run['run_id'])}</title>"
        f"<style>{CSS}{colors}</style></head><body>"
        f'<script type="application/json" id="run-data">{script_json(data)}</script>'
        f"{_header(view)}"
        '<nav class="tools"><input id="filter" type="search" placeholder="filter: a name, or a '
        'status (failure, unhandled, handled, interrupted, skipped, recovered, marked, ...)">'
        ' <span id="filter-count"></span></nav>'
        f"{_legend()}"
        f"<h2>Timeline</h2>{''.join(sections) or '<p>No attempt recorded.</p>'}"
        f"<h2>Graph</h2>{graph}"
        f'<h2>Step instances by attempt</h2><div class="scroll gridbox">{_grid(view)}</div>'
        f"<script>{SCRIPT}</script></body></html>\n"
    )
