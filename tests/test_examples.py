"""Every script in ``examples/`` runs as a user would run it, and its outcome is asserted.

Each example is copied with its folder into a temporary directory (so its default store,
``<script>.run.db``, starts empty) and run with ``python examples/<name>``. Examples with a
known story have their own checks (log lines, order, exit statuses, what a recover reruns);
any other example must exit 0 and end its last run with ``Processing finished with: success``.
An example that needs Dask is skipped, with the reason, where ``distributed`` is missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
FINISHED = re.compile(r"Processing finished with: (success|failure)")


def run_example(
    folder: Path, name: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``examples/<name>`` from ``folder``; output is stdout and stderr interleaved."""
    return subprocess.run(
        [sys.executable, str(Path("examples", name)), *args],
        cwd=folder,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=240,
    )


def run_cli(folder: Path, *args: str, env: dict[str, str] | None = None):
    """Run the ``sequent`` command from ``folder``."""
    return subprocess.run(
        [sys.executable, "-c", "from sequent.cli import main; main()", *args],
        cwd=folder,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=240,
    )


def results(output: str) -> list[str]:
    """The results of the runs in ``output``, in order: 'success' or 'failure' per run."""
    return FINISHED.findall(output)


def after_last_run_start(output: str) -> str:
    """The output of the last run (from its 'store file' line on)."""
    marker = "store file:"
    return output[output.rfind(marker) :] if marker in output else output


# -- the pitch flow -------------------------------------------------------------------------

STARTS = re.compile(r"\b(A1|A2|B|C1|C2) starts \(sequence 1, recovery (\d+)\)")


def pitch_starts(output: str) -> list[tuple[str, int]]:
    return [(name, int(recovery)) for name, recovery in STARTS.findall(output)]


def check_pitch(folder: Path) -> None:
    """Run succeeds; a run with C2 failing fails; the recover reruns only C2 and succeeds."""
    clean = run_example(folder, "pitch.py")
    assert clean.returncode == 0, clean.stdout
    assert sorted(pitch_starts(clean.stdout)) == [(n, 0) for n in ("A1", "A2", "B", "C1", "C2")]
    assert results(clean.stdout) == ["success"]

    failed = run_example(folder, "pitch.py", "--fail-c2")
    assert failed.returncode == 1, failed.stdout
    out = failed.stdout
    assert sorted(pitch_starts(out)) == [(n, 0) for n in ("A1", "A2", "B", "C1", "C2")]
    # B starts only after A1 and A2 are done; C1 and C2 only after B is done.
    assert out.index("B starts") > max(out.index("A1 done"), out.index("A2 done"))
    assert out.index("C1 starts") > out.index("B done") < out.index("C2 starts")
    assert "C2 done" not in out and "C2 could not reach the remote client" in out
    assert results(out) == ["failure"]

    recovered = run_example(folder, "pitch.py", "--recover")
    assert recovered.returncode == 0, recovered.stdout
    assert pitch_starts(recovered.stdout) == [("C2", 1)]
    assert "C2 done" in recovered.stdout
    assert results(recovered.stdout) == ["success"]

    again = run_example(folder, "pitch.py", "--recover")
    assert again.returncode == 0, again.stdout
    assert pitch_starts(again.stdout) == [], "a recover of a successful run reruns nothing"


@pytest.mark.slow
def test_pitch_through_the_command_line(tmp_path):
    """The tutorial's command-line story: PITCH_FAIL=C2 sequent run, then sequent recover."""
    if importlib.util.find_spec("sequent.cli") is None:
        pytest.skip("sequent.cli does not exist yet")
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    failed = run_cli(tmp_path, "run", "examples/pitch.py:build", env={"PITCH_FAIL": "C2"})
    assert failed.returncode == 1, failed.stdout
    assert sorted(pitch_starts(failed.stdout)) == [(n, 0) for n in ("A1", "A2", "B", "C1", "C2")]
    planned = subprocess.run(
        [sys.executable, "-c", "from sequent.cli import main; main()", "plan"]
        + ["examples/pitch.py:build", "--recover", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert planned.returncode == 0, planned.stderr
    actions = [(node["path"], node["action"]) for node in json.loads(planned.stdout)["nodes"]]
    assert actions == [("A1", "skip"), ("A2", "skip"), ("B", "skip"), ("C1", "skip"), ("C2", "run")]
    recovered = run_cli(tmp_path, "recover", "examples/pitch.py:build")
    assert recovered.returncode == 0, recovered.stdout
    assert pitch_starts(recovered.stdout) == [("C2", 1)]
    assert (tmp_path / "examples" / "pitch.run.db").is_file()


# -- the seed's examples --------------------------------------------------------------------

SEED_SIMPLE = [
    "prog1", "prog2", "prog1", "prog2", "prog3",
    "prog1", "prog2", "prog1", "prog2", "prog3",
    "prog4",
]  # fmt: skip


def check_seed_simple(folder: Path) -> None:
    """The seed's documented output: the programs in this order, then success."""
    done = run_example(folder, "seed_simple.py")
    assert done.returncode == 0, done.stdout
    assert re.findall(r"doing what (prog\d) is doing", done.stdout) == SEED_SIMPLE
    assert results(done.stdout) == ["success"]


SEED_RECOVERY_FIRST = [
    ("prog1", "s1_s11_s111/1.1.1"),
    ("prog2", "s1_s11_s112/1.1.1"),
    ("prog1", "s1_s11_s111/1.1.2"),
    ("prog2", "s1_s11_s112/1.1.2"),
    ("prog3", "s1_s12/1.1"),
    ("prog1", "s1_s11_s111/1.2.1"),
    ("prog2", "s1_s11_s112/1.2.1"),
    ("prog1", "s1_s11_s111/1.2.2"),
]
SEED_RECOVERY_SECOND = [
    ("prog1", "s1_s11_s111/1.2.2"),
    ("prog2", "s1_s11_s112/1.2.2"),
    ("prog3", "s1_s12/1.2"),
    ("prog4", "s2/1"),
]
DOING = re.compile(r"doing what (prog\d) is doing \((\S+)\)")


def check_seed_recovery(folder: Path) -> None:
    """The seed's documented output: fail at s1_s11_s111/1.2.2, then a recover runs the rest."""
    done = run_example(folder, "seed_recovery.py")
    assert done.returncode == 0, done.stdout
    out = done.stdout
    assert results(out) == ["failure", "success"], out
    first, second = out.split("Processing finished with: failure", 1)
    assert DOING.findall(first) == SEED_RECOVERY_FIRST
    assert DOING.findall(second) == SEED_RECOVERY_SECOND


def check_seed_resources(folder: Path) -> None:
    """The seed's flow with pools: the same programs in the same order, then success."""
    done = run_example(folder, "seed_resources.py")
    assert done.returncode == 0, done.stdout
    assert re.findall(r"doing what (prog\d) is doing", done.stdout) == SEED_SIMPLE
    assert "Summary: 11 steps: 11 success; 3 containers: 3 success" in done.stdout
    assert results(done.stdout) == ["success"]


EVENT = re.compile(r"^\[ (\S+ \S+) \]\[ INFO \]\[ (\w+) (starts|done) \]$", re.M)


def intervals(output: str) -> dict[str, tuple[datetime, datetime]]:
    """Each step's (start, end) from its 'X starts' / 'X done' log lines' timestamps."""
    seen: dict[str, dict[str, datetime]] = {}
    for stamp, name, what in EVENT.findall(output):
        seen.setdefault(name, {})[what] = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")
    return {name: (times["starts"], times["done"]) for name, times in seen.items()}


def most_at_once(spans: list[tuple[datetime, datetime]]) -> int:
    """The largest number of spans open at the same instant (an end before a start at a tie)."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, change in edges:
        running += change
        peak = max(peak, running)
    return peak


def check_resources_flow(folder: Path) -> None:
    """One database connection: A1 and A2 never overlap; two upload slots: at most 2 C's."""
    done = run_example(folder, "resources_flow.py")
    assert done.returncode == 0, done.stdout
    spans = intervals(done.stdout)
    assert sorted(spans) == ["A1", "A2", "B", "C1", "C2", "C3"], done.stdout
    assert most_at_once([spans["A1"], spans["A2"]]) == 1
    assert most_at_once([spans[name] for name in ("C1", "C2", "C3")]) <= 2
    assert spans["B"][0] >= max(spans["A1"][1], spans["A2"][1])
    assert results(done.stdout) == ["success"]


def check_program_flow(folder: Path) -> None:
    """Programs' output reaches the log; the failing probe is handled, so the run succeeds."""
    done = run_example(folder, "program_flow.py")
    assert done.returncode == 0, done.stdout
    out = done.stdout
    assert re.search(r"\[stdout\] extract wrote 5 rows to \S+rows\.txt", out), out
    assert "[stdout] 5 rows" in out
    assert "[stderr] remote host unreachable" in out
    assert "exited with status 3" in out
    assert out.index("[stderr] remote host unreachable") < out.index("probe failed; reported")
    assert "Failure: probe/1" in out
    assert results(out) == ["success"]


RAN_ON = re.compile(r"(\w+) \((\S+)\) ran on \S+, pid \d+, SEQUENT_STEP_NAME=(\w+)")


def check_dask_flow(folder: Path) -> None:
    """Every step ran on a Dask worker, with its context; the program step's output came back."""
    done = run_example(folder, "dask_flow.py")
    assert done.returncode == 0, done.stdout
    out = done.stdout
    assert RAN_ON.findall(out)[0] == ("first", "first/1", "first")
    assert sorted(RAN_ON.findall(out)[1:]) == [
        ("branch", "fan_branch/1.1", "fan_branch"),
        ("branch", "fan_branch/1.2", "fan_branch"),
    ]
    assert "[stdout] a program step on a Dask worker" in out
    assert "Summary: 4 steps: 4 success; 1 container: 1 success" in out
    assert results(out) == ["success"]


COUNTING = re.compile(r"^\[ (\S+ \S+) \]\[ INFO \]\[ count (starts|done) (part-\d+)", re.M)


def check_parallel_files(folder: Path) -> None:
    """One iteration per file the first step wrote, up to four at once, each in its order."""
    done = run_example(folder, "parallel_files.py")
    assert done.returncode == 0, done.stdout
    out = done.stdout
    stamps: dict[str, dict[str, datetime]] = {}
    for stamp, what, name in COUNTING.findall(out):
        stamps.setdefault(name, {})[what] = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")
    assert sorted(stamps) == [f"part-{k:02}" for k in range(1, 9)], out
    spans = [(times["starts"], times["done"]) for times in stamps.values()]
    assert most_at_once(spans) == 4  # parallel=4: reached, never passed
    for name in stamps:
        assert out.index(f"count done {name}.csv") < out.index(f"publish {name}.csv")
    assert out.index("report: 36 rows in 8 files") > out.index("publish part-08.csv")
    assert "Summary: 18 steps: 18 success; 1 container: 1 success" in out
    assert results(out) == ["success"]


def check_generic(folder: Path, name: str) -> None:
    """An example without a story of its own: exits 0 and its last run succeeds."""
    done = run_example(folder, name)
    assert done.returncode == 0, done.stdout
    assert results(done.stdout), f"{name} printed no 'Processing finished with:' line"
    assert results(done.stdout)[-1] == "success", done.stdout


CHECKS: dict[str, Callable[[Path], None]] = {
    "pitch.py": check_pitch,
    "seed_simple.py": check_seed_simple,
    "seed_recovery.py": check_seed_recovery,
    "seed_resources.py": check_seed_resources,
    "resources_flow.py": check_resources_flow,
    "program_flow.py": check_program_flow,
    "dask_flow.py": check_dask_flow,
    "parallel_files.py": check_parallel_files,
}


def needs_dask(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    return bool(re.search(r"\bdask\b|\bdistributed\b", text, re.I))


@pytest.mark.parametrize("name", sorted(path.name for path in EXAMPLES.glob("*.py")))
# Each example is a script run in a subprocess (dask_flow starts a cluster, pitch pauses for
# its demo): the quick suite keeps seed_simple, test_store_recovery runs seed_recovery.
@pytest.mark.slow_on("dask_flow.py", "pitch.py", "parallel_files.py", "program_flow.py",
                     "resources_flow.py", "seed_recovery.py", "seed_resources.py")  # fmt: skip
def test_example(name, tmp_path):
    if needs_dask(EXAMPLES / name) and importlib.util.find_spec("distributed") is None:
        pytest.skip(f"{name} needs Dask: pip install 'sequent[dask]'")
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    check = CHECKS.get(name)
    if check is None:
        check_generic(tmp_path, name)
    else:
        check(tmp_path)


def test_known_examples_exist():
    """The stories above are about real files: a renamed example must not go unchecked."""
    present = {path.name for path in EXAMPLES.glob("*.py")}
    assert {"pitch.py", "seed_simple.py"} <= present
