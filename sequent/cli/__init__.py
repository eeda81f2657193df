"""The ``sequent`` command: run, recover, plan and draw flows; list, show and report past runs.

Exit status: 0 success, 1 the run failed, 2 bad usage (a missing file, no flow in it, an
unknown run id, a flow that does not build), with the reason on standard error.

Flows are loaded from ``FILE[:OBJECT]`` (see ``loader.load_flow``): the file runs as the main
module, as ``python FILE`` would run it, except that ``Sequent.run`` is intercepted while it
loads, so a script that builds a flow and runs it at module level is loaded, not run.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from .errors import FlowFileError, SequentError
from .flow import Sequent
from .status import RunMode
from .text import clock_text, result_text
from .version import __version__


class UsageProblem(click.ClickException):
    """Bad usage: the message goes to standard error and the command exits with status 2."""

    exit_code = 2


@contextlib.contextmanager
def load_flow(target: str) -> Iterator[Sequent]:
    """``loader.load_flow``, its ``FlowFileError`` turned into bad usage (exit status 2)."""
    from . import loader

    try:
        with loader.load_flow(target) as flow:
            yield flow
    except FlowFileError as exc:
        raise UsageProblem(str(exc)) from exc


# -- shared options --------------------------------------------------------------------------


def _flow_overrides(
    flow: Sequent, store: str | None, executor: str | None, logdir: str | None
) -> None:
    if store:
        flow.store_path = store
    if executor:
        from .executors import backend_name

        try:
            backend_name(executor)
        except SequentError as exc:
            raise UsageProblem(str(exc)) from exc
        flow.executor = executor
    if logdir:
        flow.config["logdir"] = logdir


def _dask_cluster(
    flow: Sequent, executor: str | None, address: str | None, scheduler_file: str | None
) -> None:
    """``--address``/``--scheduler-file``: the flow runs on that Dask cluster."""
    if not (address or scheduler_file):
        return
    if address and scheduler_file:
        raise UsageProblem("give --address or --scheduler-file, not both")
    from .executors import backend_name

    if executor and backend_name(executor) != "dask":
        raise UsageProblem(
            f"--address/--scheduler-file reach a Dask cluster; drop --executor {executor} "
            f"or use --executor dask"
        )
    from .executors.dask import DaskExecutor

    flow.executor = DaskExecutor(address=address, scheduler_file=scheduler_file)


def _store_option(required: bool = True) -> Callable[[Any], Any]:
    return click.option(
        "--store",
        "store",
        envvar="SEQUENT_STORE",
        required=required,
        type=click.Path(dir_okay=False),
        help="The store file (a .run.db); default: $SEQUENT_STORE.",
    )


_run_options = [
    click.option("--store", type=click.Path(dir_okay=False), help="Use this store file."),
    click.option("--executor", help="serial, thread, process, loky or dask."),
    click.option(
        "--address",
        help="Run on the Dask cluster whose scheduler is here (tcp://HOST:PORT); implies dask.",
    ),
    click.option(
        "--scheduler-file",
        type=click.Path(dir_okay=False),
        help="Run on the Dask cluster this scheduler file names; implies --executor dask.",
    ),
    click.option("--logdir", type=click.Path(file_okay=False), help="Write logs under here."),
    click.option(
        "--max-loops",
        type=int,
        default=-1,
        show_default=True,
        help="Stop launching after N scheduling rounds (the run stays recoverable).",
    ),
    click.option(
        "--progress/--no-progress",
        default=None,
        help="Live progress display (default: when standard error is a terminal).",
    ),
]


def _with_run_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_run_options):
        fn = option(fn)
    return fn


# -- commands --------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sequent")
def cli() -> None:
    """Run program flows, review them before they run, and look at past runs."""


def _run(
    target: str,
    mode: RunMode,
    run_id: str | None,
    store: str | None,
    executor: str | None,
    logdir: str | None,
    max_loops: int,
    progress: bool | None,
    address: str | None = None,
    scheduler_file: str | None = None,
) -> None:
    with load_flow(target) as flow:
        _flow_overrides(flow, store, executor, logdir)
        _dask_cluster(flow, executor, address, scheduler_file)
        flow.run_mode = mode
        flow.recovery_run = run_id
        show = sys.stderr.isatty() if progress is None else progress
        try:
            try:
                ok = flow.run(max_loops=max_loops, progress=show)
            except SequentError as exc:
                raise UsageProblem(str(exc)) from exc
            finally:
                flow.close()
        except KeyboardInterrupt:
            ok = False
        verb = "recovered" if mode is RunMode.recover else "ran"
        click.echo(
            f"{verb} run {flow.run_id} of flow {flow.name!r}: {'success' if ok else 'failure'}"
        )
    sys.exit(0 if ok else 1)


@cli.command()
@click.argument("target", metavar="FILE[:OBJECT]")
@_with_run_options
def run(target: str, **options: Any) -> None:
    """Run the flow in FILE afresh (a restart); exit 1 when it fails."""
    _run(target, RunMode.restart, None, **options)


@cli.command()
@click.argument("target", metavar="FILE[:OBJECT]")
@click.option("--run-id", help="The run to continue; default: the flow's latest run.")
@_with_run_options
def recover(target: str, run_id: str | None, **options: Any) -> None:
    """Continue a run of the flow in FILE: rerun what did not succeed."""
    _run(target, RunMode.recover, run_id, **options)


@cli.command()
@click.argument("target", metavar="FILE[:OBJECT]")
@click.option("--recover", "recovering", is_flag=True, help="Plan a recover, not a restart.")
@click.option("--run-id", help="The run a recover would continue (implies --recover).")
@click.option("--store", type=click.Path(dir_okay=False), help="Read this store file.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plan(
    target: str, recovering: bool, run_id: str | None, store: str | None, as_json: bool
) -> None:
    """Show what a run would do, in order; runs and writes nothing."""
    with load_flow(target) as flow:
        _flow_overrides(flow, store, None, None)
        mode = RunMode.recover if recovering or run_id else RunMode.restart
        try:
            result = flow.plan(run_mode=mode, recovery_run=run_id)
        except SequentError as exc:
            raise UsageProblem(str(exc)) from exc
    if as_json:
        click.echo(
            json.dumps(
                {
                    "flow": result.flow_name,
                    "mode": result.mode.value,
                    "run_id": result.run_id,
                    "attempt": result.attempt,
                    "nodes": [
                        {
                            "path": node.path,
                            "sequence": node.sequence,
                            "action": node.action,
                            "container": node.container,
                            "previous": node.previous.value if node.previous else None,
                            "reason": node.reason,
                        }
                        for node in result
                    ],
                },
                indent=2,
            )
        )
    else:
        click.echo(result.text())


@cli.command()
@click.argument("target", metavar="FILE[:OBJECT]")
@click.option("--expanded", is_flag=True, help="One node per step instance (path, sequence).")
@click.option("--run-id", help="Colour nodes by this run's statuses (read from the store).")
@click.option("--store", type=click.Path(dir_okay=False), help="Read this store file.")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["dot", "svg", "png"]),
    default="dot",
    show_default=True,
    help="svg and png need Graphviz's dot program.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
def graph(
    target: str,
    expanded: bool,
    run_id: str | None,
    store: str | None,
    fmt: str,
    output: str | None,
) -> None:
    """Draw the flow in FILE: DOT text, or SVG/PNG through Graphviz."""
    with load_flow(target) as flow:
        _flow_overrides(flow, store, None, None)
        try:
            text = flow.to_dot(expanded=expanded, run_id=run_id)
        except SequentError as exc:
            raise UsageProblem(str(exc)) from exc
    if fmt == "dot":
        data = text.encode("utf-8")
    else:
        data = render_dot(text, fmt)
    if output:
        Path(output).write_bytes(data)
    else:
        stream = click.get_binary_stream("stdout")
        stream.write(data)
        stream.flush()


def render_dot(text: str, fmt: str, timeout: float = 120) -> bytes:
    """Lay out DOT ``text`` with Graphviz's ``dot`` into ``fmt`` bytes.

    Raises ``UsageProblem`` when Graphviz is not installed or cannot lay the graph out.
    """
    from .graphviz import INSTALL_HINT, GraphvizError, render

    try:
        return render([text], fmt, timeout)
    except GraphvizError as exc:
        if exc.missing:
            raise UsageProblem(
                f"-f {fmt} needs Graphviz's 'dot' program, which is not installed (or not on "
                f"PATH); {INSTALL_HINT}, or leave out -f to get DOT text"
            ) from exc
        raise UsageProblem(str(exc)) from exc


@contextlib.contextmanager
def _reading(store: str) -> Iterator[Any]:
    from .store import read_store

    try:
        with read_store(store) as opened:
            yield opened
    except SequentError as exc:
        raise UsageProblem(str(exc)) from exc


def _table(headers: list[str], rows: list[list[str]], title: str | None = None) -> None:
    """Print rows as a rich table on a terminal, as aligned plain text otherwise."""
    out = click.get_text_stream("stdout")
    if out.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*headers, title=title, header_style="bold")
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    if title:
        click.echo(title)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)).rstrip()
        )


@cli.command()
@_store_option()
@click.option("--flow", "flow_name", help="Only the runs of this flow.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def runs(store: str, flow_name: str | None, as_json: bool) -> None:
    """List the runs recorded in a store, newest first."""
    with _reading(store) as opened:
        found = opened.runs(flow_name)
    if as_json:
        click.echo(json.dumps(found, indent=2, default=str))
        return
    if not found:
        which = f" of flow {flow_name!r}" if flow_name else ""
        click.echo(f"no runs{which} in {store}")
        return
    _table(
        ["run id", "flow", "attempts", "started", "ended", "result", "executor"],
        [
            [
                run["run_id"],
                run["flow_name"],
                str(run.get("attempts", "")),
                clock_text(run.get("started")),
                clock_text(run.get("ended")),
                result_text(run.get("result")),
                run.get("executor") or "",
            ]
            for run in found
        ],
    )


@cli.command()
@click.argument("run_id")
@_store_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def show(run_id: str, store: str, as_json: bool) -> None:
    """Show each step instance of run RUN_ID: status, times, errors."""
    from .report.marks import describe, marked_nodes

    with _reading(store) as opened:
        try:
            run_row = opened.run(run_id)
            attempts = opened.attempts(run_id)
            marked = marked_nodes(opened, run_id)
            workers = opened.workers(run_id) if hasattr(opened, "workers") else {}
        except SequentError as exc:
            raise UsageProblem(str(exc)) from exc
    for node, _ in marked:
        node["worker"] = workers.get((node["attempt"], node["path"], node["sequence"]))
    nodes = [{**node, "mark": mark.value} for node, mark in marked]
    if as_json:
        click.echo(
            json.dumps(
                {"run": run_row, "attempts": attempts, "nodes": nodes}, indent=2, default=str
            )
        )
        return
    click.echo(
        f"Run {run_row['run_id']} of flow {run_row['flow_name']!r}: "
        f"{result_text(run_row.get('result'))}, {len(attempts)} attempt(s), started "
        f"{clock_text(run_row.get('started'))}"
    )
    for attempt in attempts:
        click.echo(
            f"  attempt {attempt['attempt']} ({attempt['mode']}): "
            f"{result_text(attempt.get('result'))}, {clock_text(attempt.get('started'))} to "
            f"{clock_text(attempt.get('ended'))}"
        )
    rows = []
    for node, mark in marked:
        error = (node.get("error") or "").strip().splitlines()
        status = describe(mark, node)
        duration = node.get("duration")
        rows.append(
            [
                f"{node['path']}/{node['sequence']}",
                status,
                str(node["attempt"]),
                clock_text(node.get("started")),
                clock_text(node.get("ended")),
                f"{duration:.3f}" if duration is not None else "",
                str(node.get("retry") or 0),
                error[-1][:120] if error else "",
            ]
            + ([node.get("worker") or ""] if workers else [])
        )
    headers = ["node", "status", "attempt", "started", "ended", "seconds", "retries", "error"]
    _table(headers + (["worker"] if workers else []), rows)


@cli.command()
@click.argument("run_id")
@_store_option()
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="The HTML file to write (default: report-RUN_ID.html).",
)
def report(run_id: str, store: str, output: str | None) -> None:
    """Write an HTML report of run RUN_ID: timeline, graph, steps."""
    from .report import write_report

    target = output or f"report-{run_id}.html"
    with _reading(store) as opened:
        try:
            written = write_report(opened, run_id, target)
        except SequentError as exc:
            raise UsageProblem(str(exc)) from exc
    click.echo(f"wrote {written}")


def main(argv: list[str] | None = None) -> None:
    """The ``sequent`` console script."""
    cli.main(args=argv, prog_name="sequent")


if __name__ == "__main__":  # pragma: no cover
    main()
