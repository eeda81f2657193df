"""One iteration per input file, four at a time: a container's ``repeats`` as a fan-out.

``extract`` writes the day's input files (a varying number: here eight). ``per_file`` is a
container whose ``repeats`` is a callable, so it is called when the container starts, after
``extract`` wrote the files: one iteration per file. ``parallel=4`` lets up to four iterations
run at once; inside each, ``count`` then ``publish`` keep their order. ``report`` runs when
every file is done.

    python examples/parallel_files.py    # exit status 0 on success, 1 on failure

Each step logs what it does with which file; the run's summary follows.
"""

import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import sequent as seq

logger = logging.getLogger(__name__)

INBOX = Path(tempfile.mkdtemp(prefix="sequent-inbox-"))


def extract(count: int) -> None:
    """Stand in for an extract: write ``count`` input files."""
    for number in range(1, count + 1):
        (INBOX / f"part-{number:02}.csv").write_text("row\n" * number)
    logger.info("extract wrote %d files to %s", count, INBOX)


def input_files() -> list[Path]:
    """The files ``extract`` wrote: the container's iterations, one per file."""
    return sorted(INBOX.glob("*.csv"))


def this_file() -> Path:
    """The file of the iteration this step runs in (its repeat value)."""
    context = seq.current()
    assert context is not None, "called outside a step"
    path: Path = context.item
    return path


def count() -> None:
    path = this_file()  # this iteration's file
    logger.info("count starts %s", path.name)
    time.sleep(0.3)  # stands in for real work
    rows = len(path.read_text().splitlines())
    path.with_suffix(".rows").write_text(str(rows))
    logger.info("count done %s: %d rows", path.name, rows)


def publish() -> None:
    path = this_file()
    rows = path.with_suffix(".rows").read_text()
    logger.info("publish %s (%s rows)", path.name, rows)


def report() -> None:
    total = sum(int(p.read_text()) for p in INBOX.glob("*.rows"))
    logger.info("report: %d rows in %d files", total, len(input_files()))


def build() -> seq.Sequent:
    flow = seq.Sequent(name="parallel_files", config={"max_concurrent": 0})
    success = seq.StepStatus.success
    first = flow.add_step("extract", func=extract, args=(8,))
    per_file = flow.add_step(
        "per_file", repeats=input_files, parallel=4, requires=((first, success),)
    )
    counted = per_file.add_step("count", func=count)
    per_file.add_step("publish", func=publish, requires=((counted, success),))
    flow.add_step("report", func=report, requires=((per_file, success),))
    return flow


if __name__ == "__main__":
    with build() as flow:
        ok = flow.run()
    shutil.rmtree(INBOX)
    sys.exit(0 if ok else 1)
