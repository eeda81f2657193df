"""The original sequent's own examples (Acrisel's ``examples/runly*.py``), written again in
``scripts/`` step for step (same steps, requires, repeats, resources, recovery policies and
config keys) and run as ``python runlyNNN.py`` on the default executor. Each body appends
``progname step sequence recovery`` to ``ran.txt``; the tests check that order, the printed
``run()`` results and the statuses in the store against what the original documents.

Not run as the original wrote them (see the scripts' first lines): runly005's relative
import is absolute; a ``store=`` naming a Postgres (``pgdb2``) or a DATABASES sqlite entry
(``sqfile00``) becomes the default store; ``hosts=`` naming SSH hosts is kept and ignored on
the local executor (one warning); runly110 (runly005 with SSH hosts and a Postgres store) and
runly070/runly170 (Postgres, a 30 s / 10 s delay on SSH hosts) are left out.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).with_name("scripts")
pytestmark = pytest.mark.slow  # each script starts Python and a pool of worker processes

NESTED_FIRST = [
    ("prog1", "s1_s11_s111", "1.1.1", 0), ("prog2", "s1_s11_s112", "1.1.1", 0),
    ("prog1", "s1_s11_s111", "1.1.2", 0), ("prog2", "s1_s11_s112", "1.1.2", 0),
    ("prog3", "s1_s12", "1.1", 0),
    ("prog1", "s1_s11_s111", "1.2.1", 0), ("prog2", "s1_s11_s112", "1.2.1", 0),
]  # fmt: skip


def run_script(folder: Path, name: str, expect_rc: int = 0) -> subprocess.CompletedProcess[str]:
    for path in SCRIPTS.iterdir():
        if path.is_file():
            shutil.copy(path, folder / path.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEQUENT_", "EVENTOR_"))}
    done = subprocess.run(
        [sys.executable, name], cwd=folder, capture_output=True, text=True, timeout=180, env=env
    )
    assert done.returncode == expect_rc, done.stderr[-4000:]
    return done


def ran(folder: Path) -> list[tuple[str, str, str, int]]:
    trace = folder / "ran.txt"
    lines = trace.read_text().splitlines() if trace.exists() else []
    return [(p, s, q, int(r)) for p, s, q, r in (line.split() for line in lines)]


def results(stdout: str) -> list[tuple[bool, str]]:
    return [(r == "True", i) for r, i in re.findall(r"^run result: (\w+) (\w+)$", stdout, re.M)]


def latest(folder: Path, store: str, run_id: str) -> dict[str, str]:
    """``path/sequence -> status`` from the latest attempt that recorded each node."""
    with sqlite3.connect(folder / store) as conn:
        rows = conn.execute(
            "SELECT path, sequence, status FROM latest_nodes WHERE run_id = ?", (run_id,)
        ).fetchall()
    return {f"{path}/{sequence}": status for path, sequence, status in rows}


def test_runly001_config_file_with_tag_and_leaf_repeats(tmp_path):
    done = run_script(tmp_path, "runly001.py")
    [(ok, run_id)] = results(done.stdout)
    assert ok
    # s11 (neither func nor children) succeeds at once, so s12 was ready before s112 (2.7)
    assert ran(tmp_path) == [
        ("prog111", "s1_s111", "1.1", 0), ("prog12", "s1_s12", "1.1", 0),
        ("prog112", "s1_s112", "1.1", 0), ("prog2", "s2", "1", 0),
    ]  # fmt: skip
    assert "shared_db" in done.stderr and "ssh_host" in done.stderr  # ignored, with a warning
    assert set(latest(tmp_path, "runly001.run.db", run_id).values()) == {"success"}


def test_runly002_recover_as_the_first_run_is_a_clear_error(tmp_path):
    done = run_script(tmp_path, "runly002.py", expect_rc=1)
    assert "RecoveryError" in done.stderr and "nothing to recover" in done.stderr
    assert ran(tmp_path) == []
    assert not (tmp_path / "runly002.run.db").exists()


def test_runly003_restart_then_recover_reruns_what_the_policy_says(tmp_path):
    done = run_script(tmp_path, "runly003.py")
    (first, run_id), (second, same) = results(done.stdout)
    assert first and second and same == run_id
    # s11's policy reruns even a success; s12 (default policy) is skipped as recovered
    assert ran(tmp_path) == [
        ("prog11", "s11", "1", 0), ("prog12", "s12", "1", 0), ("prog11", "s11", "1", 1),
    ]  # fmt: skip


@pytest.mark.parametrize("script", ["runly010.py", "runly100.py"])
def test_runly010_complete_requires_and_a_container_event(tmp_path, script):
    done = run_script(tmp_path, script)
    [(ok, run_id)] = results(done.stdout)
    assert ok
    assert ran(tmp_path) == [
        ("prog11", "s0_s1_s11", "1.1.1", 0), ("prog12", "s0_s1_s12", "1.1.1", 0),
        ("prog11", "s0_s1_s11", "1.1.2", 0), ("prog12", "s0_s1_s12", "1.1.2", 0),
        ("prog21", "s0_s2_s21", "1.1.1", 0), ("prog21", "s0_s2_s22", "1.1.1", 0),
        ("prog3", "s0_s3", "1.1", 0),
    ]  # fmt: skip
    if script == "runly100.py":  # hosts= on the process executor: ignored, named once
        warned = [line for line in done.stderr.splitlines() if "hosts=" in line]
        assert len(warned) == 1 and "s0_s1_s11" in warned[0]


def test_runly030_recover_with_a_changed_argument(tmp_path):
    done = run_script(tmp_path, "runly030.py")
    (first, run_id), (second, same) = results(done.stdout)
    assert (first, second) == (False, True) and same == run_id
    assert ran(tmp_path) == [
        ("square", "s0_s1", "1.1", 0), ("square_root", "s0_s2", "1.1", 0),
        ("square_root", "s0_s2", "1.1", 1), ("divide", "s0_s3", "1.1", 1),
    ]  # fmt: skip
    assert "math domain error" in done.stderr


@pytest.mark.parametrize("script", ["runly040.py", "runly050.py", "runly080.py"])
def test_runly040_failure_in_a_nested_iteration_then_recover(tmp_path, script):
    done = run_script(tmp_path, script)
    (first, run_id), (second, same) = results(done.stdout)
    assert (first, second) == (False, True) and same == run_id
    # the first run stops at the failed 1.2.2 (no further iteration, s12@1.2 and s2 skipped);
    # the recover reruns exactly what did not succeed, in the flow's order
    assert ran(tmp_path) == [
        *NESTED_FIRST,
        ("prog1", "s1_s11_s111", "1.2.2", 0),
        ("prog1", "s1_s11_s111", "1.2.2", 1), ("prog2", "s1_s11_s112", "1.2.2", 1),
        ("prog3", "s1_s12", "1.2", 1), ("prog4", "s2", "1", 1),
    ]  # fmt: skip
    store = script.replace(".py", ".run.db")  # <script stem>.run.db (4.1)
    assert set(latest(tmp_path, store, run_id).values()) == {"success"}
    with sqlite3.connect(tmp_path / store) as conn:
        (attempts,) = conn.execute(
            "SELECT COUNT(*) FROM attempts WHERE run_id = ?", (run_id,)
        ).fetchone()
        first_statuses = dict(
            conn.execute(
                "SELECT path || '/' || sequence, status FROM nodes"
                " WHERE run_id = ? AND attempt = 0",
                (run_id,),
            ).fetchall()
        )
    assert attempts == 2
    assert first_statuses["s1_s11_s111/1.2.2"] == "failure"
    assert first_statuses["s1_s12/1.2"] == "skipped" and first_statuses["s2/1"] == "skipped"


def test_runly060_leaves_share_a_pool_over_range_repeats(tmp_path):
    done = run_script(tmp_path, "runly060.py")
    [(ok, run_id)] = results(done.stdout)
    assert ok
    assert ran(tmp_path) == [
        *NESTED_FIRST,
        ("prog1", "s1_s11_s111", "1.2.2", 0), ("prog2", "s1_s11_s112", "1.2.2", 0),
        ("prog3", "s1_s12", "1.2", 0), ("prog4", "s2", "1", 0),
    ]  # fmt: skip
    assert len(latest(tmp_path, "runly060.run.db", run_id)) == 14


def test_runly005_step_objects_under_the_spawn_start_method(tmp_path):
    done = run_script(tmp_path, "runly005.py")
    [(ok, run_id)] = results(done.stdout)
    assert ok
    assert ran(tmp_path) == [
        ("prog1", "s1_s111", "1.1", 0), ("prog3", "s1_s12", "1.1", 0),
        ("prog2", "s1_s112", "1.1", 0), ("prog4", "s2", "1", 0),
    ]  # fmt: skip
    assert set(latest(tmp_path, "runly005.run.db", run_id).values()) == {"success"}
