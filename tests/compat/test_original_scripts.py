"""Scripts written the original sequent 3.1.x's way run unchanged (SPEC 6, docs/migration.md).

Each script in ``scripts/`` is run as ``python script.py`` in a fresh folder: no
``if __name__ == "__main__":`` guard, the default executor unless the script chooses one. Its
steps append ``name path sequence recovery`` to ``ran.txt`` beside it and it prints
``run result: <bool> <run id>`` after each run; the tests check those, the store (read with plain
SQL, as docs/store.md shows) and what the run printed.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).with_name("scripts")

pytestmark = pytest.mark.slow  # each script starts Python and a pool of worker processes


def run_script(folder: Path, name: str) -> subprocess.CompletedProcess[str]:
    """Copy the scripts into ``folder`` and run ``name`` there; it must exit 0."""
    for path in SCRIPTS.iterdir():
        if path.is_file():
            shutil.copy(path, folder / path.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEQUENT_", "EVENTOR_"))}
    done = subprocess.run(
        [sys.executable, name], cwd=folder, capture_output=True, text=True, timeout=180, env=env
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def ran(folder: Path) -> list[tuple[str, str, str, int]]:
    """What the steps wrote: (name, path, sequence, recovery) in the order the bodies ran."""
    rows = []
    for line in (folder / "ran.txt").read_text().splitlines():
        name, path, sequence, recovery = line.split()
        rows.append((name, path, sequence, int(recovery)))
    return rows


def results(stdout: str) -> list[tuple[bool, str]]:
    """Each run's printed result and run id, in order."""
    found = []
    for line in stdout.splitlines():
        if line.startswith("run result: "):
            value, run_id = line.split()[2:]
            found.append((value == "True", run_id))
    return found


def statuses(store: Path, run_id: str, attempt: int) -> dict[tuple[str, str], tuple[str, ...]]:
    """``(path, sequence) -> (kind, status, replayed)`` of one attempt, from the ``nodes`` view."""
    conn = sqlite3.connect(store)
    try:
        rows = conn.execute(
            "SELECT path, sequence, kind, status, replayed FROM nodes "
            "WHERE run_id = ? AND attempt = ?",
            (run_id, attempt),
        ).fetchall()
    finally:
        conn.close()
    return {
        (path, sequence): (kind, status, "replayed" if replayed else "ran")
        for path, sequence, kind, status, replayed in rows
    }


SEED_ORDER = [
    ("prog1", "s1_s11_s111", "1.1.1"),
    ("prog2", "s1_s11_s112", "1.1.1"),
    ("prog1", "s1_s11_s111", "1.1.2"),
    ("prog2", "s1_s11_s112", "1.1.2"),
    ("prog3", "s1_s12", "1.1"),
    ("prog1", "s1_s11_s111", "1.2.1"),
    ("prog2", "s1_s11_s112", "1.2.1"),
    ("prog1", "s1_s11_s111", "1.2.2"),
    ("prog2", "s1_s11_s112", "1.2.2"),
    ("prog3", "s1_s12", "1.2"),
    ("prog4", "s2", "1"),
]


def test_readme_simple_example(tmp_path: Path) -> None:
    """config={'LOGGING': {...}} sets the level and the log folder; STEP_* names; env variables."""
    done = run_script(tmp_path, "readme_simple.py")
    assert [row[:3] for row in ran(tmp_path)] == SEED_ORDER
    assert {row[3] for row in ran(tmp_path)} == {0}
    [(result, run_id)] = results(done.stdout)
    assert result is True
    nodes = statuses(tmp_path / "readme_simple.run.db", run_id, 0)
    assert len(nodes) == 14 and {v[1] for v in nodes.values()} == {"success"}
    folder = tmp_path / "logs" / "readme_simple" / run_id  # LOGGING.logdir
    assert "doing what prog4 is doing" in (folder / "s2@1.log").read_text()
    assert "details of what prog4 is doing" in (folder / "s2@1.log").read_text()  # DEBUG level
    assert "Summary: 11 steps: 11 success; 3 containers: 3 success" in done.stderr
    assert "SequentWarning" not in done.stderr  # LOGGING's level and logdir are read, not ignored


def test_readme_recovery_example(tmp_path: Path) -> None:
    """Sequent(run_mode=RUN_RECOVER, run_id=flow.run_id) recovers that run, rerunning the rest."""
    done = run_script(tmp_path, "readme_recovery.py")
    (first, first_id), (second, second_id) = results(done.stdout)
    assert (first, second) == (False, True) and first_id == second_id
    rows = ran(tmp_path)
    assert [row[:3] for row in rows[:8]] == SEED_ORDER[:8]
    assert rows[8:] == [
        ("prog1", "s1_s11_s111", "1.2.2", 1),
        ("prog2", "s1_s11_s112", "1.2.2", 1),
        ("prog3", "s1_s12", "1.2", 1),
        ("prog4", "s2", "1", 1),
    ]
    store = tmp_path / "readme_recovery.run.db"
    before = statuses(store, first_id, 0)
    assert before[("s1_s11_s111", "1.2.2")][1] == "failure"
    assert before[("s2", "1")][1] == "skipped"  # the original left it without a status
    after = statuses(store, first_id, 1)
    assert {v[1] for v in after.values()} == {"success"}
    reran = sorted(k for k, v in after.items() if v[0] == "step" and v[2] == "ran")
    assert reran == [
        ("s1_s11_s111", "1.2.2"),
        ("s1_s11_s112", "1.2.2"),
        ("s1_s12", "1.2"),
        ("s2", "1"),
    ]


def test_run_overrides_the_mode_for_one_run(tmp_path: Path) -> None:
    """run(run_mode=...) / run(recovery_run=...) for one run; Sequent(recovery_run=...)."""
    done = run_script(tmp_path, "run_overrides.py")
    runs = results(done.stdout)
    assert [result for result, _ in runs] == [True] * 5
    first = runs[0][1]
    assert [run_id == first for _, run_id in runs] == [True, True, False, True, True]
    # s11's policy reruns it after success; s12 (default policy) is skipped on every recover.
    assert ran(tmp_path) == [
        ("prog11", "s11", "1", 0),
        ("prog12", "s12", "1", 0),
        ("prog11", "s11", "1", 1),
        ("prog11", "s11", "1", 0),  # run() with no override: the flow's own mode, restart
        ("prog12", "s12", "1", 0),
        ("prog11", "s11", "1", 2),
        ("prog11", "s11", "1", 3),
    ]
    store = tmp_path / "run_overrides.run.db"
    for attempt in (1, 2, 3):
        nodes = statuses(store, first, attempt)
        assert nodes == {
            ("s11", "1"): ("step", "success", "ran"),
            ("s12", "1"): ("step", "success", "replayed"),
        }


def test_config_file_of_the_original(tmp_path: Path) -> None:
    """runly.conf (YAML under a tag) with keys only the original used: one warning, then a run."""
    done = run_script(tmp_path, "config_file.py")
    warnings = [line for line in done.stderr.splitlines() if "SequentWarning" in line]
    assert len(warnings) == 1, done.stderr
    for key in ("DATABASES", "shared_db", "ssh_host", "LOGGING.level_formats", "LOGGING.console"):
        assert key in warnings[0]
    assert "sleep_between_loops" not in warnings[0] and "max_concurrent" not in warnings[0]
    [(result, run_id)] = results(done.stdout)
    assert result is True  # s11's failure is handled: s12 requires its completion
    assert [row[:3] for row in ran(tmp_path)] == [
        ("prog11", "s0_s1_s11", "1.1.1"),
        ("prog12", "s0_s1_s12", "1.1.1"),  # STEP_COMPLETE fires on failure too
        ("prog11", "s0_s1_s11", "1.1.2"),
        ("prog12", "s0_s1_s12", "1.1.2"),
        ("prog21", "s0_s2_s21", "1.1.1"),
        ("prog22", "s0_s2_s22", "1.1.1"),
        ("prog3", "s0_s3", "1.1"),  # an event made by add_event on a container
        ("prog4", "s0_s4", "1.1"),  # or_ is a real OR
    ]
    nodes = statuses(tmp_path / "config_file.run.db", run_id, 0)
    assert nodes[("s0_s1_s11", "1.1.1")] == ("step", "failure", "ran")
    assert nodes[("s0_s2_s23", "1.1.1")] == ("step", "success", "ran")  # the placeholder
    assert nodes[("s0_s1", "1.1")] == ("container", "success", "ran")
    assert sum(1 for v in nodes.values() if v[1] == "success") == len(nodes) - 1


def test_serial_executor_exports_the_step_variables(tmp_path: Path) -> None:
    """task_construct='invoke': EVENTOR_*/SEQUENT_* in os.environ per step, restored after."""
    done = run_script(tmp_path, "serial_env.py")
    [(result, run_id)] = results(done.stdout)
    assert result is True
    assert ran(tmp_path) == [
        ("prog11", "s1_s11", "1.1", 0),
        ("prog12", "s1_s12", "1.1", 0),
        ("prog11", "s1_s11", "1.2", 0),
        ("prog12", "s1_s12", "1.2", 0),
        ("prog2", "s2", "1", 0),
    ]
    assert "left in environ: []" in done.stdout
    warnings = [line for line in done.stderr.splitlines() if "SequentWarning" in line]
    assert len(warnings) == 2, done.stderr  # one for Sequent(), one for add_step's arguments
    assert "arguments host, import_module" in warnings[0]
    assert "import_file (step 's1_s11')" in warnings[1]
    conn = sqlite3.connect(tmp_path / "serial.run.db")
    pids = {row[0] for row in conn.execute("SELECT pid FROM nodes WHERE kind = 'step'")}
    conn.close()
    orchestrator = int(done.stdout.split("orchestrator pid: ")[1].split()[0])
    assert pids == {orchestrator}  # the steps ran in the script's own process


def test_statuses_modes_and_fixed_behaviours(tmp_path: Path) -> None:
    """READY/ACTIVE/FAILURE/COMPLETE requirements, or_, skipped, stop_on_exception False."""
    done = run_script(tmp_path, "statuses.py")
    [(result, run_id)] = results(done.stdout)
    assert result is True  # b's failure is handled by c
    order = [row[0] for row in ran(tmp_path)]
    assert sorted(order) == ["a", "b", "c", "e", "f", "r", "v"]
    assert order[0] == "a"  # max_concurrent 1: r and v wait for a's slot
    assert order.index("c") < order.index("e") < order.index("f")
    assert order.index("b") < order.index("c")
    nodes = statuses(tmp_path / "statuses.run.db", run_id, 0)
    assert {path: v[1] for (path, _), v in nodes.items()} == {
        "a": "success",
        "r": "success",
        "v": "success",
        "b": "failure",
        "c": "success",
        "d": "skipped",
        "e": "success",
        "f": "success",
    }


def test_resource_pools(tmp_path: Path) -> None:
    """A pool of one: the steps that acquire it never overlap, even with no concurrency limit."""
    done = run_script(tmp_path, "resources.py")
    [(result, _)] = results(done.stdout)
    assert result is True
    spans: dict[str, list[float]] = {}
    for line in (tmp_path / "ran.txt").read_text().splitlines():
        name, _, stamp = line.split()
        spans.setdefault(name, []).append(float(stamp))
    ordered = sorted(spans.values())
    assert len(ordered) == 3
    for (_, end), (start, _) in zip(ordered, ordered[1:], strict=False):
        assert end <= start


def test_other_idioms_of_the_original(tmp_path: Path) -> None:
    """:memory:, a dotted config_tag, threading.Thread and mp.Process, a callable repeats, ..."""
    done = run_script(tmp_path, "misc.py")
    (first, _), (second, run_id) = results(done.stdout)
    assert first is True and second is True
    one_run = [
        ("prog11", "s1_s11", "1.1", 0),
        ("prog12", "s1_s12", "1.1", 0),
        ("prog11", "s1_s11", "1.2", 0),
        ("prog12", "s1_s12", "1.2", 0),
        ("prog2", "s2", "1", 0),
    ]
    assert ran(tmp_path) == one_run * 2
    assert "run() warnings: 1" in done.stdout
    assert "on the thread executor" in done.stderr and "on the process executor" in done.stderr
    assert not list(tmp_path.glob("*memory*"))  # ':memory:' writes no file
    nodes = statuses(tmp_path / "misc.run.db", run_id, 0)
    assert nodes[("s1", "1")] == ("container", "success", "ran")
    assert done.stderr.rstrip().endswith("Processing finished with: success ]")
