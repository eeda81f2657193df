"""Every damaged piece of a store a reader can meet is a ``StoreError``, never a traceback.

One good store is recorded (a run with a failure, a returned value, a recover, and nodes made
at run time by a callable ``repeats``); each test copies it, damages one piece with plain SQL,
and runs the reading commands (and ``recover``) on it: each exits 2 with a one-line reason that
names the run and the part, and the file is byte-identical afterwards.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sequent.errors import StoreError
from sequent.store import open_store

FLOW = textwrap.dedent(
    """
    import os
    import sequent as seq

    def fine():
        return {"rows": 3}

    def flaky():
        if os.path.exists(os.environ["FAIL"]):
            raise RuntimeError("told to fail")

    flow = seq.Sequent(name="damaged", executor="serial",
                       config={"logdir": os.environ["LOGS"]})
    first = flow.add_step("first", func=fine)
    parts = flow.add_step("parts", repeats=lambda: ["eu", "us"],
                          requires=((first, seq.STEP_SUCCESS),))
    parts.add_step("load", func=fine)
    flow.add_step("flaky", func=flaky, requires=((parts, seq.STEP_SUCCESS),))
    """
)


def sequent(*args: str, folder: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FAIL": str(folder / "fail"), "LOGS": str(folder / "logs")}
    env.pop("SEQUENT_STORE", None)
    return subprocess.run(
        [sys.executable, "-c", "from sequent.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=folder,
        check=False,
    )


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, str]:
    """A good store: attempt 0 failed at ``flaky``, attempt 1 (a recover) also failed."""
    folder = tmp_path_factory.mktemp("recorded")
    (folder / "flow.py").write_text(FLOW)
    (folder / "fail").touch()
    store = folder / "good.run.db"
    for command in ("run", "recover"):
        done = sequent(command, "flow.py", "--store", str(store), folder=folder)
        assert done.returncode == 1, done.stderr
    with open_store(str(store)) as reader:
        (run,) = reader.runs()
        assert len(reader.attempts(run["run_id"])) == 2
        assert any(node["path"] == "parts_load" for node in reader.nodes(run["run_id"]))
    return store, run["run_id"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def damage(recorded: tuple[Path, str], folder: Path, *statements: str) -> Path:
    """A copy of the good store in ``folder`` with ``statements`` applied (``{run}``: its id)."""
    source, run_id = recorded
    (folder / "flow.py").write_text(FLOW)
    (folder / "fail").touch()
    store = folder / "damaged.run.db"
    shutil.copyfile(source, store)
    conn = sqlite3.connect(store, isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement.format(run=run_id))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    for suffix in ("-wal", "-shm"):
        assert not Path(f"{store}{suffix}").exists()
    return store


def recreate(table: str, drop: str) -> list[str]:
    """Statements that rebuild ``table`` without its column ``drop`` (as an old tool might)."""
    columns = ", ".join(column for column in TABLE_COLUMNS[table] if column != drop)
    return [
        "PRAGMA legacy_alter_table = ON",  # leave the views that name the table as they are
        f"CREATE TABLE _copy AS SELECT {columns} FROM {table}",
        f"DROP TABLE {table}",
        f"ALTER TABLE _copy RENAME TO {table}",
    ]


TABLE_COLUMNS = {
    "runs": ("run_id", "flow_name", "mode", "started", "ended", "result", "executor", "host",
             "pid", "user", "python", "sequent_version", "structure"),
    "attempts": ("run_id", "attempt", "mode", "started", "ended", "result", "executor", "host",
                 "pid", "structure", "logdir", "heartbeat"),
}  # fmt: skip


READERS = ("show", "report", "plan", "recover")

#: (name, statements, the commands that must refuse, words the reason must hold).
DAMAGES = [
    ("structure not JSON", ["UPDATE runs SET structure = '{{\"steps\": [' WHERE run_id = '{run}'"],
     READERS, ["{run}", "structure", "JSON"]),
    ("attempt structure not JSON",
     ["UPDATE attempts SET structure = 'garbage' WHERE run_id = '{run}' AND attempt = 1"],
     READERS, ["{run}", "structure", "attempt 1"]),
    ("structure not an object", ["UPDATE runs SET structure = '[1, 2]' WHERE run_id = '{run}'"],
     READERS, ["{run}", "structure"]),
    ("structure step without a path",
     ["UPDATE runs SET structure = json_set(structure, '$.steps[0]', json('{{\"order\": 0}}'))"
      " WHERE run_id = '{run}'"],
     READERS, ["{run}", "structure", "step"]),
    ("structure node not a triple",
     ["UPDATE runs SET structure = json_set(structure, '$.nodes[0]', 7) WHERE run_id = '{run}'"],
     READERS, ["{run}", "structure", "node"]),
    ("structure repeats malformed",
     ["UPDATE runs SET structure = json_set(structure, '$.steps[1].repeats',"
      " json('{{\"count\": \"two\"}}')) WHERE run_id = '{run}'"],
     READERS, ["{run}", "structure", "repeats"]),
    ("structure of an unknown format",
     ["UPDATE runs SET structure = json_set(structure, '$.format', 9) WHERE run_id = '{run}'"],
     READERS, ["{run}", "structure", "format 9"]),
    ("structure requires not an expression",
     ["UPDATE runs SET structure = json_set(structure, '$.steps[1].requires', 'first')"
      " WHERE run_id = '{run}'"],
     ("report", "plan", "recover"), ["{run}", "structure", "requires"]),
    ("unknown status",
     ["UPDATE events SET status = 'exploded' WHERE run_id = '{run}' AND attempt = 1 AND seq = "
      "(SELECT MAX(seq) FROM events WHERE run_id = '{run}' AND attempt = 1)"],
     READERS, ["{run}", "status", "exploded"]),
    ("time not a number",
     ["UPDATE events SET time = 'yesterday' WHERE run_id = '{run}' AND seq = 0"],
     ("show", "report"), ["{run}", "yesterday", "events"]),
    ("started not a number",
     ["UPDATE events SET started = x'00ff' WHERE run_id = '{run}' AND status = 'success'"],
     ("show", "report"), ["{run}", "started"]),
    ("sequence malformed",
     ["UPDATE events SET sequence = '1.x' WHERE run_id = '{run}' AND path = 'first'"],
     READERS, ["{run}", "sequence", "1.x"]),
    ("result not a boolean", ["UPDATE runs SET result = 'maybe' WHERE run_id = '{run}'"],
     ("runs", "show", "report"), ["{run}", "result"]),
    ("attempt started not a number",
     ["UPDATE attempts SET started = 'noon' WHERE run_id = '{run}' AND attempt = 0"],
     ("show", "report"), ["{run}", "attempt", "started"]),
    ("expansion ordinal not a number",
     ["UPDATE expansions SET ordinal = 'first' WHERE run_id = '{run}'"],
     ("report",), ["{run}", "expansion", "ordinal"]),
    ("expansion parent missing",
     ["UPDATE expansions SET parent_sequence = NULL WHERE run_id = '{run}'"],
     ("report",), ["{run}", "expansion"]),
    ("events table missing", ["DROP VIEW latest_nodes", "DROP VIEW nodes", "DROP TABLE events"],
     ("runs", *READERS), ["events"]),
    ("expansions table missing", ["DROP TABLE expansions"], ("runs", *READERS), ["expansions"]),
    ("leases table missing", ["DROP TABLE leases"], ("runs", *READERS), ["leases"]),
    ("attempts column missing", recreate("attempts", "executor"), ("runs", *READERS),
     ["attempts", "executor"]),
    ("runs column missing", recreate("runs", "flow_name"), ("runs", *READERS),
     ["runs", "flow_name"]),
]  # fmt: skip


def command(name: str, store: Path, run_id: str) -> list[str]:
    return {
        "runs": ["runs", "--store", str(store)],
        "show": ["show", run_id, "--store", str(store)],
        "report": ["report", run_id, "--store", str(store), "-o", "out.html"],
        "plan": ["plan", "flow.py", "--recover", "--store", str(store)],
        "recover": ["recover", "flow.py", "--store", str(store)],
    }[name]


@pytest.mark.slow
@pytest.mark.parametrize(
    "statements, commands, words", [d[1:] for d in DAMAGES], ids=[d[0] for d in DAMAGES]
)
def test_a_damaged_piece_is_a_one_line_store_error(recorded, tmp_path, statements, commands,
                                                   words):  # fmt: skip
    store = damage(recorded, tmp_path, *statements)
    run_id = recorded[1]
    before = digest(store)
    for name in commands:
        done = sequent(*command(name, store, run_id), folder=tmp_path)
        assert done.returncode == 2, f"{name}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, f"{name}:\n{done.stderr}"
        assert "Traceback" not in done.stderr
        for word in words:
            assert word.format(run=run_id) in lines[0], f"{name}: {word!r} not in {lines[0]!r}"
        assert digest(store) == before, f"{name} changed the store file"
    assert not (tmp_path / "out.html").exists()
    assert not (tmp_path / "logs" / "damaged" / run_id).exists()


@pytest.mark.slow  # the store is recorded by two commands in subprocesses
def test_the_python_api_raises_store_error_naming_the_run(recorded, tmp_path):
    store = damage(recorded, tmp_path, *DAMAGES[0][1])
    run_id = recorded[1]
    before = digest(store)
    with open_store(str(store)) as reader, pytest.raises(StoreError, match=run_id):
        reader.structure(run_id)
    with open_store(str(store)) as reader, pytest.raises(StoreError, match="structure"):
        reader.recovery("damaged")
    assert digest(store) == before


@pytest.mark.slow  # every command in a subprocess
def test_the_good_store_reads_with_every_command(recorded, tmp_path):
    """The control: undamaged, every command above reads the copy (recover exits 1: it fails)."""
    store = damage(recorded, tmp_path)
    run_id = recorded[1]
    for name in ("runs", "show", "report", "plan"):
        done = sequent(*command(name, store, run_id), folder=tmp_path)
        assert done.returncode == 0, f"{name}:\n{done.stderr}"
