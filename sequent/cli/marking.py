"""``sequent mark``: record a step instance's status by hand, running nothing."""

from __future__ import annotations

import click

from ..terminal import safe
from .common import UsageProblem, flow_option, locate, store_option, the_run, usage


@click.command()
@click.argument("reference", metavar="RUN")
@click.argument("node", metavar="STEP@SEQUENCE")
@click.argument("status", type=click.Choice(["success", "failure"]))
@click.option("--reason", required=True, help="Why (kept in the store with who and when).")
@store_option
@flow_option
def mark(
    reference: str, node: str, status: str, reason: str, store: str | None, flow_name: str | None
) -> None:
    """Record STEP@SEQUENCE of RUN as success or failure by hand, as a new attempt.

    Nothing runs. A later recover starts from the mark: a step marked success is skipped, one
    marked failure runs again.
    """
    from ..marks import check_markable, parse_node, record_mark
    from ..monitor import run_state
    from ..status import StepStatus
    from ..store import open_store

    path, file_flow = locate(store)
    with usage():
        key = parse_node(node)
    from .common import reading

    with reading(path) as opened, usage():
        run_id = the_run(opened, reference, flow_name or file_flow)
        state = run_state(opened, run_id)
        if state == "running":
            raise UsageProblem(
                f"run {run_id} is running; mark its steps once it has ended (`sequent status "
                f"{run_id} --watch` waits for that)"
            )
        before = check_markable(opened, run_id, key)["status"]
    with usage():
        writer = open_store(path)
        try:
            attempt = record_mark(writer, run_id, key, StepStatus(status), reason)
        finally:
            writer.close()
    click.echo(
        safe(
            f"marked {key.path}@{key.sequence} of run {run_id} {status} (it was {before}) as "
            f"attempt {attempt}: {reason}; a recover continues from there"
        )
    )
