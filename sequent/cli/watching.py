"""``sequent status`` and ``sequent logs``: what a run is doing now, and what it wrote.

``status --watch`` and ``logs --follow`` read the store (and the log files) again every
``--interval`` seconds until the run is no longer running; ``status --watch`` prints only when
what it would print changed (clocks aside), and the final state. Log text is printed escaped.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from ..terminal import safe, safe_line
from .common import UsageProblem, flow_option, locate, reading, store_option, the_run, usage, when

_ORDER = ("active", "ready", "not started", "success", "failure", "skipped", "interrupted")


def status_text(view: dict[str, Any], clocks: bool = True) -> str:
    """The lines ``sequent status`` prints for one ``monitor.snapshot``.

    ``clocks=False`` leaves out what changes with time alone (the heartbeat's age, how long a
    step has run), so ``--watch`` can tell whether anything else changed.
    """
    run, state = view["run"], view["state"]
    attempt = view["attempt"] or {}
    lease = view.get("lease") or {}
    head = f"Run {run['run_id']} of flow {run['flow_name']!r}: {state}"
    if state == "running":
        host = lease.get("host") or attempt.get("host")
        pid = lease.get("pid") or attempt.get("pid")
        beat = lease.get("heartbeat")
        since = f", heartbeat {max(view['at'] - beat, 0):.0f} s ago" if beat and clocks else ""
        if lease.get("stalled"):  # its heartbeat is stale, its process alive on this host
            head += (
                f", but unresponsive (pid {pid} on {host}{since}; the process is alive: "
                f"stopped, or held up by a step)"
            )
        else:
            head += f" (pid {pid} on {host}{since})"
    head += (
        f"; attempt {attempt.get('attempt', 0)} ({attempt.get('mode', '-')}) started "
        f"{when(attempt.get('started'))}"
    )
    if attempt.get("ended"):
        head += f", ended {when(attempt.get('ended'))}"
    counts = view["counts"]
    shown = [f"{counts[s]} {s}" for s in _ORDER if counts.get(s)]
    shown += [f"{n} {s}" for s, n in sorted(counts.items()) if s not in _ORDER]
    lines = [head, f"Steps: {', '.join(shown) or 'none recorded'} (of {view['total']})"]
    label = "Running now" if state == "running" else "Were running when it stopped"
    for row in view["running"]:
        started = row.get("started")
        took = f", {view['at'] - started:.1f} s" if started and clocks else ""
        node = f"{row['path']}/{row['sequence']}"
        lines.append(f"  {label.lower()}: {node} (since {when(started)}{took})")
    return "\n".join(safe_line(line) for line in lines)


@click.command()
@click.argument("reference", metavar="[RUN]", default="latest")
@store_option
@flow_option
@click.option("--watch", is_flag=True, help="Refresh until the run is no longer running.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between refreshes with --watch.",
)
def status(
    reference: str, store: str | None, flow_name: str | None, watch: bool, interval: float
) -> None:
    """Whether RUN (default: latest) is running, finished or abandoned; its steps' counts.

    With --watch, exit 0 when the run ends in success, 1 when it fails or is abandoned.
    """
    from ..monitor import snapshot

    path, _ = locate(store)
    with reading(path) as opened, usage():
        run_id = the_run(opened, reference, flow_name)
        view = snapshot(opened, run_id)
        click.echo(status_text(view))
        if not watch:
            return
        shown = status_text(view, clocks=False)
        while view["state"] == "running":
            time.sleep(interval)
            view = snapshot(opened, run_id)
            now = status_text(view, clocks=False)
            if now != shown or view["state"] != "running":  # a change, or the end
                click.echo(f"--- {when(view['at'])}")
                click.echo(status_text(view))
                shown = now
    sys.exit(0 if view["state"] == "success" else 1)


def _log_folders(opened: Any, run_id: str, logdir: str | None) -> list[Path]:
    """The folders holding run ``run_id``'s logs, oldest attempt first (each once)."""
    from ..config import FLOW_DEFAULTS
    from ..logs import run_log_dir

    if logdir:
        run = opened.run(run_id)
        return [run_log_dir(logdir, run["flow_name"], run_id)]
    folders: list[Path] = []
    for attempt in opened.attempts(run_id):
        recorded = attempt.get("logdir")
        if recorded and Path(recorded) not in folders:
            folders.append(Path(recorded))
    if not folders:
        run = opened.run(run_id)
        guess = run_log_dir(FLOW_DEFAULTS["logdir"], run["flow_name"], run_id)
        if guess.is_dir():
            folders.append(guess)
    if not folders:
        raise UsageProblem(
            f"the store does not say where run {run_id}'s logs are (it was recorded before "
            f"stores kept log folders, or with a logdir of its own); pass --logdir DIR, the "
            f"logdir the run used"
        )
    return folders


def _log_nodes(
    opened: Any, run_id: str, step: str | None, running: bool = False
) -> list[tuple[str, str]] | None:
    """The step instances whose logs ``STEP[@SEQUENCE]`` asks for (None: the run's log).

    Of a ``running`` run, also those of its structure not recorded yet (a step that has just
    started may log before its start reaches the store).
    """
    from ..marks import parse_node

    if step is None:
        return None
    nodes = [(row["path"], row["sequence"]) for row in opened.nodes(run_id)]
    if running:
        recorded = set(nodes)
        planned = [(node["path"], node["sequence"]) for node in opened.structure(run_id)["nodes"]]
        nodes += [node for node in planned if node not in recorded]
    if "@" in step:
        with usage():
            key = parse_node(step)
        wanted = [(key.path, key.sequence)]
    else:
        wanted = [node for node in nodes if node[0] == step]
    _refuse_containers(opened, run_id, {path for path, _ in wanted})
    if not wanted or not set(wanted) <= set(nodes):
        known = sorted({path for path, _ in nodes})
        raise UsageProblem(
            safe(
                f"run {run_id} has no step instance {step!r}; name one as STEP or STEP@SEQUENCE "
                f"among {', '.join(known[:20])} (`sequent show {run_id}` lists them)"
            )
        )
    return wanted


def _refuse_containers(opened: Any, run_id: str, paths: set[str]) -> None:
    """``UsageProblem`` when one of ``paths`` is a container: it has no log, its steps do."""
    steps = opened.structure(run_id)["steps"]
    for step in steps:
        if step["path"] in paths and step.get("kind") == "container":
            inside = [other["path"] for other in steps if other.get("parent") == step["path"]]
            raise UsageProblem(
                safe(
                    f"{step['path']!r} is a container: containers have no step log, their "
                    f"steps have; name one of its steps: {', '.join(inside) or '(none)'} "
                    f"(`sequent logs {run_id} {inside[0] if inside else 'STEP'}`)"
                )
            )


def _check_found(files: list[Path], folders: list[Path], step: str | None, run_id: str) -> None:
    """``UsageProblem`` when a run that is not running has no log where it should be.

    The run's log is always written, so a missing one means the folder is not the one the
    run wrote in; a step that logged nothing has no log file, but its run's folder exists.
    """
    missing = [file for file in files if not file.exists() and not file.is_symlink()]
    folders_missing = not any(folder.is_dir() for folder in folders)
    if folders_missing or (step is None and len(missing) == len(files)):
        where = ", ".join(repr(str(folder)) for folder in folders)
        what = f"no {'log folder' if folders_missing else 'run log'} of run {run_id} at {where}"
        raise UsageProblem(
            safe(
                f"{what}, though the run has ended: its logs were moved or removed, or they "
                f"are elsewhere; pass --logdir DIR, the logdir the run wrote its logs under"
            )
        )


def _log_files(folders: list[Path], wanted: list[tuple[str, str]] | None) -> list[Path]:
    from ..logs import step_log_path

    if wanted is None:
        return [folder / "run.log" for folder in folders]
    return [step_log_path(folder, *node) for node in wanted for folder in folders]


@click.command()
@click.argument("reference", metavar="RUN")
@click.argument("step", metavar="[STEP[@SEQUENCE]]", required=False)
@store_option
@flow_option
@click.option("--logdir", type=click.Path(file_okay=False), help="Where the run wrote its logs.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines while the run runs.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=0.5,
    show_default=True,
    help="Seconds between reads with --follow.",
)
def logs(
    reference: str,
    step: str | None,
    store: str | None,
    flow_name: str | None,
    logdir: str | None,
    follow: bool,
    interval: float,
) -> None:
    """Print RUN's log, or the log of one of its steps (every instance of STEP, or STEP@SEQ)."""
    from ..monitor import run_state

    path, _ = locate(store)
    with reading(path) as opened, usage():
        run_id = the_run(opened, reference, flow_name)
        state = run_state(opened, run_id)
        if follow and state != "running":
            raise UsageProblem(
                f"--follow follows a running run, and run {run_id} is {state}; leave out "
                f"--follow to print its log"
            )
        wanted = _log_nodes(opened, run_id, step, running=state == "running")
        folders = _log_folders(opened, run_id, logdir)
        files = _log_files(folders, wanted)
        if state != "running":
            _check_found(files, folders, step, run_id)
        offsets = {file: _print_new(file, 0, len(files) > 1) for file in files}
        while follow and state == "running":
            time.sleep(interval)
            state = run_state(opened, run_id)
            for file in files:
                offsets[file] = _print_new(file, offsets[file], False)


def _refuse_links(file: Path) -> None:
    """``UsageProblem`` when ``file`` or its run's log folders is a symbolic link.

    The writer never writes through a link; the reader does not follow one either (a planted
    link would make ``sequent logs`` print whatever file it points to).
    """
    for path in (file, file.parent, file.parent.parent):
        if path.is_symlink():
            what = "log file" if path == file else "log folder"
            raise UsageProblem(
                f"the {what} {str(path)!r} is a symbolic link; sequent logs does not follow "
                f"links (sequent never writes a log through one). Remove the link, or read "
                f"the file it points to yourself"
            )


def _print_new(file: Path, offset: int, header: bool) -> int:
    """Print what ``file`` holds past ``offset`` (escaped); return the new offset.

    Raises ``UsageProblem`` when the file or its folder is a symbolic link.
    """
    import os

    _refuse_links(file)
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with open(fd, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        if header or offset == 0:
            click.echo(safe_line(f"(no log at {file}: nothing was written there yet)"), err=True)
        return offset
    except OSError as exc:  # a link planted since the check (ELOOP), a folder, no permission
        raise UsageProblem(
            f"cannot read the log file {str(file)!r} ({exc.strerror or exc}); sequent logs "
            f"reads regular files only, never through a link"
        ) from exc
    if header:
        click.echo(f"==> {safe_line(file.name)} <==")
    if data:
        text = data.decode("utf-8", errors="replace")
        click.echo(safe(text), nl=not text.endswith("\n") and header)
    return offset + len(data)
