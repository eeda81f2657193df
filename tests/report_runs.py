"""Real runs recorded into real stores, for the report's tests, benchmark and screenshots.

Each function runs a flow (in this process, or as a script in a child process where the run
must end the way a user's does: a recover, a Ctrl-C) and returns the store's path and run id.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import sequent as seq

S = seq.StepStatus
EXAMPLES = Path(__file__).parent.parent / "examples"
HERE = Path(__file__).parent

#: (branch, sequence) of the failures in the big run, and whether a sibling handles them.
BIG_FAILURES = (("a", "1.10.10", False), ("b", "1.10.9", True), ("c", "1.10.8", False))


def _only_run(store: Path) -> str:
    from sequent.plan import read_store

    with read_store(store) as opened:
        (run,) = opened.runs()
        return str(run["run_id"])


def seed_recovery(folder: Path) -> tuple[Path, str]:
    """The seed's recovery example as its documentation prints it: a failure, then a recover."""
    script = folder / "runly04.py"
    script.write_text((EXAMPLES / "seed_recovery.py").read_text(), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, script.name], cwd=folder, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr
    store = folder / "runly04.run.db"
    return store, _only_run(store)


def with_retries(folder: Path) -> tuple[Path, str]:
    """A step that fails twice and succeeds on its third try (``retries=2``), then a step after."""
    tries = folder / "tries"

    def flaky() -> None:
        count = int(tries.read_text()) if tries.exists() else 0
        tries.write_text(str(count + 1))
        if count < 2:
            raise RuntimeError(f"try {count + 1} failed")

    store = folder / "flaky.run.db"
    flow = seq.Sequent(
        name="flaky",
        store=str(store),
        executor="serial",
        logging_level=logging.WARNING,
        config={"logdir": str(folder / "logs")},
    )
    first = flow.add_step("flaky", func=flaky, retries=2, retry_delay=0.05)
    flow.add_step("after", func=time.sleep, args=(0.01,), requires=((first, S.success),))
    assert flow.run() is True
    run_id = flow.run_id
    flow.close()
    return store, run_id


_INTERRUPTED = """
import logging, pathlib, time
import sequent as seq

def quick():
    time.sleep(0.01)

def slow(marker):
    pathlib.Path(marker).write_text("started")
    time.sleep(60)

flow = seq.Sequent(name="stopped", store="stopped.run.db", executor="process",
                   logging_level=logging.WARNING, config={"logdir": "logs", "max_concurrent": 2})
box = flow.add_step("box", repeats=[1, 2])
first = box.add_step("quick", func=quick)
box.add_step("slow", func=slow, args=("started.txt",), requires=((first, seq.StepStatus.success),))
flow.add_step("last", func=quick, requires=((box, seq.StepStatus.success),))
flow.run()
"""


def interrupted(folder: Path) -> tuple[Path, str]:
    """A run stopped by Ctrl-C (SIGINT) while a step runs: that step ends ``interrupted``."""
    (folder / "stopped.py").write_text(textwrap.dedent(_INTERRUPTED), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "stopped.py"],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (folder / "started.txt").exists():
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the slow step never started"
            time.sleep(0.02)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode != 0, err
    store = folder / "stopped.run.db"
    return store, _only_run(store)


def work(fail_at: str | None = None) -> None:
    """A step body: fails (a ValueError naming its sequence) at the sequence ``fail_at``."""
    context = seq.current()
    if context is not None and context.sequence == fail_at:
        raise ValueError(f"bad record in chunk {context.sequence}\nsecond line of the error")


def big(folder: Path, leaves: int = 32) -> tuple[Path, str]:
    """About 10,000 step instances: three branches of containers nested two deep, each with a
    failure deep inside (see ``BIG_FAILURES``); ``stop_on_exception`` is off, so the rest runs.
    """
    store = folder / "big.run.db"
    flow = seq.Sequent(
        name="big",
        store=str(store),
        executor="serial",
        logging_level=logging.ERROR,
        config={"logdir": str(folder / "logs"), "stop_on_exception": False},
    )
    for branch, fail_at, handled in BIG_FAILURES:
        outer = flow.add_step(branch, repeats=range(10))
        inner = outer.add_step("part", repeats=range(10))
        for number in range(leaves):
            inner.add_step(f"l{number:02d}", func=work)
        checked = inner.add_step("check", func=work, kwargs={"fail_at": fail_at})
        inner.add_step("after", func=work, requires=((checked, S.success),))
        if handled:
            inner.add_step("cleanup", func=work, requires=((checked, S.failure),))
    assert flow.run() is False
    run_id = flow.run_id
    flow.close()
    return store, run_id


def big_failures() -> list[str]:
    """``path/sequence`` of the big run's failed step instances, unhandled first."""
    ordered = sorted(BIG_FAILURES, key=lambda failure: failure[2])
    return [f"{branch}_part_check/{sequence}" for branch, sequence, _ in ordered]


# -- headless Chromium -----------------------------------------------------------------------

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def find_chromium() -> tuple[str | None, str]:
    """The Chromium program and "", or None and why it cannot be used here."""
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        program = shutil.which(name)
        if program:
            return program, ""
    return None, "Chromium is not installed (no chromium on PATH; .ci/run installs it)"


def chromium(program: str, profile: Path, *args: str, timeout: float = 120) -> str:
    """Run headless Chromium with a private profile folder; its standard output."""
    done = subprocess.run(
        [program, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def dump_dom(program: str, profile: Path, page: Path, fragment: str = "") -> str:
    """The page's DOM after its scripts ran (``fragment``: ``#filter=...`` and the like)."""
    return chromium(program, profile, "--dump-dom", page.resolve().as_uri() + fragment)


def screenshot(
    program: str, profile: Path, page: Path, png: Path, size: str = "1400,1000", fragment: str = ""
) -> Path:
    """A PNG of the page as a window of ``size`` shows it."""
    chromium(
        program,
        profile,
        f"--screenshot={png}",
        f"--window-size={size}",
        "--hide-scrollbars",
        page.resolve().as_uri() + fragment,
    )
    assert png.is_file()
    return png


def mark_by_hand(store: Path, run_id: str, key: tuple[str, str], status: str, who: str,
                 reason: str) -> None:  # fmt: skip
    """Record what ``sequent mark RUN STEP@SEQUENCE STATUS`` records: a new attempt holding one
    event of ``key`` with ``marked_by`` and ``reason`` (written here with SQLite directly)."""
    import sqlite3

    now = time.time()
    with sqlite3.connect(store) as conn:
        (number,) = conn.execute(
            "SELECT MAX(attempt) + 1 FROM attempts WHERE run_id = ?", (run_id,)
        ).fetchone()
        conn.execute(
            "INSERT INTO attempts (run_id, attempt, mode, started, ended, result) "
            "VALUES (?, ?, 'mark', ?, ?, NULL)",
            (run_id, number, now, now),
        )
        conn.execute(
            "INSERT INTO events (run_id, attempt, seq, path, sequence, kind, status, time, "
            "marked_by, reason) VALUES (?, ?, 0, ?, ?, 'step', ?, ?, ?, ?)",
            (run_id, number, *key, status, now, who, reason),
        )


def record_log_folder(store: Path, run_id: str, logdir: Path) -> Path:
    """The run's log folder under ``logdir``, recorded as each attempt's ``attempts.logdir``
    where the store did not record one (stores from before the log folder was recorded)."""
    import sqlite3

    from sequent.logs import run_log_dir
    from sequent.plan import read_store

    with read_store(store) as opened:
        folder = run_log_dir(logdir, opened.run(run_id)["flow_name"], run_id)
    with sqlite3.connect(store) as conn:
        conn.execute(
            "UPDATE attempts SET logdir = ? WHERE run_id = ? AND logdir IS NULL",
            (str(folder), run_id),
        )
    return folder
