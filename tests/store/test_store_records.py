"""What the store records, how (schema, transactions), and the read helpers the CLI uses."""

from __future__ import annotations

import json
import math
import re
import sqlite3
from pathlib import Path

import pytest

import sequent as seq
from sequent.compiler import NodeKey
from sequent.store import APPLICATION_ID, SqliteStore, encode_value, open_store
from sequent.store.schema import EVENT_COLUMNS

from . import storehelp


def flow_on(store: Path | str, mode=seq.RunMode.restart, **options) -> seq.Sequent:
    return storehelp.flow_on(store, mode, **{"name": "records", **options})


class Thing:
    """A value that is not JSON."""

    def __repr__(self) -> str:
        return "Thing(42)"


def returns(value):
    return value


def test_a_file_store_is_created_by_the_first_run_with_its_schema(tmp_path):
    path = tmp_path / "new.run.db"
    reader = open_store(str(path))
    assert (reader.exists, reader.runs(), path.exists()) == (False, [], False)
    reader.close()
    with flow_on(path) as flow:
        flow.add_step("a", func=returns, args=(1,))
        assert flow.run() is True
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT version FROM sequent_migrations").fetchall() == [(1,), (2,)]
        names = dict(conn.execute("SELECT name, type FROM sqlite_master"))
        for table in ("runs", "attempts", "events", "expansions", "leases", "sequent_migrations"):
            assert names[table] == "table"
        assert names["nodes"] == names["latest_nodes"] == "view"
    finally:
        conn.close()


def test_history_is_kept_and_run_ids_are_short(tmp_path):
    path = tmp_path / "flow.run.db"
    ids = []
    for name in ("one", "two", "one"):
        with flow_on(path, name=name) as flow:
            flow.add_step("a", func=returns, args=(name,))
            assert flow.run() is True
            ids.append(flow.run_id)
    assert len(set(ids)) == 3 and all(re.fullmatch(r"[0-9a-f]{8}", i) for i in ids)
    reader = open_store(str(path))
    try:
        assert [run["run_id"] for run in reader.runs()] == ids[::-1]  # newest first
        assert [run["run_id"] for run in reader.runs("one")] == [ids[2], ids[0]]
        run = reader.run(ids[1])
        assert (run["flow_name"], run["mode"], run["result"], run["attempts"]) == (
            "two", "restart", True, 1,
        )  # fmt: skip
        assert run["started"] <= run["ended"]
        with pytest.raises(seq.RecoveryError, match="no run with id 'zzz'") as caught:
            reader.run("zzz")
        assert isinstance(caught.value, LookupError)
        for helper in (reader.attempts, reader.nodes, reader.events, reader.structure):
            with pytest.raises(LookupError):
                helper("zzz")
    finally:
        reader.close()


def flaky_then_ok(counter: list[int]) -> str:
    counter.append(1)
    if len(counter) < 3:
        raise ValueError(f"try {len(counter)}")
    return "finally"


def test_nodes_view_and_helper_agree_on_a_run_with_everything(tmp_path):
    path = tmp_path / "flow.run.db"
    with flow_on(path, config={"stop_on_exception": False}) as flow:
        ok = flow.add_step("ok", func=returns, args=({"rows": [1, 2], "name": "x"},))
        flow.add_step("odd", func=returns, args=(Thing(),), requires=((ok, seq.STEP_SUCCESS),))
        flow.add_step("nan", func=returns, args=(math.nan,))
        bad = flow.add_step("bad", func=returns, args=(1, 2))
        flow.add_step("never", func=returns, args=(1,), requires=((bad, seq.STEP_SUCCESS),))
        flow.add_step("flaky", func=flaky_then_ok, args=([],), retries=2)
        box = flow.add_step("box", repeats=["p", "q"])
        box.add_step("inner", func=returns, args=(None,))
        assert flow.run() is False
        run_id = flow.run_id
    reader = open_store(str(path))
    try:
        rows = {f"{r['path']}/{r['sequence']}": r for r in reader.nodes(run_id)}
        events = reader.events(run_id)
    finally:
        reader.close()
    assert list(rows) == [
        "ok/1", "odd/1", "nan/1", "bad/1", "never/1", "flaky/1", "box/1", "box_inner/1.1",
        "box_inner/1.2",
    ]  # fmt: skip
    assert (rows["ok/1"]["value"], rows["ok/1"]["value_format"]) == (
        '{"rows": [1, 2], "name": "x"}', "json",
    )  # fmt: skip
    assert (rows["odd/1"]["value"], rows["odd/1"]["value_format"]) == ("Thing(42)", "repr")
    assert (rows["nan/1"]["value"], rows["nan/1"]["value_format"]) == ("nan", "repr")
    assert rows["box_inner/1.1"]["value"] == "null"
    assert rows["bad/1"]["status"] == "failure" and rows["bad/1"]["value"] is None
    assert rows["bad/1"]["error"].startswith("TypeError: returns() takes 1 positional argument")
    assert "Traceback (most recent call last)" in rows["bad/1"]["traceback"]
    assert rows["never/1"]["status"] == "skipped"
    assert (rows["flaky/1"]["status"], rows["flaky/1"]["retry"]) == ("success", 2)
    assert (rows["box/1"]["kind"], rows["ok/1"]["kind"]) == ("container", "step")
    for row in rows.values():
        if row["kind"] == "step" and row["status"] in ("success", "failure"):
            assert row["pid"] and row["host"] and row["executor"] == "thread"
            assert row["ready"] <= row["started"] + 1e-3 and row["started"] <= row["ended"]
            assert row["duration"] == pytest.approx(row["ended"] - row["started"])
    flaky = [(e["status"], e["retry"], e["error"]) for e in events if e["path"] == "flaky"]
    assert flaky == [
        ("ready", 0, None),
        ("active", 0, None),
        ("failure", 0, "ValueError: try 1"),
        ("failure", 1, "ValueError: try 2"),
        ("success", 2, None),
    ]

    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        view = {f"{r['path']}/{r['sequence']}": dict(r) for r in conn.execute(
            "SELECT * FROM nodes WHERE run_id = ?", (run_id,)
        )}  # fmt: skip
        latest = conn.execute("SELECT COUNT(*) FROM latest_nodes").fetchone()[0]
    finally:
        conn.close()
    assert latest == len(view) == len(rows)
    for key, row in rows.items():
        for column, value in view[key].items():
            if column == "replayed":
                value = bool(value)
            if isinstance(value, float):
                assert row[column] == pytest.approx(value), (key, column)
            else:
                assert row[column] == value, (key, column)


def test_values_are_json_or_repr_never_pickled():
    assert encode_value(None) == ("null", "json")
    assert encode_value((1, "a")) == ('[1, "a"]', "json")
    assert encode_value({"k": 1.5}) == ('{"k": 1.5}', "json")
    assert encode_value(Thing()) == ("Thing(42)", "repr")
    assert encode_value(b"\x00") == ("b'\\x00'", "repr")
    circular: list = []
    circular.append(circular)
    assert encode_value(circular) == ("[[...]]", "repr")

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert encode_value(Broken()) == ("<Broken whose repr raised RuntimeError>", "repr")


def test_callable_repeats_are_recorded_as_expansions(tmp_path):
    path = tmp_path / "flow.run.db"
    with flow_on(path) as flow:
        box = flow.add_step("box", repeats=lambda: ["x", "y", "z"])
        box.add_step("leaf", func=returns, args=(0,))
        assert flow.run() is True
        run_id = flow.run_id
    reader = open_store(str(path))
    try:
        structure = reader.structure(run_id)
        rows = reader.nodes(run_id)
    finally:
        reader.close()
    (box,) = [step for step in structure["steps"] if step["path"] == "box"]
    assert box["kind"] == "container" and "callable" in box["repeats"]
    expanded = [(n["path"], n["sequence"], n["item"]) for n in structure["nodes"] if n["expanded"]]
    assert expanded == [
        ("box_leaf", "1.1", "'x'"), ("box_leaf", "1.2", "'y'"), ("box_leaf", "1.3", "'z'"),
    ]  # fmt: skip
    assert [(r["path"], r["sequence"], r["status"]) for r in rows] == [
        ("box", "1", "success"),
        ("box_leaf", "1.1", "success"),
        ("box_leaf", "1.2", "success"),
        ("box_leaf", "1.3", "success"),
    ]


def test_structure_describes_the_flow_without_its_code(tmp_path):
    path = tmp_path / "flow.run.db"
    pool = seq.ResourcePool("db", policy={"resource_limit": 2}).load()
    with flow_on(path) as flow:
        a = flow.add_step("a", func=returns, args=(1,), retries=1, timeout=30)
        outer = flow.add_step("outer", repeats=[1, 2], requires=seq.or_((a, seq.STEP_SUCCESS),))
        outer.add_step(
            "leaf",
            func=returns,
            args=(2,),
            acquires=[(pool, 1)],
            recovery={seq.StepStatus.success: seq.StepReplay.rerun},
        )
        assert flow.run() is True
        run_id = flow.run_id
    conn = sqlite3.connect(path)
    try:
        (text,) = conn.execute("SELECT structure FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    finally:
        conn.close()
    raw = json.loads(text)  # what plain SQL sees: json_extract(structure, '$.steps') ...
    assert raw["flow"] == "records" and raw["format"] == 3 and "nodes" not in raw
    assert raw["steps"][1]["items"] == ["1", "2"]  # each definition once, with its expansion
    steps = {step["path"]: step for step in open_store(str(path)).structure(run_id)["steps"]}
    assert steps["a"] == {
        "path": "a", "name": "a", "parent": None, "kind": "step", "order": 0,
        "func": f"{__name__}.returns", "retries": 1, "timeout": 30.0,
    }  # fmt: skip
    assert steps["outer"]["requires"] == {"any": [{"step": "a", "status": "success"}]}
    assert steps["outer"]["repeats"] == {"count": 2}
    assert steps["outer_leaf"]["parent"] == "outer" and steps["outer_leaf"]["name"] == "leaf"
    assert steps["outer_leaf"]["acquires"] == [["db", 1]]
    assert steps["outer_leaf"]["recovery"] == {"success": "rerun"}


def test_a_round_is_committed_in_one_statement(tmp_path):
    """The hot path: node() buffers, flush() commits the round at once; nothing when empty."""
    store = SqliteStore(str(tmp_path / "flow.run.db"))
    flow = flow_on(tmp_path / "unused.run.db")
    box = flow.add_step("box", repeats=range(12))
    box.add_step("leaf", func=returns, args=(0,))
    plan = flow.compile()
    session = store.begin(plan, flow_name="records", mode=seq.RunMode.restart, executor="thread")
    assert store._conn is not None
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    session.flush()
    assert statements == []
    for status in (seq.StepStatus.ready, seq.StepStatus.active):
        session.node(NodeKey("box", "1"), status)
    session.node(NodeKey("box_leaf", "1.1"), seq.StepStatus.ready)
    session.flush()
    assert len(statements) == 1 and statements[0].startswith("INSERT INTO events")
    statements.clear()
    for ordinal in range(1, 13):  # a bigger round: one transaction of executemany
        session.node(NodeKey("box_leaf", f"1.{ordinal}"), seq.StepStatus.skipped)
    session.flush()
    assert statements[0] == "BEGIN IMMEDIATE" and statements[-1] == "COMMIT"
    assert sum(s.startswith("INSERT INTO events") for s in statements) == 12
    store._conn.set_trace_callback(None)
    rows = store._conn.execute(
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM events ORDER BY attempt, seq"
    ).fetchall()
    assert [r[2] for r in rows] == list(range(15))
    assert [(r[3], r[4], r[6]) for r in rows[:3]] == [
        ("box", "1", "ready"), ("box", "1", "active"), ("box_leaf", "1.1", "ready"),
    ]  # fmt: skip
    assert len(rows) == 15 and {r[0] for r in rows} == {session.run_id}
    store.close()


def test_a_dependent_step_starts_after_its_requirement_is_committed(tmp_path):
    """SPEC 4.4: when b runs, a's success and b's own start are already in the file."""
    path = tmp_path / "flow.run.db"
    seen = {}

    def look() -> None:
        conn = sqlite3.connect(path)
        try:
            seen.update(
                conn.execute(
                    "SELECT path, status FROM nodes WHERE run_id = ?", (seq.current().run_id,)
                ).fetchall()
            )
        finally:
            conn.close()

    with flow_on(path) as flow:
        a = flow.add_step("a", func=returns, args=(1,))
        flow.add_step("b", func=look, requires=((a, seq.STEP_SUCCESS),))
        assert flow.run() is True
    assert seen == {"a": "success", "b": "active"}


def test_memory_store_is_sqlite_too(tmp_path):
    flow = flow_on(":memory:", logs=tmp_path / "logs")
    flow.add_step("a", func=returns, args=(1,))
    with flow:
        assert flow.run() is True
        store = flow._store
        assert isinstance(store, SqliteStore) and store.path == ":memory:"
        (row,) = store.nodes(flow.run_id)
        assert (row["path"], row["status"], row["value"]) == ("a", "success", "1")


def fails() -> None:
    raise RuntimeError("still failing")


def test_each_attempt_keeps_the_structure_it_ran(tmp_path):
    path = tmp_path / "flow.run.db"
    shapes = [("a", "b"), ("a", "b", "c"), ("a", "b"), ("a", "b")]
    for attempt, names in enumerate(shapes):
        mode = seq.RunMode.restart if attempt == 0 else seq.RunMode.recover
        with flow_on(path, mode) as flow:
            for name in names:
                flow.add_step(name, func=fails if name == "b" else returns, args=())
            assert flow.run() is False
            run_id = flow.run_id
    reader = open_store(str(path))
    try:
        for attempt, names in enumerate(shapes):
            nodes = reader.structure(run_id, attempt=attempt)["nodes"]
            assert tuple(node["path"] for node in nodes) == names
        assert [n["path"] for n in reader.structure(run_id)["nodes"]] == ["a", "b"]
    finally:
        reader.close()
    stored = [row[0] is not None for row in sqlite3.connect(path).execute(
        "SELECT structure FROM attempts ORDER BY attempt"
    )]  # fmt: skip
    assert stored == [False, True, True, False]  # NULL: as the attempt before
