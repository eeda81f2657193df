"""Run and step log files (SPEC 3.7): where they are, the seed's line format, what goes where."""

from __future__ import annotations

import logging
import os
import re
import time

import pytest

import sequent as seq
from sequent.logs import run_log_dir, step_log_path

S = seq.StepStatus


def backend_available(name: str) -> str | None:
    """None when executor ``name`` can run here, else why not.

    (``from conftest import ...`` picks whichever conftest module was imported last, e.g.
    tests/store/conftest.py when the whole suite is collected, so the check lives here.)
    """
    if name not in ("process", "loky", "dask"):
        return None
    try:
        __import__(f"sequent.executors.{name}")
    except ImportError as exc:
        return f"executor {name!r} unavailable: {exc}"
    return None


#: ``[ 2016-12-07 11:14:29,761 ][ INFO ][ message ]``; a message may span lines (a traceback).
LINE = re.compile(r"^\[ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \]\[ (\w+) \]\[ (.*?) \]$", re.S)
START = re.compile(r"^\[ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \]\[ ", re.M)


def records(text):
    """Split a log file into its records (a record continues until the next line's stamp)."""
    starts = [match.start() for match in START.finditer(text)]
    assert starts and starts[0] == 0, text[:200]
    chunks = [text[a:b].rstrip("\n") for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]
    parsed = []
    for chunk in chunks:
        match = LINE.match(chunk)
        assert match, f"not in the seed's format: {chunk!r}"
        parsed.append((match.group(1), match.group(2)))
    return parsed


def by_env_logger(word):
    """Log through the logger the environment names (what program steps and workers use)."""
    name = os.environ.get("SEQUENT_LOGGER_NAME")
    source = "environment"
    if name is None:  # in-process executors share one environment: the context says it
        name, source = seq.current().logger_name, "context"
    logging.getLogger(name).info("%s via %s %s", word, source, name)
    time.sleep(0.02)  # overlap with the other steps when they run at once
    logging.getLogger(name).info("%s done", word)
    return word


def fails(word):
    raise ValueError(f"{word} is broken")


@pytest.mark.parametrize("executor", ["serial", "thread", "process"])
def test_each_step_instance_logs_to_its_own_file(executor, make_flow, tmp_path):
    reason = backend_available(executor)
    if reason:
        pytest.skip(reason)
    flow = make_flow(executor, name="chat", logging_level=logging.INFO, max_concurrent=4)
    box = flow.add_step("box", repeats=["x", "y", "z"])
    box.add_step("talk", func=by_env_logger, args=("hello",))
    flow.add_step("solo", func=by_env_logger, args=("alone",))
    assert flow.run() is True
    folder = run_log_dir(tmp_path / "logs", "chat", flow.run_id)
    assert folder == tmp_path / "logs" / "chat" / flow.run_id
    names = sorted(path.name for path in folder.iterdir())
    assert names == [
        "box_talk@1.1.log",
        "box_talk@1.2.log",
        "box_talk@1.3.log",
        "run.log",
        "solo@1.log",
    ]
    source = "environment" if executor in ("process", "serial") else "context"
    for sequence in ("1.1", "1.2", "1.3"):
        text = step_log_path(folder, "box_talk", sequence).read_text()
        assert records(text) == [
            ("INFO", f"hello via {source} sequent.chat"),  # the logger: sequent.<flow name>
            ("INFO", "hello done"),
        ]
    assert records((folder / "solo@1.log").read_text()) == [
        ("INFO", f"alone via {source} sequent.chat"),
        ("INFO", "alone done"),
    ]
    run_log = records((folder / "run.log").read_text())
    messages = [message for _, message in run_log]
    assert messages.count(f"hello via {source} sequent.chat") == 3
    assert messages.count("alone done") == 1
    assert messages[0].startswith("Sequent store file: ")
    assert messages[-1] == "Processing finished with: success"


def test_a_failed_run_logs_the_traceback_and_ends_with_failure(make_flow, tmp_path):
    flow = make_flow("serial", name="broken", logging_level=logging.INFO)
    first = flow.add_step("first", func=fails, args=("first",))
    flow.add_step("second", func=by_env_logger, args=("never",), requires=((first, S.success),))
    assert flow.run() is False
    folder = run_log_dir(tmp_path / "logs", "broken", flow.run_id)
    run_log = records((folder / "run.log").read_text())
    assert run_log[-1] == ("INFO", "Processing finished with: failure")
    errors = [message for level, message in run_log if level == "ERROR"]
    assert len(errors) == 1
    assert errors[0].startswith("[ Step first/1 ] failed: ValueError: first is broken\n")
    assert "Traceback (most recent call last):" in errors[0]
    assert errors[0].endswith("ValueError: first is broken")  # inside the brackets
    assert not (folder / "second@1.log").exists()


def test_the_flow_logging_level_filters_the_run_log(make_flow, tmp_path):
    def chatter():
        logging.getLogger(seq.current().logger_name).debug("debug detail")
        logging.getLogger(seq.current().logger_name).info("info detail")

    quiet = make_flow("serial", name="quiet", logging_level=logging.INFO)
    quiet.add_step("a", func=chatter)
    assert quiet.run() is True
    folder = run_log_dir(tmp_path / "logs", "quiet", quiet.run_id)
    text = (folder / "run.log").read_text()
    assert "info detail" in text and "debug detail" not in text
    loud = make_flow("serial", name="loud", logging_level=logging.DEBUG)
    loud.add_step("a", func=chatter)
    assert loud.run() is True
    text = (run_log_dir(tmp_path / "logs", "loud", loud.run_id) / "run.log").read_text()
    assert "debug detail" in text


def test_a_recover_logs_into_the_same_run_folder(tmp_path):
    store = tmp_path / "again.run.db"
    marker = tmp_path / "fail"
    marker.touch()

    def maybe():
        if marker.exists():
            raise RuntimeError("marker present")
        logging.getLogger(seq.current().logger_name).info("worked")

    def build(mode):
        flow = seq.Sequent(
            name="again",
            store=str(store),
            run_mode=mode,
            executor="serial",
            config={"logdir": str(tmp_path / "logs")},
        )
        flow.add_step("maybe", func=maybe)
        return flow

    first = build(seq.RunMode.restart)
    assert first.run() is False
    first.close()
    marker.unlink()
    second = build(seq.RunMode.recover)
    assert second.run() is True
    second.close()
    assert second.run_id == first.run_id
    folder = run_log_dir(tmp_path / "logs", "again", first.run_id)
    finished = [
        message
        for _, message in records((folder / "run.log").read_text())
        if message.startswith("Processing finished with")
    ]
    assert finished == ["Processing finished with: failure", "Processing finished with: success"]
    assert records((folder / "maybe@1.log").read_text())[-1] == ("INFO", "worked")


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR])
@pytest.mark.parametrize("works", [True, False])
def test_the_run_log_always_ends_with_the_closing_line(level, works, make_flow, tmp_path):
    """SPEC 3.7: whatever ``logging_level`` filters, the run log's last line is the result."""
    flow = make_flow("serial", name="closing", logging_level=level)
    flow.add_step("a", func=by_env_logger if works else fails, args=("a",))
    assert flow.run() is works
    folder = run_log_dir(tmp_path / "logs", "closing", flow.run_id)
    run_log = records((folder / "run.log").read_text())
    word = "success" if works else "failure"
    assert run_log[-1] == ("INFO", f"Processing finished with: {word}")
    if level >= logging.WARNING:  # the level still filters everything else
        assert all(found != "INFO" for found, _ in run_log[:-1]), run_log
