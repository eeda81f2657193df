"""Steps that run external programs with ``seq.Program``.

    python examples/program_flow.py

``extract`` writes a file with a small Python program, ``count`` counts its lines with another
one, and ``probe`` runs a program that fails on purpose: ``report`` requires that failure, so
it is handled and the run succeeds. Each program's output goes to its step's log (and the
run's log); its environment carries the step context (``SEQUENT_STEP_NAME`` and the others).
``timeout=`` on a Program (or on the step) kills the program's whole process group.
"""

import logging
import sys
import tempfile
from pathlib import Path

import sequent as seq

PYTHON = sys.executable
WRITE = """
import os, sys
lines = [f"row {n}" for n in range(1, 6)]
open(sys.argv[1], "w").write("\\n".join(lines) + "\\n")
print(f"{os.environ['SEQUENT_STEP_NAME']} wrote {len(lines)} rows to {sys.argv[1]}")
"""
COUNT = "import sys; print(sum(1 for _ in open(sys.argv[1])), 'rows')"
PROBE = "import sys; print('remote host unreachable', file=sys.stderr); sys.exit(3)"


def main() -> bool:
    data = Path(tempfile.mkdtemp(prefix="program-flow-")) / "rows.txt"
    with seq.Sequent(name="programs", logging_level=logging.INFO) as flow:
        extract = flow.add_step(
            "extract", func=seq.Program([PYTHON, "-c", WRITE, str(data)], timeout=60)
        )
        flow.add_step(
            "count",
            func=seq.Program([PYTHON, "-c", COUNT]),
            args=(str(data),),  # a step's args are appended to the program's argv
            requires=((extract, seq.StepStatus.success),),
        )
        probe = flow.add_step("probe", func=seq.Program([PYTHON, "-c", PROBE]))
        flow.add_step(
            "report",
            func=seq.Program([PYTHON, "-c", "print('probe failed; reported')"]),
            requires=((probe, seq.StepStatus.failure),),
        )
        return flow.run()


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
