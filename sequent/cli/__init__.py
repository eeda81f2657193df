"""The ``sequent`` command: run, recover, plan and draw flows; follow, show and mark runs.

Exit status: 0 success, 1 the run failed, 2 bad usage (a missing file, no flow in it, an
unknown run id, a flow that does not build), 130 interrupted by Ctrl-C, with the reason on
standard error.

    running.py   run, recover, plan, graph      (load a flow file: ../loader.py)
    reading.py   runs, show, report             (read a store; no flow code needed)
    watching.py  status [--watch], logs [--follow]
    marking.py   mark
    common.py    errors in the command line's words, finding the store and the run, tables
"""

from __future__ import annotations

from typing import Any

import click

from ..loader import BUILDER_NAMES, split_target
from ..version import __version__
from .common import DEBUG, UsageProblem, load_flow
from .marking import mark
from .reading import report, runs, show
from .running import graph, plan, recover, render_dot, run
from .watching import logs, status


class _Group(click.Group):
    """The command group; Ctrl-C anywhere exits with status 130, as shells expect."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.NoSuchOption as exc:
            if exc.option_name == "--debug":  # an option of the group, not of the command
                command = exc.ctx.info_name if exc.ctx is not None else "COMMAND"
                exc.message += (
                    f" --debug is an option of sequent itself and goes before the command: "
                    f"`sequent --debug {command} ...`"
                )
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(130) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sequent")
@click.option("--debug", is_flag=True, help="On an error, print the full traceback behind it.")
def cli(debug: bool) -> None:
    """Run program flows, review them before they run, and follow and look at their runs."""
    DEBUG["on"] = debug


for _command in (run, recover, plan, graph, runs, show, report, status, logs, mark):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """The ``sequent`` console script."""
    cli.main(args=argv, prog_name="sequent")


__all__ = [
    "BUILDER_NAMES",
    "UsageProblem",
    "cli",
    "load_flow",
    "main",
    "render_dot",
    "split_target",
]
