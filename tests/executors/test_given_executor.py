"""Any ``concurrent.futures.Executor`` works as ``executor=`` (issue 15's backend contract).

The seed's simple example, as a plain script, with ``executor=ThreadPoolExecutor(4)`` (and a
``ProcessPoolExecutor``, whose steps run in other processes): the documented log lines in the
documented order, ``Processing finished with: success``, every step instance a success in the
store, and the caller's executor still usable after ``flow.close()``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from test_seed_scripts import DOING, FINISHED, SIMPLE, run_script

SEED_ORDER = ["prog1", "prog2", "prog1", "prog2", "prog3"] * 2 + ["prog4"]

AFTER = """
assert pool.submit(pow, 2, 5).result() == 32, "flow.close() shut the caller's executor down"
pool.shutdown()
print("pool still usable after close")
"""


def seed_with(tmp_path: Path, setup: str, executor: str) -> str:
    body = SIMPLE.replace("@@BODY\n", setup + "\n").replace("@@CONFIG", " 'logdir': 'steplogs',")
    body = body.replace(
        "myflow=seq.Sequent(logging_level=logging.INFO,",
        f"myflow=seq.Sequent(logging_level=logging.INFO, executor={executor},",
    )
    return run_script(tmp_path, "runly00.py", body + AFTER)


@pytest.mark.parametrize(
    ("setup", "name"),
    [
        ("from concurrent.futures import ThreadPoolExecutor\npool = ThreadPoolExecutor(4)",
         "ThreadPoolExecutor"),
        ("from concurrent.futures import ProcessPoolExecutor\npool = ProcessPoolExecutor(2)",
         "ProcessPoolExecutor"),
    ],
)  # fmt: skip
@pytest.mark.slow_on("ProcessPoolExecutor")  # a script in a subprocess starting a pool
def test_seed_simple_example_on_a_plain_executor(tmp_path, setup, name):
    output = seed_with(tmp_path, setup, "pool")
    assert f"on the {name} executor" in output
    assert [prog for prog, _ in DOING.findall(output)] == SEED_ORDER
    assert FINISHED.findall(output) == ["success"]
    assert "pool still usable after close" in output
    conn = sqlite3.connect(tmp_path / "runly00.run.db")
    try:
        rows = conn.execute(
            "SELECT path, sequence, status FROM latest_nodes WHERE kind = 'step' ORDER BY path"
        ).fetchall()
        executor = conn.execute("SELECT executor FROM attempts").fetchone()[0]
    finally:
        conn.close()
    assert executor == name
    assert len(rows) == 11 and {status for _, _, status in rows} == {"success"}
    # the step's own log holds its line, once (in-process or sent back from a worker)
    logs = list((tmp_path / "steplogs").glob("**/s1_s11_s111@1.1.1.log"))
    assert len(logs) == 1
    assert logs[0].read_text().count("doing what prog1 is doing") == 1


def test_an_object_that_is_no_executor_is_refused(tmp_path):
    import sequent as seq

    flow = seq.Sequent(name="bad", store=":memory:", executor=object(),
                       config={"logdir": str(tmp_path)})  # fmt: skip
    flow.add_step("a", func=print)
    with pytest.raises(seq.SequentError, match="concurrent.futures.Executor"):
        flow.run()
    flow.close()
