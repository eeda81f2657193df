"""The original's idioms in-process: what is accepted, what is ignored with a warning, and bad
input that stays bad (a ``SequentError`` naming the culprit, with a hint, and nothing written)."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import pytest

import sequent as seq
from sequent import ConfigError, DefinitionError, DefinitionTypeError, StoreError


def step(*args: Any, **kwargs: Any) -> None:
    return None


def flow_in(tmp_path: Path, **options: Any) -> seq.Sequent:
    options.setdefault("store", str(tmp_path / "compat.run.db"))
    options.setdefault("executor", "serial")
    config = dict(options.pop("config", {}))
    config.setdefault("logdir", str(tmp_path / "logs"))
    return seq.Sequent(name="compat", config=config, **options)


def nothing_written(tmp_path: Path) -> None:
    assert not (tmp_path / "compat.run.db").exists()
    assert not (tmp_path / "logs").exists()


# -- bad input stays bad ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config, culprit, hint",
    [
        ({"max_concurent": 2}, "'max_concurent'", "did you mean 'max_concurrent'"),
        ({"LOGGING": {"loging_level": 10}}, "'loging_level'", "did you mean 'logging_level'"),
        ({"shared_dbs": True}, "'shared_dbs'", "did you mean 'shared_db'"),
    ],
)
def test_an_unknown_config_key_is_refused(tmp_path, config, culprit, hint):
    with pytest.raises(ConfigError) as caught:
        flow_in(tmp_path, config=config)
    assert isinstance(caught.value, ValueError)
    assert culprit in str(caught.value) and hint in str(caught.value)
    nothing_written(tmp_path)


def test_an_unknown_add_step_keyword_is_refused(tmp_path):
    flow = flow_in(tmp_path)
    with pytest.raises(DefinitionTypeError, match="'require' \\(did you mean 'requires'\\?\\)"):
        flow.add_step("s1", func=step, require=())
    with pytest.raises(DefinitionTypeError, match="'import_modules' \\(did you mean"):
        flow.add_step("s1", func=step, import_modules="x")
    nothing_written(tmp_path)


def test_unknown_sequent_and_run_arguments_are_refused(tmp_path):
    with pytest.raises(DefinitionTypeError, match="'run_ids' \\(did you mean 'run_id'\\?\\)"):
        flow_in(tmp_path, run_ids="abc")
    flow = flow_in(tmp_path)
    flow.add_step("s1", func=step)
    with pytest.raises(DefinitionTypeError, match="'run_mod' \\(did you mean 'run_mode'\\?\\)"):
        flow.run(run_mod=seq.RUN_RECOVER)
    with pytest.raises(DefinitionTypeError, match="run_mode"):
        flow.run(run_mode="recover")
    nothing_written(tmp_path)


def test_recovery_run_and_run_id_must_agree(tmp_path):
    with pytest.raises(DefinitionError, match="recovery_run='a1'.*run_id='b2'.*one of them"):
        flow_in(tmp_path, run_mode=seq.RUN_RECOVER, recovery_run="a1", run_id="b2")
    nothing_written(tmp_path)


def test_a_store_naming_a_database_entry_is_refused(tmp_path):
    config = {"DATABASES": {"pgdb2": {"dialect": "postgresql", "host": "db1"}}}
    with pytest.raises(StoreError, match="'pgdb2'.*postgresql.*store= a file path"):
        flow_in(tmp_path, store="pgdb2", config=config)
    assert not (tmp_path / "pgdb2").exists()


def test_logging_must_be_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="LOGGING must be a mapping"):
        flow_in(tmp_path, config={"LOGGING": 10})


def test_step_config_keys_of_the_original_are_ignored_others_refused(tmp_path):
    flow = flow_in(tmp_path)
    with pytest.raises(ConfigError, match="'s2'.*'sleep_between_loops'"):
        flow.add_step("s2", func=step, config={"sleep_between_loops": 1})
    flow.add_step("s1", func=step, config={"ssh_host": "box", "stop_on_exception": False})
    with pytest.warns(seq.SequentWarning, match="ssh_host \\(step 's1'\\)"):
        assert flow.run() is True


# -- accepted -----------------------------------------------------------------------------------


def test_logging_section_sets_level_and_logdir(tmp_path):
    folder = tmp_path / "original-logs"
    config = {"LOGGING": {"logging_level": logging.WARNING, "logdir": str(folder)}}
    flow = seq.Sequent(name="compat", store=str(tmp_path / "c.run.db"), config=config)
    assert flow.logging_level == logging.WARNING and flow.config["logdir"] == str(folder)
    explicit = seq.Sequent(store=":memory:", logging_level="DEBUG", config=config)
    assert explicit.logging_level == logging.DEBUG  # the argument wins over the section
    assert seq.Sequent(store=":memory:").logging_level == logging.INFO


def test_only_the_original_keys_warn_once(tmp_path):
    config = {"shared_db": True, "LOGGING": {"datefmt": "%H", "logging_level": 20}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        flow_in(tmp_path, config=config, host="box", remotes=[])
    assert len(caught) == 1 and caught[0].category is seq.SequentWarning
    text = str(caught[0].message)
    assert "arguments host, remotes" in text and "config keys LOGGING.datefmt, shared_db" in text
    assert caught[0].filename == __file__  # points at the user's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flow_in(tmp_path, config={"sleep_between_loops": 0.05, "LOGGING": {"logging_level": 10}})


def test_config_files_of_any_suffix_but_toml_are_yaml(tmp_path):
    (tmp_path / "runly.conf").write_text("SEQUENT:\n  max_concurrent: 3\n  logdir: ~/flowlogs\n")
    flow = seq.Sequent(store=":memory:", config=str(tmp_path / "runly.conf"), config_tag="SEQUENT")
    assert flow.config["max_concurrent"] == 3
    assert flow.config["logdir"] == os.path.expanduser("~/flowlogs")
    (tmp_path / "flow.toml").write_text("[SEQUENT]\nmax_concurrent = 4\n")
    flow = seq.Sequent(store=":memory:", config=str(tmp_path / "flow.toml"), config_tag="SEQUENT")
    assert flow.config["max_concurrent"] == 4
    (tmp_path / "flow.ini").write_text("[sequent]\nmax_concurrent = 2\n")
    with pytest.raises(ConfigError, match="flow.ini.*as YAML.*not named \\*.toml"):
        seq.Sequent(store=":memory:", config=str(tmp_path / "flow.ini"))


def test_add_event_on_a_container_is_the_flows(tmp_path):
    flow = flow_in(tmp_path)
    box = flow.add_step("box")
    a = box.add_step("a", func=step)
    b = box.add_step("b", func=step)
    event = box.add_event(((a, seq.STEP_SUCCESS), (b, seq.STEP_COMPLETE)))
    assert isinstance(event, seq.Event) and event.flow is flow
    box.add_step("c", func=step, requires=(event,))
    assert flow.run() is True
    rows = flow._store.nodes(flow.run_id)
    assert [r["status"] for r in rows if r["path"] == "box_c"] == ["success"]


def test_placeholders_and_one_item_repeats_on_a_leaf(tmp_path):
    flow = flow_in(tmp_path)
    seen = []
    flow.add_step("first", repeats=[1])  # neither func nor children: a no-op that succeeds
    flow.add_step("leaf", func=lambda: seen.append(seq.current().sequence), repeats=["only"])
    box = flow.add_step("box", repeats=[1])
    box.add_step("inner", func=lambda: seen.append(seq.current().sequence))
    assert flow.run() is True
    assert seen == ["1", "1.1"]
    rows = {(r["path"], r["sequence"]): r["status"] for r in flow._store.nodes(flow.run_id)}
    assert rows == {
        ("first", "1"): "success",
        ("leaf", "1"): "success",
        ("box", "1"): "success",
        ("box_inner", "1.1"): "success",
    }


def test_empty_requires_and_hosts_of_the_original(tmp_path):
    flow = flow_in(tmp_path)
    flow.add_step("a", func=step, requires={}, hosts=[], args=[], kwargs={})
    flow.add_step("b", func=step, requires=None)
    assert flow.run() is True


def test_serial_steps_see_and_restore_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EVENTOR_STEP_NAME", "outer")
    monkeypatch.delenv("SEQUENT_STEP_NAME", raising=False)
    flow = flow_in(tmp_path, config={"task_construct": "invoke"})
    seen = []

    def look() -> None:
        seen.append((os.environ["SEQUENT_STEP_NAME"], os.environ["EVENTOR_STEP_SEQUENCE"],
                     os.environ["SEQUENT_RUN_ID"]))

    box = flow.add_step("box", repeats=[1, 2])
    box.add_step("look", func=look)
    assert flow.run() is True
    assert seen == [("box_look", "1.1", flow.run_id), ("box_look", "1.2", flow.run_id)]
    assert os.environ["EVENTOR_STEP_NAME"] == "outer" and "SEQUENT_STEP_NAME" not in os.environ


def test_run_overrides_are_for_one_run(tmp_path):
    flow = flow_in(tmp_path)
    flow.add_step("a", func=step)
    assert flow.run() is True
    first = flow.run_id
    assert flow.run(run_mode=seq.RUN_RECOVER, run_id=first) is True
    assert flow.run_id == first and flow.run_mode is seq.RUN_RESTART and flow.recovery_run is None
    assert flow.run() is True and flow.run_id != first
    with pytest.warns(seq.SequentWarning, match="run\\(\\): ignoring arguments host"):
        assert flow.run(run_mode=seq.RUN_RECOVER, recovery_run=first, host="box") is True
    assert [a["attempt"] for a in flow._store.attempts(first)] == [0, 1, 2]


def test_the_summary_counts_steps_and_containers_apart(tmp_path, caplog):
    flow = flow_in(tmp_path)
    box = flow.add_step("box", repeats=[1, 2])
    bad = box.add_step("bad", func=lambda: 1 / 0)
    box.add_step("after", func=step, requires=((bad, seq.STEP_SUCCESS),))
    flow.add_step("end", func=step, requires=((box, seq.STEP_SUCCESS),))
    with caplog.at_level(logging.INFO, logger="sequent"):
        assert flow.run() is False
    text = caplog.text
    # iteration 2 never starts: its two steps are counted as not started
    assert "Summary: 5 steps: 1 failure, 2 skipped, 2 not started; 1 container: 1 failure" in text
    assert "Failure: box_bad/1.1 (containers: box/1)" in text


def test_what_the_table_marks_refused(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        seq.Sequent(store=":memory:", config="max_concurrent: 2")  # YAML text, not a file
    flow = seq.Sequent(store=":memory:")
    assert not hasattr(flow, "program_repr")
    assert not hasattr(seq.StepStatus, "allocate") and not hasattr(seq.StepStatus, "fueled")
    assert not hasattr(seq, "RUN_CONTINUE") and not hasattr(seq.RunMode, "continue_")
    with pytest.raises(DefinitionError, match="'leaf'.*child step"):
        flow.add_step("leaf", func=step, repeats=[1, 2])
        flow.compile()


@pytest.mark.parametrize(
    ("construct", "backend"),
    [
        ("mp.Process", "process"),
        ("Process", "process"),
        ("multiprocessing.Process", "process"),
        ("multiprocessing", "process"),
        ("Thread", "thread"),
        ("threading.Thread", "thread"),
        ("threading", "thread"),
        ("invoke", "serial"),
    ],
)
def test_task_construct_names_the_way_the_original_was_written(construct, backend):
    from sequent.executors import backend_name

    assert backend_name(construct) == backend
