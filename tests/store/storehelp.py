"""Helpers for the store tests: child processes running ``flowscripts.py``, reading results."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import sequent as seq

SCRIPT = Path(__file__).with_name("flowscripts.py")


def start(kind: str, mode: str, store: Path, folder: Path, **env: str) -> subprocess.Popen:
    """Start ``flowscripts.py`` in a child process; its output is captured."""
    environment = {**os.environ, **env}
    environment.pop("SEQUENT_STORE", None)
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), kind, mode, str(store), str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def finish(process: subprocess.Popen, timeout: float = 60) -> tuple[int, str, str]:
    """Wait for a child; return its exit status, standard output and standard error."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"child did not finish in {timeout} s:\n{out}\n{err}") from None
    return process.returncode, out, err


def ran(folder: Path) -> list[tuple[str, str, int, int]]:
    """The lines steps appended to ``folder/ran``: (path, sequence, recovery, pid)."""
    path = folder / "ran"
    if not path.exists():
        return []
    lines = []
    for line in path.read_text().splitlines():
        name, sequence, recovery, pid = line.split()
        lines.append((name, sequence, int(recovery), int(pid)))
    return lines


def ran_count(folder: Path) -> Counter:
    """How many times each (path, sequence) ran."""
    return Counter((name, sequence) for name, sequence, _, _ in ran(folder))


def query(store: Path, sql: str, *params) -> list[tuple]:
    """Rows of ``sql`` on the store file, read with plain sqlite3 (as users do)."""
    conn = sqlite3.connect(store)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def flow_on(
    store: Path | str, mode=seq.RunMode.restart, name="flow", logs: Path | None = None, **options
) -> seq.Sequent:
    """A flow recording into ``store`` on the thread executor, logging beside it (or in
    ``logs``); ``config`` is added to the flow's, other ``options`` go to ``Sequent``."""
    folder = logs if logs is not None else Path(store).parent / "logs"
    config = {"logdir": str(folder), **options.pop("config", {})}
    return seq.Sequent(
        name=name,
        store=str(store),
        run_mode=mode,
        executor="thread",
        logging_level=logging.INFO,
        config=config,
        **options,
    )
