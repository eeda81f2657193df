"""Reading never needs write access: a store in a read-only folder reads exactly as the original.

The store is copied into a folder made read-only (``chmod 555``) and read by a user without
CAP_DAC_OVERRIDE (uid 65534, see ``otheruser``), for whom the folder really is read-only:
SQLite cannot make the ``-shm`` file a WAL store needs, so the store is opened immutable.
``runs``, ``show``, ``report`` and ``plan`` print the same as on the original, and the copy is
byte-identical afterwards.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import otheruser

FLOW = textwrap.dedent(
    """
    import os
    import sequent as seq

    def fine():
        return {"rows": 3}

    def broken():
        raise ValueError("no such table")

    flow = seq.Sequent(name="archived", executor="serial",
                       config={"logdir": os.environ.get("LOGS", "logs"),
                               "log_permissions": "shared"})
    first = flow.add_step("first", func=fine)
    parts = flow.add_step("parts", repeats=lambda: ["eu", "us"],
                          requires=((first, seq.STEP_SUCCESS),))
    parts.add_step("load", func=fine)
    flow.add_step("broken", func=broken, requires=((parts, seq.STEP_SUCCESS),))
    """
)

CLI = [sys.executable, "-c", "from sequent.cli import main; main()"]


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder every user can enter (pytest's own temporary folders are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="sequent-readonly-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for folder, dirs, _ in os.walk(path):
            for name in dirs:
                os.chmod(os.path.join(folder, name), 0o755)
        shutil.rmtree(path)


def record(folder: Path) -> tuple[Path, str]:
    """A store with one failed run (attempt 0) in ``folder``; return it and the run id."""
    (folder / "flow.py").write_text(FLOW)
    store = folder / "archived.run.db"
    env = {**os.environ, "LOGS": str(folder / "logs")}
    done = subprocess.run([*CLI, "run", "flow.py", "--store", str(store)], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 1, done.stderr
    conn = sqlite3.connect(store)
    (run_id,) = conn.execute("SELECT run_id FROM runs").fetchone()
    conn.close()
    assert not Path(f"{store}-wal").exists()  # the run ended: its log was folded in
    return store, run_id


def archived(shared: Path) -> tuple[Path, str, Path]:
    """The store ``record`` made in ``shared``, its run id, and a copy in ``shared/archive``
    (still writable), for a second user to read; skips the test where there is none."""
    reason = otheruser.why_not()
    if reason:
        pytest.skip(f"no second user to read as: {reason}")
    original, run_id = record(shared)
    (shared / "archive").mkdir()
    copy = shared / "archive" / original.name
    shutil.copyfile(original, copy)
    return original, run_id, copy


def commands(store: Path, run_id: str, report: Path) -> dict[str, list[str]]:
    return {
        "runs": ["runs", "--store", str(store)],
        "runs --json": ["runs", "--json", "--store", str(store)],
        "show": ["show", run_id, "--store", str(store)],
        "show --json": ["show", run_id, "--json", "--store", str(store)],
        "report": ["report", run_id, "--store", str(store), "-o", str(report)],
        "plan": ["plan", "flow.py", "--recover", "--store", str(store)],
    }


def normal(text: str, *paths: Path) -> str:
    for path in paths:
        text = text.replace(str(path), "<path>")
    return text


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_store_in_a_read_only_folder_reads_exactly_as_the_original(shared):
    original, run_id, copy = archived(shared)
    archive = copy.parent
    (archive / "flow.py").write_text(FLOW)
    archive.chmod(0o555)
    out = shared / "out"
    out.mkdir()
    out.chmod(0o777)
    before = hashlib.sha256(copy.read_bytes()).hexdigest()
    env = {"LOGS": str(out / "logs")}
    mine = commands(original, run_id, out / "original.html")
    theirs = commands(copy, run_id, out / "copy.html")
    for name in mine:
        expected = subprocess.run(
            [*CLI, *mine[name]], cwd=shared, env={**os.environ, **env}, capture_output=True,
            text=True, timeout=120, check=False,
        )  # fmt: skip
        got = otheruser.run([*CLI, *theirs[name]], env=env, cwd=archive)
        assert expected.returncode == 0, f"{name} on the original:\n{expected.stderr}"
        assert got.returncode == 0, f"{name} on the read-only copy:\n{got.stderr}"
        assert normal(got.stdout, copy, out / "copy.html") == normal(
            expected.stdout, original, out / "original.html"
        ), name
    pages = (out / "original.html", out / "copy.html")
    html = [normal(page.read_text(), copy, original) for page in pages]
    assert html[0] == html[1]
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in archive.iterdir()) == ["archived.run.db", "flow.py"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_read_only_copy_whose_write_ahead_log_holds_changes_is_refused_not_misread(shared):
    original, run_id, copy = archived(shared)
    archive = copy.parent
    # Changes left in a write-ahead log beside the copy (as a copy taken while a run recorded
    # would have); reading the file alone would miss them.
    conn = sqlite3.connect(copy, isolation_level=None)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("UPDATE runs SET flow_name = 'renamed'")
    wal = Path(f"{copy}-wal").read_bytes()
    conn.close()
    # Closing folded the log into the file; put the unfolded state back: the old file, its log.
    shutil.copyfile(original, copy)
    Path(f"{copy}-wal").write_bytes(wal)
    archive.chmod(0o555)
    before = hashlib.sha256(copy.read_bytes()).hexdigest()
    got = otheruser.run([*CLI, "runs", "--store", str(copy)], cwd=archive)
    assert got.returncode == 2, got.stdout + got.stderr
    assert "write-ahead log" in got.stderr and "Traceback" not in got.stderr
    assert len(got.stderr.strip().splitlines()) == 1
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == before
