"""One self-contained HTML page about a recorded run: its timeline, its graph, its nodes.

Built from the store alone (no flow code needed): the run's attempts, each node's rows and
status changes, and the flow's recorded structure. Everything is inline (CSS, SVG, a little
JavaScript for filtering): the page opens from a file with no network.

Timeline: one section per attempt, one row per step instance that attempt reached, ordered
by start time. A step that ran is a ``rect.bar`` from its start to its end, coloured by its
status; failed tries before a retry are ``rect.retry`` segments in front of it; a container
is a thin ``rect.span``; an instance skipped as recovered, or skipped because its requirement
could not hold, is a small ``.mark`` at the moment it was decided.

Graph: the recorded structure compiled again (placeholders stand in for the functions) and
drawn by Graphviz as inline SVG when the ``dot`` program is installed, coloured by each
node's latest status (one node per instance up to ``EXPANDED_LIMIT`` instances, one per step
beyond); without Graphviz, an indented list of the steps with their status counts.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .compiler import NodeKey
from .compiler.dot import NOT_RUN_COLOR, STATUS_COLORS, to_dot
from .compiler.structure import plan_from_structure
from .executors.core import RETRY_DELAY_CAP
from .status import StepStatus

#: Up to this many step instances, the graph has one node per instance; beyond, one per step.
EXPANDED_LIMIT = 500
#: Seconds Graphviz may take to lay the graph out before the page falls back to the list.
GRAPHVIZ_TIMEOUT = 60.0

_COLORS = {status.value: color for status, color in STATUS_COLORS.items()}


@attrs.frozen
class Row:
    """One timeline row: a step instance in one attempt, and what the page draws for it."""

    key: NodeKey
    container: bool
    status: str
    start: float | None
    end: float | None
    replayed: bool
    retries: tuple[tuple[float, float, str], ...]  # (start, end, error) of failed tries
    error: str | None
    rank: tuple[Any, ...]

    @property
    def executed(self) -> bool:
        """True when the step's code ran in this attempt (it gets a ``rect.bar``)."""
        return (
            not self.container
            and not self.replayed
            and self.start is not None
            and self.status not in ("skipped", "ready")
        )


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
    run = store.run(run_id)
    attempts = store.attempts(run_id)
    latest = store.nodes(run_id)
    events = store.events(run_id)
    structure = store.structure(run_id)
    sections = []
    for attempt in attempts:
        number = attempt["attempt"]
        steps = store.structure(run_id, attempt=number).get("steps", ())
        rows = timeline_rows(
            store.nodes(run_id, attempt=number),
            [event for event in events if event["attempt"] == number],
            {step["path"]: step.get("retry_delay", 0.0) for step in steps},
        )
        sections.append(_attempt_section(attempt, rows))
    statuses = {NodeKey(r["path"], r["sequence"]): StepStatus(r["status"]) for r in latest}
    graph = graph_section(structure, statuses)
    return _page(run, attempts, latest, sections, graph)


# -- timeline ----------------------------------------------------------------------------------


def timeline_rows(
    nodes: Iterable[Mapping[str, Any]],
    events: Iterable[Mapping[str, Any]],
    retry_delays: Mapping[str, float] | None = None,
) -> list[Row]:
    """The rows of one attempt's timeline, in the order they started (then definition order).

    A retried try starts after the back-off the scheduler waits (``retry_delays[path]``,
    doubled per try), counted from the previous try's recorded failure.
    """
    retry_delays = retry_delays or {}
    by_node: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for event in events:
        by_node.setdefault((event["path"], event["sequence"]), []).append(event)
    rows = []
    for node in nodes:
        key = NodeKey(node["path"], node["sequence"])
        history = by_node.get((key.path, key.sequence), [])
        started = [e["time"] for e in history if e["status"] == "active"]
        failures = [e for e in history if e["status"] == "failure"]
        final_failed = node["status"] == "failure"
        tries = failures[:-1] if final_failed else failures
        retries = []
        previous = started[0] if started else None
        delay = float(retry_delays.get(key.path) or 0.0)
        for number, failure in enumerate(tries):
            begin = previous if previous is not None else failure["time"]
            retries.append((begin, failure["time"], failure.get("error") or "failed"))
            previous = failure["time"] + min(RETRY_DELAY_CAP, delay * 2**number)
        start = node.get("started")
        if retries:
            start = start if start is not None else retries[-1][1]
        rows.append(
            Row(
                key=key,
                container=node.get("kind") == "container",
                status=node["status"],
                start=start,
                end=node.get("ended"),
                replayed=bool(node.get("replayed")),
                retries=tuple(retries),
                error=node.get("error"),
                rank=(
                    node.get("step_order") if node.get("step_order") is not None else 1 << 30,
                    tuple(int(p) for p in key.sequence.split(".") if p.isdigit()),
                ),
            )
        )

    def first(row: Row) -> float:
        times = [t for t in (row.retries[0][0] if row.retries else None, row.start, row.end) if t]
        return min(times) if times else float("inf")

    rows.sort(key=lambda row: (first(row), row.rank))
    return rows


def _seconds(value: float) -> str:
    if value >= 3600:
        return f"{value / 3600:.1f} h"
    if value >= 60:
        return f"{value / 60:.1f} min"
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 0.01:
        return f"{value * 1000:.0f} ms"
    return f"{value * 1000:.1f} ms"


def _clock(value: float | None) -> str:
    if not value:
        return "-"
    return (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value)) + f".{int(value % 1 * 1000):03d}"
    )


def timeline_svg(rows: list[Row], begin: float | None = None, end: float | None = None) -> str:
    """The SVG of one attempt's timeline (rows from ``timeline_rows``)."""
    label_width, plot_width, right = 300, 860, 70
    row_height = 16 if len(rows) <= 300 else 13
    top = 30
    times = [t for row in rows for t in (row.start, row.end) if t]
    times += [t for row in rows for r in row.retries for t in r[:2]]
    t0 = min(times + ([begin] if begin else [])) if times or begin else 0.0
    t1 = max(times + ([end] if end else [])) if times or end else t0
    span = max(t1 - t0, 1e-3)

    def x(moment: float | None) -> float:
        if moment is None:
            return label_width
        return label_width + (moment - t0) / span * plot_width

    width = label_width + plot_width + right
    height = top + row_height * len(rows) + 10
    parts = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" data-row-height="{row_height}" '
        f'data-top="{top}">'
    ]
    for i in range(6):
        tick = label_width + plot_width * i / 5
        parts.append(
            f'<line class="tick" x1="{tick:.1f}" y1="{top - 6}" x2="{tick:.1f}" '
            f'y2="{height}"/><text class="axis" x="{tick:.1f}" y="{top - 10}" '
            f'text-anchor="middle">+{_seconds(span * i / 5)}</text>'
        )
    for index, row in enumerate(rows):
        y = top + index * row_height
        name = f"{row.key.path}/{row.key.sequence}"
        shown = name if len(name) <= 44 else "\u2026" + name[-43:]
        title = _row_title(row)
        parts.append(
            f'<g class="row" data-node="{_e(name)}" data-status="{_e(row.status)}" '
            f'transform="translate(0,{y})">'
            f'<text class="label{" container" if row.container else ""}" x="{label_width - 6}" '
            f'y="{row_height - 4}" text-anchor="end">{_e(shown)}</text>'
        )
        middle = row_height / 2
        if row.container:
            x0, x1 = x(row.start), x(row.end or t1)
            parts.append(
                f'<rect class="span s-{_e(row.status)}" x="{x0:.1f}" y="{middle - 2:.1f}" '
                f'width="{max(x1 - x0, 2):.1f}" height="4"><title>{title}</title></rect>'
            )
        elif row.executed:
            for begin_try, end_try, error in row.retries:
                a, b = x(begin_try), x(end_try)
                parts.append(
                    f'<rect class="retry" x="{a:.1f}" y="3" width="{max(b - a, 2):.1f}" '
                    f'height="{row_height - 6}"><title>{_e(name)}: failed try, retried: '
                    f"{_e(error)}</title></rect>"
                )
            a, b = x(row.start), x(row.end or t1)
            parts.append(
                f'<rect class="bar s-{_e(row.status)}" data-node="{_e(name)}" x="{a:.1f}" y="2" '
                f'width="{max(b - a, 2):.1f}" height="{row_height - 4}" rx="2">'
                f"<title>{title}</title></rect>"
            )
            if row.retries:
                parts.append(
                    f'<text class="retries" x="{b + 4:.1f}" y="{row_height - 4}">'
                    f"\u00d7{len(row.retries) + 1} tries</text>"
                )
        else:
            at = x(row.end or row.start)
            kind = "replayed" if row.replayed else _e(row.status)
            parts.append(
                f'<path class="mark {kind}" d="M{at:.1f} {middle - 4:.1f} l4 4 l-4 4 l-4 -4 z">'
                f"<title>{title}</title></path>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _row_title(row: Row) -> str:
    name = f"{row.key.path}/{row.key.sequence}"
    if row.replayed:
        what = "skipped: it succeeded in an earlier attempt"
    elif row.status == "skipped":
        what = "skipped: its requirement could not hold"
    else:
        what = row.status
    lines = [f"{name}: {what}"]
    if row.start and not row.replayed:
        duration = (row.end - row.start) if row.end else None
        lines.append(
            f"started {_clock(row.start)}"
            + (f", took {_seconds(duration)}" if duration is not None else ", did not end")
        )
    if row.retries:
        lines.append(f"{len(row.retries)} failed tries before the last")
    if row.error:
        lines.append(row.error)
    return _e("\n".join(lines))


def _attempt_section(attempt: Mapping[str, Any], rows: list[Row]) -> str:
    result = _result_text(attempt.get("result"))
    executed = sum(1 for row in rows if row.executed)
    replayed = sum(1 for row in rows if row.replayed)
    took = (
        _seconds(attempt["ended"] - attempt["started"])
        if attempt.get("ended") and attempt.get("started")
        else "did not end"
    )
    facts = [
        f"{attempt.get('mode', '')}",
        f"started {_clock(attempt.get('started'))}",
        took,
        f"{executed} steps ran",
    ]
    if replayed:
        facts.append(f"{replayed} skipped as already successful")
    if attempt.get("executor"):
        facts.append(f"{attempt['executor']} executor")
    body = timeline_svg(rows, attempt.get("started"), attempt.get("ended"))
    return (
        f'<section class="attempt" data-attempt="{attempt["attempt"]}">'
        f'<h2>Attempt {attempt["attempt"]} <span class="badge {result}">{result}</span></h2>'
        f'<p class="facts">{_e(" · ".join(facts))}</p>'
        f'<div class="scroll">{body}</div></section>'
    )


# -- graph -------------------------------------------------------------------------------------


def graph_section(structure: Mapping[str, Any], statuses: Mapping[NodeKey, StepStatus]) -> str:
    """The graph of the run: Graphviz SVG when possible, else a list of steps."""
    note = ""
    try:
        plan = plan_from_structure(structure)
    except Exception as exc:  # an old or odd structure: the list still shows the statuses
        return _graph_list(structure, statuses, f"the recorded structure cannot be drawn ({exc})")
    expanded = len(plan.nodes) + len(set(statuses) - set(plan.nodes)) <= EXPANDED_LIMIT
    if not expanded:
        note = (
            f"One node per step (the run has more than {EXPANDED_LIMIT} step instances); "
            f"each step shows its instances' status counts."
        )
    svg, why = graphviz_svg(to_dot(plan, expanded=expanded, statuses=statuses))
    if svg is None:
        return _graph_list(structure, statuses, why)
    return f'<p class="note">{_e(note)}</p><div class="graph scroll">{svg}</div>'


def graphviz_svg(dot_text: str) -> tuple[str | None, str]:
    """Lay ``dot_text`` out as SVG with Graphviz; (None, why) when that cannot be done."""
    program = shutil.which("dot")
    if program is None:
        return None, "Graphviz's dot program is not installed; the steps are listed instead"
    try:
        done = subprocess.run(
            [program, "-Tsvg"],
            input=dot_text.encode("utf-8"),
            capture_output=True,
            timeout=GRAPHVIZ_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"Graphviz could not lay the graph out ({exc}); the steps are listed instead"
    if done.returncode != 0:
        return None, f"Graphviz failed: {done.stderr.decode(errors='replace')[:300]}"
    svg = done.stdout.decode("utf-8", errors="replace")
    start = svg.find("<svg")
    return (svg[start:] if start >= 0 else svg), ""


def _graph_list(
    structure: Mapping[str, Any], statuses: Mapping[NodeKey, StepStatus], why: str
) -> str:
    counts: dict[str, Counter[str]] = {}
    for key, status in statuses.items():
        counts.setdefault(key.path, Counter())[status.value] += 1
    steps = list(structure.get("steps", ()))
    children: dict[str | None, list[Mapping[str, Any]]] = {}
    for step in steps:
        children.setdefault(step.get("parent"), []).append(step)

    def render(parent: str | None) -> str:
        items = []
        for step in sorted(children.get(parent, []), key=lambda step: int(step["order"])):
            chips = "".join(
                f'<span class="chip s-{_e(status)}">{n} {_e(status)}</span>'
                for status, n in sorted(counts.get(step["path"], Counter()).items())
            )
            requires = step.get("requires")
            needs = (
                f' <span class="needs">requires {_e(_requires_text(requires))}</span>'
                if requires
                else ""
            )
            inner = render(step["path"])
            items.append(f"<li><b>{_e(step['name'])}</b> {chips}{needs}{inner}</li>")
        return f"<ul>{''.join(items)}</ul>" if items else ""

    return f'<p class="note">{_e(why)}</p><div class="graph-list">{render(None)}</div>'


def _requires_text(data: Any, top: bool = True) -> str:
    if "step" in data:
        return f"{data['step']}:{data['status']}"
    word, items = (" and ", data["all"]) if "all" in data else (" or ", data["any"])
    text = word.join(_requires_text(item, False) for item in items)
    return text if top or len(items) == 1 else f"({text})"


# -- the page ----------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _result_text(result: Any) -> str:
    if result is True or result == 1:
        return "success"
    if result is False or result == 0:
        return "failure"
    return "unfinished"


def _node_table(latest: list[Mapping[str, Any]]) -> str:
    rows = []
    for node in latest:
        name = f"{node['path']}/{node['sequence']}"
        took = f"{node['duration']:.3f}" if node.get("duration") is not None else ""
        error = node.get("error") or ""
        trace = node.get("traceback") or ""
        detail = (
            f"<details><summary>{_e(error.splitlines()[0] if error else 'traceback')}</summary>"
            f"<pre>{_e(trace or error)}</pre></details>"
            if error or trace
            else ""
        )
        replayed = " (recovered)" if node.get("replayed") else ""
        rows.append(
            f'<tr data-node="{_e(name)}" data-status="{_e(node["status"])}">'
            f"<td>{_e(name)}</td><td>{_e(node.get('kind') or '')}</td>"
            f'<td><span class="chip s-{_e(node["status"])}">{_e(node["status"])}</span>'
            f"{replayed}</td><td>{node['attempt']}</td><td>{_clock(node.get('started'))}</td>"
            f"<td>{took}</td><td>{node.get('retry') or 0}</td>"
            f"<td>{_e(node.get('host') or '')}{':' if node.get('pid') else ''}"
            f"{node.get('pid') or ''}</td><td>{detail}</td></tr>"
        )
    return (
        '<table class="nodes"><thead><tr><th>node</th><th>kind</th><th>status</th>'
        "<th>attempt</th><th>started</th><th>seconds</th><th>retries</th><th>host:pid</th>"
        f"<th>error</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _legend() -> str:
    items = [
        f'<span class="chip s-{status}">{status}</span>'
        for status in ("success", "failure", "active", "interrupted", "skipped", "ready")
    ]
    items.append('<span class="chip retry-chip">failed try (retried)</span>')
    items.append('<span class="chip mark-chip">\u25c6 skipped / recovered</span>')
    items.append(f'<span class="chip" style="background:{NOT_RUN_COLOR}">not reached</span>')
    return f'<p class="legend">{"".join(items)}</p>'


_CSS = """
body{font:13px/1.4 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:20px;color:#222}
h1{font-size:20px;margin:0 0 6px}h2{font-size:16px;margin:22px 0 4px}
.facts,.note{color:#555;margin:2px 0 8px}
.badge{font-size:12px;padding:2px 8px;border-radius:10px;vertical-align:middle}
.badge.success{background:%(success)s}.badge.failure{background:%(failure)s}
.badge.unfinished{background:%(active)s}
.chip{display:inline-block;padding:0 6px;margin:0 4px 2px 0;border-radius:8px;
border:1px solid #bbb;font-size:11px}
.retry-chip{background:repeating-linear-gradient(45deg,#f4a3a3,#f4a3a3 3px,#fff 3px,#fff 6px)}
.scroll{overflow:auto;border:1px solid #ddd;max-height:80vh}
svg.timeline text{font:11px Menlo,Consolas,monospace}
svg.timeline text.axis{fill:#777;font-size:10px}
svg.timeline text.container{fill:#666;font-style:italic}
svg.timeline text.retries{fill:#b00;font-size:10px}
svg.timeline line.tick{stroke:#eee}
svg.timeline g.row:hover{background:#eef}
rect.bar{stroke:#555;stroke-width:.6}rect.span{stroke:#555;stroke-width:.8}
rect.retry{fill:#f4a3a3;opacity:.75;stroke:#b00;stroke-width:.6;stroke-dasharray:2 1}
path.mark{fill:#aaa}path.mark.replayed{fill:#7fb77e}
table.nodes{border-collapse:collapse;margin-top:8px}
table.nodes td,table.nodes th{border-bottom:1px solid #eee;padding:2px 8px;text-align:left;
vertical-align:top;font-size:12px}
table.nodes pre{white-space:pre-wrap;max-width:700px;font-size:11px}
.graph-list ul{margin:2px 0 2px 18px;padding:0}.needs{color:#777;font-size:11px}
#filter{padding:4px 8px;width:320px;margin:6px 0}
"""

_STATUS_CSS = "".join(
    f".s-{name}{{background:{color};fill:{color}}}" for name, color in _COLORS.items()
)

_SCRIPT = """
(function(){
  var box=document.getElementById('filter');
  function apply(){
    var q=box.value.trim().toLowerCase();
    document.querySelectorAll('svg.timeline').forEach(function(svg){
      var h=+svg.dataset.rowHeight, top=+svg.dataset.top, n=0;
      svg.querySelectorAll('g.row').forEach(function(g){
        var hit=!q||g.dataset.node.toLowerCase().indexOf(q)>=0||g.dataset.status===q;
        g.style.display=hit?'':'none';
        if(hit){g.setAttribute('transform','translate(0,'+(top+n*h)+')');n++;}
      });
      svg.setAttribute('height',top+n*h+10);
    });
    document.querySelectorAll('table.nodes tbody tr').forEach(function(tr){
      var hit=!q||tr.dataset.node.toLowerCase().indexOf(q)>=0||tr.dataset.status===q;
      tr.style.display=hit?'':'none';
    });
  }
  box.addEventListener('input',apply);
  var wanted=/^#filter=(.*)$/.exec(location.hash);
  if(wanted){box.value=decodeURIComponent(wanted[1]);apply();}
})();
"""


def _page(
    run: Mapping[str, Any],
    attempts: list[Mapping[str, Any]],
    latest: list[Mapping[str, Any]],
    sections: list[str],
    graph: str,
) -> str:
    result = _result_text(run.get("result"))
    counts = Counter(node["status"] for node in latest if node.get("kind") != "container")
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no steps"
    facts = [
        f"flow {run['flow_name']!r}",
        f"started {_clock(run.get('started'))}",
        f"ended {_clock(run.get('ended'))}",
        f"{len(attempts)} attempt{'s' if len(attempts) != 1 else ''}",
        f"steps: {summary}",
    ]
    for name in ("host", "user", "sequent_version"):
        if run.get(name):
            facts.append(f"{name.replace('_', ' ')} {run[name]}")
    css = _CSS % {k: _COLORS[k] for k in ("success", "failure", "active")} + _STATUS_CSS
    data = json.dumps({"run_id": run["run_id"], "flow": run["flow_name"], "result": result})
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>sequent run {_e(run['run_id'])}</title>"
        f"<style>{css}</style></head><body>"
        f'<script type="application/json" id="run-data">{_e(data)}</script>'
        f'<h1>Run {_e(run["run_id"])} <span class="badge {result}">{result}</span></h1>'
        f'<p class="facts">{_e(" · ".join(facts))}</p>'
        f"{_legend()}"
        '<input id="filter" type="search" placeholder="filter by step, sequence or status">'
        "<h2>Timeline</h2>"
        f"{''.join(sections) or '<p>No attempt recorded.</p>'}"
        f"<h2>Graph</h2>{graph}"
        f"<h2>Step instances (latest attempt of each)</h2>{_node_table(latest)}"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )


__all__ = [
    "EXPANDED_LIMIT",
    "Row",
    "build_report",
    "graph_section",
    "graphviz_svg",
    "plan_from_structure",
    "timeline_rows",
    "timeline_svg",
    "write_report",
]
