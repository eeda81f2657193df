"""``sequent run``, ``recover``, ``plan`` and ``graph``: the commands that load a flow file."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from ..flow import Sequent
from ..status import RunMode
from .common import UsageProblem, check_output, cli_words, load_flow, usage, writing

#: The executors ``--executor`` offers (the library also takes their aliases).
EXECUTORS = ("serial", "thread", "process", "loky", "dask")


def _parameters(params: Sequence[str], params_file: str | None) -> dict[str, Any]:
    from ..parameters import parse_assignments, read_params_file

    with usage():
        found = read_params_file(params_file) if params_file else {}
        found.update(parse_assignments(params, "-p"))
    return found


_param_options = [
    click.option(
        "-p",
        "--param",
        "params",
        multiple=True,
        metavar="KEY=VALUE",
        help="A keyword argument for the function that builds the flow (repeatable; JSON "
        "values where they parse, else strings).",
    ),
    click.option(
        "--params-file",
        type=click.Path(dir_okay=False),
        help="Keyword arguments from a .toml or .yaml file (-p wins over it).",
    ),
]

_run_options = [
    click.option("--store", type=click.Path(dir_okay=False), help="Record into this store file."),
    click.option(
        "--executor",
        type=click.Choice(EXECUTORS, case_sensitive=False),
        help="Where steps run (default: the flow's own, else process).",
    ),
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
        "--config",
        "config",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a flow config key, e.g. --config stop_on_exception=false (repeatable).",
    ),
    click.option(
        "-j",
        "--max-concurrent",
        type=int,
        help="At most N steps at once (<1: no limit); the same as --config max_concurrent=N.",
    ),
    click.option(
        "--only",
        multiple=True,
        metavar="STEP,...",
        help="Run just these steps (their containers as needed); the others keep their status.",
    ),
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
    click.option(
        "--force",
        is_flag=True,
        help="Take the run over from an orchestrator the store shows running it (check first "
        "that it is gone).",
    ),
    *_param_options,
]


def _with(options: list[Callable[[Any], Any]]) -> Callable[[Callable[..., Any]], Any]:
    def apply(fn: Callable[..., Any]) -> Any:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


def _overrides(
    flow: Sequent,
    store: str | None,
    executor: str | None = None,
    logdir: str | None = None,
    config: dict[str, Any] | None = None,
) -> None:
    if store:
        flow.store_path = store
    if executor:
        flow.executor = executor
    if logdir:
        flow.config["logdir"] = logdir
    flow.config.update(config or {})


def _dask_cluster(
    flow: Sequent, executor: str | None, address: str | None, scheduler_file: str | None
) -> None:
    """``--address``/``--scheduler-file``: the flow runs on that Dask cluster."""
    if not (address or scheduler_file):
        return
    if address and scheduler_file:
        raise UsageProblem("give --address or --scheduler-file, not both")
    from ..executors import backend_name

    if executor and backend_name(executor) != "dask":
        raise UsageProblem(
            f"--address/--scheduler-file reach a Dask cluster; drop --executor {executor} "
            f"or use --executor dask"
        )
    from ..errors import SequentError
    from ..executors.dask import DaskExecutor

    try:
        flow.executor = DaskExecutor(address=address, scheduler_file=scheduler_file)
    except SequentError as exc:  # a missing scheduler file, an address Dask cannot parse
        option = "--address" if address else "--scheduler-file"
        raise UsageProblem(f"{option}: {exc}") from None


def _recovered_run(flow: Sequent, reference: str | None) -> str | None:
    """The full id ``--run-id`` names (an id, a prefix, ``latest``) in the flow's store."""
    if reference is None:
        return None
    from ..errors import RunReferenceError
    from ..references import LATEST, resolve_run
    from ..store import read_store

    with usage(), read_store(flow.store_path, missing_ok=True) as store:
        if not store.exists:
            return reference  # the recover itself says there is nothing to recover
        try:
            return resolve_run(store, reference, flow.name if reference == LATEST else None)
        except RunReferenceError as exc:
            raise UsageProblem(f"--run-id {reference}: {cli_words(str(exc))}") from exc


def _run(target: str, mode: RunMode, run_id: str | None, **options: Any) -> None:
    from ..parameters import config_overrides
    from ..runner import FlowOptions
    from ..selection import parse_steps

    given = dict(options)  # as typed: the hint after an interruption repeats them
    params = _parameters(options.pop("params"), options.pop("params_file"))
    with usage():
        config = config_overrides(options.pop("config"), options.pop("max_concurrent"))
    rerun = parse_steps(options.pop("rerun", ()))
    downstream = options.pop("downstream", False)
    if downstream and not rerun:
        raise UsageProblem("--downstream reruns what follows the --rerun steps; add --rerun STEP")
    progress = options.pop("progress")
    verb = "recovered" if mode is RunMode.recover else "ran"
    with load_flow(target, params) as flow:
        _overrides(flow, options["store"], options["executor"], options["logdir"], config)
        _dask_cluster(flow, options["executor"], options["address"], options["scheduler_file"])
        chosen = FlowOptions(
            flow_name=flow.name,
            config=flow.config,
            mode=mode,
            recovery_run=_recovered_run(flow, run_id),
            logging_level=flow.logging_level,
            max_loops=options["max_loops"],
            progress=sys.stderr.isatty() if progress is None else progress,
            only=tuple(parse_steps(options["only"])),
            rerun=tuple(rerun),
            downstream=downstream,
            force=options["force"],
        )
        try:
            try:
                with usage():
                    ok = flow._run(chosen)
            finally:
                flow.close()
        except KeyboardInterrupt:
            click.echo(f"{verb} run {flow.run_id} of flow {flow.name!r}: interrupted")
            click.echo(
                f"interrupted run {flow.run_id} of flow {flow.name!r}; continue it with "
                f"`{recover_command(target, flow.run_id, given)}`",
                err=True,
            )
            sys.exit(130)
        click.echo(
            f"{verb} run {flow.run_id} of flow {flow.name!r}: {'success' if ok else 'failure'}"
        )
    sys.exit(0 if ok else 1)


#: The options of ``run``/``recover`` that say which flow, store, logs and settings a run has:
#: a recover of it needs the same ones. (option name as typed, key in ``options``)
_SAME_RUN_OPTIONS = (
    ("-p", "params"),
    ("--params-file", "params_file"),
    ("--store", "store"),
    ("--logdir", "logdir"),
    ("--config", "config"),
    ("-j", "max_concurrent"),
    ("--executor", "executor"),
    ("--address", "address"),
    ("--scheduler-file", "scheduler_file"),
    ("--only", "only"),
)


def recover_command(target: str, run_id: str | None, options: dict[str, Any]) -> str:
    """The ``sequent recover`` command line that continues run ``run_id`` exactly.

    It names the run (``--run-id``) and repeats the options given to ``run``/``recover`` that
    locate the flow, its store and logs, and its settings; quoted for a POSIX shell.
    """
    import shlex

    words = ["sequent", "recover", target]
    if run_id:
        words += ["--run-id", run_id]
    for option, key in _SAME_RUN_OPTIONS:
        value = options.get(key)
        values = value if isinstance(value, (list, tuple)) else [value]
        for one in values:
            if one is not None and one != "":
                words += [option, str(one)]
    return shlex.join(words)


@click.command()
@click.argument("target", metavar="FILE[:OBJECT]")
@_with(_run_options)
def run(target: str, **options: Any) -> None:
    """Run the flow in FILE afresh (a restart); exit 1 when it fails."""
    _run(target, RunMode.restart, None, **options)


@click.command()
@click.argument("target", metavar="FILE[:OBJECT]")
@click.option("--run-id", help="The run to continue (an id, a prefix, latest); default: latest.")
@click.option(
    "--rerun",
    multiple=True,
    metavar="STEP,...",
    help="Run these steps again even though they succeeded.",
)
@click.option("--downstream", is_flag=True, help="With --rerun: also rerun every step after them.")
@_with(_run_options)
def recover(target: str, run_id: str | None, **options: Any) -> None:
    """Continue a run of the flow in FILE: rerun what did not succeed."""
    _run(target, RunMode.recover, run_id, **options)


@click.command()
@click.argument("target", metavar="FILE[:OBJECT]")
@click.option("--recover", "recovering", is_flag=True, help="Plan a recover, not a restart.")
@click.option("--run-id", help="The run a recover would continue (implies --recover).")
@click.option("--store", type=click.Path(dir_okay=False), help="Read this store file.")
@click.option("--only", multiple=True, metavar="STEP,...", help="As run/recover --only.")
@click.option("--rerun", multiple=True, metavar="STEP,...", help="As recover --rerun.")
@click.option("--downstream", is_flag=True, help="As recover --downstream.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_with(_param_options)
def plan(target: str, recovering: bool, run_id: str | None, **options: Any) -> None:
    """Show what a run would do, in order; runs and writes nothing."""
    from ..terminal import safe

    params = _parameters(options["params"], options["params_file"])
    if (options["rerun"] or options["downstream"]) and not (recovering or run_id):
        raise UsageProblem("--rerun and --downstream plan a recover; add --recover")
    with load_flow(target, params) as flow:
        _overrides(flow, options["store"])
        recovering = recovering or run_id is not None
        with usage():
            result, held = _dry_run(flow, recovering, _recovered_run(flow, run_id), options)
    note = f"Note: a recover would be refused now: {held}" if held else None
    if options["as_json"]:
        click.echo(json.dumps({**_plan_json(result), "refused": note}, indent=2))
    else:
        click.echo(safe(result.text()))
        if note:
            click.echo(safe(note))


def _dry_run(
    flow: Sequent, recovering: bool, run_id: str | None, options: Any
) -> tuple[Any, str | None]:
    """``flow.plan()`` with the step choices of ``--only``/``--rerun``/``--downstream``.

    Also, for a recover, why it would be refused now (a live orchestrator holds the run, as
    ``sequent recover`` says), else None.
    """
    from ..plan import dry_run, find_recovery, recorded_marks
    from ..selection import parse_steps, select
    from ..store.lease import busy_message

    plan = flow.compile()
    only, rerun = parse_steps(options["only"]), parse_steps(options["rerun"])
    if not recovering:
        return dry_run(plan, flow.name, selection=select(plan, only)), None
    with flow._reading() as store:
        found = find_recovery(store, flow.name, run_id or flow.recovery_run)
        marks = recorded_marks(store, found.run_id)
        lease = store.lease(found.run_id) if hasattr(store, "lease") else None
        held = busy_message(lease, store.path) if lease and lease.get("alive") else None
    selection = select(plan, only, rerun, options["downstream"], found.previous, found.run_id)
    return dry_run(plan, flow.name, found, selection, marks), held


def _plan_json(result: Any) -> dict[str, Any]:
    return {
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
    }


@click.command()
@click.argument("target", metavar="FILE[:OBJECT]")
@click.option("--expanded", is_flag=True, help="One node per step instance (path, sequence).")
@click.option("--run-id", help="Colour nodes by this run's statuses (an id, a prefix, latest).")
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
@_with(_param_options)
def graph(target: str, expanded: bool, run_id: str | None, **options: Any) -> None:
    """Draw the flow in FILE: DOT text, or SVG/PNG through Graphviz."""
    params = _parameters(options["params"], options["params_file"])
    if options["output"]:
        check_output(options["output"])
    with load_flow(target, params) as flow:
        _overrides(flow, options["store"])
        with usage():
            text = flow.to_dot(expanded=expanded, run_id=_recovered_run(flow, run_id))
    fmt = options["fmt"]
    data = text.encode("utf-8") if fmt == "dot" else render_dot(text, fmt)
    if options["output"]:
        with writing(options["output"]):
            Path(options["output"]).write_bytes(data)
    else:
        stream = click.get_binary_stream("stdout")
        stream.write(data)
        stream.flush()


def render_dot(text: str, fmt: str, timeout: float = 120) -> bytes:
    """Lay out DOT ``text`` with Graphviz's ``dot`` into ``fmt`` bytes.

    Raises ``UsageProblem`` when Graphviz is not installed or cannot lay the graph out.
    """
    from ..graphviz import INSTALL_HINT, GraphvizError, render

    try:
        return render([text], fmt, timeout)
    except GraphvizError as exc:
        if exc.missing:
            raise UsageProblem(
                f"-f {fmt} needs Graphviz's 'dot' program, which is not installed (or not on "
                f"PATH); {INSTALL_HINT}, or leave out -f to get DOT text"
            ) from exc
        raise UsageProblem(str(exc)) from exc
