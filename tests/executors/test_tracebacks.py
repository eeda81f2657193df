"""A failing step's traceback names the file and line of the step function, on every executor.

Functions defined in the flow's script travel to worker processes by value, where their
frames lose the file name; the orchestrator puts it back (with the source line).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """\
    import logging
    import sys

    import sequent as seq


    def explode():
        raise ValueError("boom in the step")


    if __name__ == "__main__":
        flow = seq.Sequent(name="tb", store=":memory:", executor=sys.argv[1],
                           logging_level=logging.INFO, config={"logdir": "logs"})
        flow.add_step("explode", func=explode)
        sys.exit(0 if flow.run() else 1)
    """
)


@pytest.mark.parametrize("executor", ["thread", "process", "loky"])
@pytest.mark.slow_on("process", "loky")  # a script in a subprocess starting a worker pool
def test_traceback_names_the_step_functions_file_and_line(tmp_path, executor):
    script = tmp_path / "flow_tb.py"
    script.write_text(SCRIPT, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script), executor],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert f'File "{script}", line 8, in explode' in done.stderr, done.stderr
    assert 'raise ValueError("boom in the step")' in done.stderr
    assert "<dynamic-code>" not in done.stderr
    step_log = next((tmp_path / "logs").rglob("explode@1.log")).read_text(encoding="utf-8")
    assert f'File "{script}", line 8, in explode' in step_log
