"""Heavy imports happen where they are used: ``import sequent`` loads neither networkx nor
sqlite-utils, and a run on an existing store loads no sqlite-utils (only creating or migrating a
store needs it). Checked in fresh interpreters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("networkx", "sqlite_utils", "dask", "distributed", "rich", "yaml", "loky")


def loaded_after(code: str, cwd: Path) -> list[str]:
    probe = f"import sys\n{code}\nimport json\nprint(json.dumps(sorted(sys.modules)))"
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", probe], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    return [name for name in json.loads(done.stdout.splitlines()[-1]) if name in HEAVY]


RUN = """
import logging, sequent as seq
flow = seq.Sequent(name="light", store="light.run.db", executor="thread",
                   logging_level=logging.WARNING, config={"logdir": "logs"})
flow.add_step("a", func=print)
assert flow.run()
flow.close()
"""


def test_import_sequent_loads_no_heavy_module(tmp_path):
    assert loaded_after("import sequent", tmp_path) == []


@pytest.mark.slow  # runs in subprocesses
def test_a_run_on_an_existing_store_needs_no_sqlite_utils(tmp_path):
    assert "sqlite_utils" in loaded_after(RUN, tmp_path)  # the first run creates the store
    assert loaded_after(RUN, tmp_path) == []
