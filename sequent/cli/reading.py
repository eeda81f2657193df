"""``sequent runs``, ``show`` and ``report``: past runs read from a store, without the flow code.

Every text that comes from the store (names, errors, reasons) is printed escaped.
"""

from __future__ import annotations

import json
from typing import Any

import click

from ..store.reading import NOT_STARTED
from ..terminal import safe, safe_line
from .common import (
    check_output,
    flow_option,
    locate,
    reading,
    result_word,
    store_option,
    table,
    the_run,
    usage,
    when,
    writing,
)


@click.command()
@click.argument("flow_file", metavar="[FILE]", required=False)
@store_option
@flow_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def runs(flow_file: str | None, store: str | None, flow_name: str | None, as_json: bool) -> None:
    """List the runs in a store, newest first, with their state.

    FILE, a flow file, reads the store that flow records into and lists that flow's runs.
    """
    from ..monitor import run_state

    path, file_flow = locate(store, flow_file)
    flow_name = flow_name or file_flow
    with reading(path) as opened, usage():
        found = opened.runs(flow_name)
        for run in found:
            run.setdefault("state", run_state(opened, run["run_id"]))
            run["attempt_results"] = [
                _attempt_word(attempt) for attempt in opened.attempts(run["run_id"])
            ]
    if as_json:
        click.echo(json.dumps(found, indent=2, default=str))
        return
    if not found:
        which = f" of flow {flow_name!r}" if flow_name else ""
        click.echo(safe(f"no runs{which} in {path}"))
        return
    table(
        ["run id", "flow", "state", "attempts", "started", "ended", "executor"],
        [
            [
                run["run_id"],
                run["flow_name"],
                run["state"],
                _attempts_text(run["attempt_results"]),
                when(run.get("started")),
                when(run.get("ended")),
                run.get("executor") or "",
            ]
            for run in found
        ],
    )


def _attempt_word(attempt: dict[str, Any]) -> str:
    if attempt.get("mode") == "mark":
        return "mark"
    return result_word(attempt.get("result")) if attempt.get("ended") else "unfinished"


def _attempts_text(results: list[str], shown: int = 4) -> str:
    """``2 (failure, success)``: how many attempts, and how each ended (the latest few)."""
    tail = results[-shown:]
    more = "..., " if len(results) > shown else ""
    return f"{len(results)} ({more}{', '.join(tail)})"


def _with_unstarted(
    marked: list[tuple[dict[str, Any], Any]], everything: list[dict[str, Any]]
) -> list[tuple[dict[str, Any], Any]]:
    """``marked`` (row, mark) in the order of ``everything``, which adds the instances not
    started yet (their mark None)."""
    found = {(pair[0]["path"], pair[0]["sequence"]): pair for pair in marked}
    return [found.get((row["path"], row["sequence"]), (row, None)) for row in everything]


def _status_text(node: dict[str, Any], mark: Any) -> str:
    from ..report.marks import Mark, describe

    if mark is None:
        return f"\u2026 {NOT_STARTED} (waiting)"
    text = describe(mark, node)
    if node.get("replayed") and node["status"] != "success" and mark is not Mark.marked:
        text += " (kept: --only left it out)"
    return text


@click.command()
@click.argument("reference", metavar="RUN")
@store_option
@flow_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def show(reference: str, store: str | None, flow_name: str | None, as_json: bool) -> None:
    """Show each step instance of RUN (an id, a prefix, latest): status, times, errors."""
    from ..monitor import run_state
    from ..report.marks import marked_nodes

    path, file_flow = locate(store)
    with reading(path) as opened, usage():
        run_id = the_run(opened, reference, flow_name or file_flow)
        run_row = opened.run(run_id)
        attempts = opened.attempts(run_id)
        marked = _with_unstarted(
            marked_nodes(opened, run_id), opened.nodes(run_id, unrecorded=True)
        )
        state = run_state(opened, run_id)
        workers = opened.workers(run_id) if hasattr(opened, "workers") else {}
    for node, _ in marked:
        node["worker"] = workers.get((node["attempt"], node["path"], node["sequence"]))
    if as_json:
        nodes = [{**node, "mark": mark.value if mark else NOT_STARTED} for node, mark in marked]
        body = {"run": run_row, "state": state, "attempts": attempts, "nodes": nodes}
        click.echo(json.dumps(body, indent=2, default=str))
        return
    click.echo(
        safe_line(
            f"Run {run_row['run_id']} of flow {run_row['flow_name']!r}: {state}, "
            f"{len(attempts)} attempt(s), started {when(run_row.get('started'))}"
        )
    )
    for attempt in attempts:
        logs = f", logs in {attempt['logdir']}" if attempt.get("logdir") else ""
        click.echo(
            safe_line(
                f"  attempt {attempt['attempt']} ({attempt['mode']}): "
                f"{_attempt_word(attempt)}, {when(attempt.get('started'))} to "
                f"{when(attempt.get('ended'))}{logs}"
            )
        )
    rows = []
    for node, mark in marked:
        error = (node.get("error") or "").strip().splitlines()
        duration = node.get("duration")
        rows.append(
            [
                f"{node['path']}/{node['sequence']}",
                _status_text(node, mark),
                "" if node["attempt"] is None else str(node["attempt"]),
                when(node.get("started")),
                when(node.get("ended")),
                f"{duration:.3f}" if duration is not None else "",
                str(node.get("retry") or 0),
                error[-1][:120] if error else "",
            ]
            + ([node.get("worker") or ""] if workers else [])
        )
    headers = ["node", "status", "attempt", "started", "ended", "seconds", "retries", "error"]
    table(headers + (["worker"] if workers else []), rows)


@click.command()
@click.argument("reference", metavar="RUN")
@store_option
@flow_option
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="The HTML file to write (default: report-RUN_ID.html).",
)
def report(reference: str, store: str | None, flow_name: str | None, output: str | None) -> None:
    """Write an HTML report of RUN (an id, a prefix, latest): timeline, graph, steps."""
    from ..report import write_report

    if output:
        check_output(output)
    path, _ = locate(store)
    with reading(path) as opened, usage():
        run_id = the_run(opened, reference, flow_name)
        target = output or f"report-{run_id}.html"
        with writing(target):
            written = write_report(opened, run_id, target)
    click.echo(safe(f"wrote {written}"))
