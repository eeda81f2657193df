"""Finding a store and naming a run the way the command line does (SPEC 5.4)."""

from __future__ import annotations

import logging

import pytest

import sequent as seq
from sequent.errors import RunReferenceError, StoreNotFoundError
from sequent.plan import read_store
from sequent.references import find_store, resolve_run


def test_the_store_given_wins_then_the_flow_files_then_the_variable(tmp_path):
    env = {"SEQUENT_STORE": "from-env.run.db"}
    assert find_store("given.run.db", "flow.run.db", env, tmp_path) == "given.run.db"
    assert find_store(None, "flow.run.db", env, tmp_path) == "flow.run.db"
    assert find_store(None, None, env, tmp_path) == "from-env.run.db"


def test_the_single_store_here_or_one_folder_below_is_found(tmp_path):
    below = tmp_path / "examples"
    below.mkdir()
    (below / "pitch.run.db").write_bytes(b"")
    assert find_store(None, None, {}, tmp_path) == str(below / "pitch.run.db")
    (tmp_path / "here.run.db").write_bytes(b"")
    assert find_store(None, None, {}, tmp_path) == str(tmp_path / "here.run.db")


def test_several_stores_or_none_are_errors_that_say_how_to_choose(tmp_path):
    with pytest.raises(StoreNotFoundError, match=r"no store given and none found.*--store"):
        find_store(None, None, {}, tmp_path)
    (tmp_path / "a.run.db").write_bytes(b"")
    (tmp_path / "b.run.db").write_bytes(b"")
    with pytest.raises(StoreNotFoundError, match=r"several stores here .*a\.run\.db.*--store"):
        find_store(None, None, {}, tmp_path)


def _runs(path, name, count):
    ids = []
    for _ in range(count):
        with seq.Sequent(
            name=name,
            store=str(path),
            executor="serial",
            logging_level=logging.CRITICAL,
            config={"logdir": str(path.parent / "logs")},
        ) as flow:
            flow.add_step("a", func=print)
            flow.run()
            ids.append(flow.run_id)
    return ids


def test_a_run_is_named_by_its_id_a_unique_prefix_or_latest(tmp_path):
    store_path = tmp_path / "s.run.db"
    ids = _runs(store_path, "one", 3)
    with read_store(str(store_path)) as store:
        assert resolve_run(store, "latest") == ids[-1]
        for run_id in ids:
            assert resolve_run(store, run_id) == run_id
            others = [other for other in ids if other != run_id]
            length = next(
                n for n in range(1, 9) if not any(o.startswith(run_id[:n]) for o in others)
            )
            assert resolve_run(store, run_id[:length]) == run_id
        with pytest.raises(RunReferenceError, match=r"holds no run with id 'zzz'.*latest runs are"):
            resolve_run(store, "zzz")


def test_an_ambiguous_prefix_and_latest_over_several_flows_are_errors(tmp_path):
    store_path = tmp_path / "s.run.db"
    ids = _runs(store_path, "one", 1) + _runs(store_path, "two", 16)
    # 17 ids of hexadecimal digits: two of them share their first digit
    shared = next(i[0] for i in ids if sum(o.startswith(i[0]) for o in ids) > 1)
    with read_store(str(store_path)) as store:
        with pytest.raises(RunReferenceError, match=r"'latest' is ambiguous.*'one', 'two'.*--flow"):
            resolve_run(store, "latest")
        assert resolve_run(store, "latest", "one") == ids[0]
        with pytest.raises(RunReferenceError, match=r"is ambiguous.*give more of the id"):
            resolve_run(store, shared)
