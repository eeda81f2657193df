"""The documentation keeps up with the code: names, commands, runnable tutorial, strict build.

- every public name of ``sequent.__all__``, every public ``Sequent`` method and every ``sequent``
  command is mentioned in ``docs/`` (as sqlite-utils' ``test_docs.py`` does for its API);
- the tutorial's Python blocks, put in one script in order, run and print what the tutorial
  says they print (the ``# prints:`` comments);
- every Python block in the docs is valid Python; every benchmark command and example the docs
  name exists, and every example is named in the docs;
- ``mkdocs build --strict`` succeeds (skipped, with the reason, when mkdocs is not installed).
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sequent

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
TUTORIAL = DOCS / "tutorial.md"

#: The ``sequent`` command's subcommands (SPEC 5.3). Used until ``sequent.cli`` exists; once it
#: does, ``test_cli_command_list_in_sync`` fails when this list and the real group differ.
CLI_COMMANDS = [
    "graph", "logs", "mark", "plan", "recover", "report", "run", "runs", "show", "status",
]  # fmt: skip

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)
PRINTS = re.compile(r"#\s*prints:\s?(.*)$")


def doc_text() -> str:
    """Every Markdown page of the docs, joined."""
    pages = sorted(DOCS.glob("**/*.md"))
    assert pages, f"no Markdown pages under {DOCS}"
    return "\n".join(page.read_text(encoding="utf-8") for page in pages)


def code_blocks(text: str, language: str) -> list[str]:
    """The bodies of the fenced blocks of ``language``, in order."""
    return [body for lang, body in FENCE.findall(text) if lang == language]


def documented(name: str, text: str, qualified: str = r"(?:seq\.|sequent\.)?") -> bool:
    """True when ``name`` starts a code span (`` `seq.name...` ``) or has a ``:::`` entry."""
    span = re.compile(r"`" + qualified + re.escape(name) + r"(?![\w])")
    entry = re.compile(r"^:::\s*sequent(?:\.\w+)*\." + re.escape(name) + r"\s*$", re.M)
    return bool(span.search(text) or entry.search(text))


def cli_group():
    """The ``sequent`` click group, or None while ``sequent.cli`` does not exist."""
    if importlib.util.find_spec("sequent.cli") is None:
        return None
    import click

    from sequent import cli

    for value in vars(cli).values():
        if isinstance(value, click.Group):
            return value
    pytest.fail("sequent.cli exists but defines no click group")


def cli_commands() -> list[str]:
    group = cli_group()
    return sorted(group.commands) if group is not None else CLI_COMMANDS


# -- names and commands ---------------------------------------------------------------------


def test_every_public_name_is_documented():
    text = doc_text()
    missing = [name for name in sequent.__all__ if not documented(name, text)]
    assert not missing, (
        f"public names of sequent.__all__ missing from docs/: {missing}; mention each as "
        f"`seq.Name` in a page or add '::: sequent.Name' to docs/api.md"
    )


def test_every_public_sequent_method_is_documented():
    text = doc_text()
    methods = [name for name in vars(sequent.Sequent) if not name.startswith("_")]
    assert "add_step" in methods and "run" in methods
    missing = [name for name in methods if not documented(name, text, qualified=r"(?:[\w.]*\.)?")]
    assert not missing, f"public Sequent methods missing from docs/: {missing}"


def test_every_cli_command_is_documented():
    text = doc_text()
    missing = [
        command
        for command in cli_commands()
        if not re.search(r"\bsequent " + re.escape(command) + r"\b", text)
    ]
    assert not missing, (
        f"sequent commands missing from docs/: {missing}; show each as `sequent <command> ...`"
    )


def test_cli_command_list_in_sync():
    group = cli_group()
    if group is None:
        pytest.skip("sequent.cli does not exist yet; the docs are checked against CLI_COMMANDS")
    assert sorted(group.commands) == CLI_COMMANDS, (
        "tests/test_docs.py CLI_COMMANDS differs from the sequent command group; update it"
    )


def test_documented_checks_can_fail():
    """The name check is not vacuous: an absent name and a mere prose mention do not count."""
    assert not documented("no_such_name_anywhere", "`seq.other` ::: sequent.other")
    assert not documented("Step", "A Step in prose, and `StepStatus` in code")
    assert documented("Step", "the `seq.Step` handle")
    assert documented("or_", "::: sequent.or_")


# -- the tutorial runs as written -------------------------------------------------------------


def tutorial_script() -> tuple[str, list[str]]:
    """The tutorial's Python blocks as one script, and the lines it says the script prints."""
    blocks = code_blocks(TUTORIAL.read_text(encoding="utf-8"), "python")
    script = "\n\n".join(blocks)
    expected = [m.group(1).rstrip() for line in script.splitlines() if (m := PRINTS.search(line))]
    return script, expected


@pytest.mark.slow
def test_tutorial_runs_as_written(tmp_path):
    script, expected = tutorial_script()
    assert len(expected) >= 6, "the tutorial should state what its script prints (# prints:)"
    path = tmp_path / "pitch_tutorial.py"
    path.write_text(script, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"the tutorial script failed:\n{done.stderr[-4000:]}"
    assert done.stdout.splitlines() == expected, done.stderr[-4000:]
    # What the tutorial says about the first run's console output holds too.
    assert "[ Step C2/1 ] failed: RuntimeError: C2 could not reach the remote client" in (
        done.stderr
    )
    assert "Summary: 5 steps: 4 success, 1 failure" in done.stderr
    assert (tmp_path / "pitch.run.db").is_file()
    check_tutorial_store(tmp_path)


def check_tutorial_store(folder):
    """What the tutorial's `sequent runs` / `sequent show` say about the store holds."""
    if importlib.util.find_spec("sequent.cli") is None:
        pytest.skip("sequent.cli does not exist yet: the tutorial's commands cannot be checked")

    def sequent_command(*args):
        done = subprocess.run(
            [sys.executable, "-c", "from sequent.cli import main; main()", *args],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    runs = sequent_command("runs", "--store", "pitch.run.db", "--json")
    assert [(run["flow_name"], run["attempts"], run["result"]) for run in runs] == [
        ("pitch", 2, True)
    ]
    shown = sequent_command("show", runs[0]["run_id"], "--store", "pitch.run.db", "--json")
    assert [attempt["result"] for attempt in shown["attempts"]] == [False, True]
    latest = {
        node["path"]: (node["status"], node["replayed"])
        for node in shown["nodes"]
        if node["attempt"] == 1
    }
    assert latest == {
        "A1": ("success", True),
        "A2": ("success", True),
        "B": ("success", True),
        "C1": ("success", True),
        "C2": ("success", False),
    }


def test_tutorial_prints_are_checked_in_order():
    """The expectations come from the comments, in order: the comparison cannot be vacuous."""
    _, expected = tutorial_script()
    assert expected[0] == "first run succeeded: False"
    assert "recovery succeeded: True" in expected
    assert expected.index("first run succeeded: False") < expected.index("recovery succeeded: True")


# -- code blocks, commands and examples named in the docs -----------------------------------


def test_every_python_block_is_valid_python():
    for page in sorted(DOCS.glob("**/*.md")):
        for number, block in enumerate(code_blocks(page.read_text(encoding="utf-8"), "python")):
            try:
                compile(block, f"{page.name} block {number + 1}", "exec")
            except SyntaxError as exc:
                pytest.fail(f"{page.name}: Python block {number + 1} does not compile: {exc}")


#: Pages whose Python blocks, joined in order, form a script that runs (the tutorial has its
#: own test above; pages whose blocks are fragments of a larger program are left out).
RUNNABLE_PAGES = ["index.md", "concepts.md", "executors.md", "resources.md", "dask.md"]


@pytest.mark.parametrize("page", RUNNABLE_PAGES)
@pytest.mark.slow_on("dask.md")  # starts Dask clusters
def test_page_examples_run(page, tmp_path):
    script = "\n\n".join(code_blocks((DOCS / page).read_text(encoding="utf-8"), "python"))
    assert script.strip(), f"{page} has no Python block"
    if "dask" in script and importlib.util.find_spec("distributed") is None:
        pytest.skip(f"{page}'s examples need Dask: pip install 'sequent[dask]'")
    path = tmp_path / f"{page[:-3]}_examples.py"
    path.write_text(script, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(path)], cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, f"{page}'s examples failed:\n{done.stderr[-4000:]}"


def test_benchmark_commands_in_docs_exist():
    named = set(re.findall(r"python (benchmarks/[\w/]+\.py)", doc_text()))
    assert named, "the docs should say how to reproduce the benchmarks"
    missing = sorted(path for path in named if not (ROOT / path).is_file())
    assert not missing, f"docs name benchmark scripts that do not exist: {missing}"


def test_every_example_is_named_in_the_docs_and_exists():
    text = doc_text()
    present = {path.name for path in (ROOT / "examples").glob("*.py")}
    unnamed = sorted(name for name in present if name not in text)
    assert not unnamed, f"examples not mentioned anywhere in docs/: {unnamed}"
    named = set(re.findall(r"`(?:examples/)?(\w+\.py)`", text)) - {"pitch_tutorial.py"}
    named = {name for name in named if not name.startswith(("bench_", "test_"))}
    named -= {path.name for path in (ROOT / "sequent").rglob("*.py")}  # the package's modules
    absent = sorted(name for name in named if name not in present)
    assert not absent, f"docs name examples that are not in examples/: {absent}"


# -- the site builds --------------------------------------------------------------------------


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
    missing = [
        module for module in ("mkdocs", "mkdocstrings") if importlib.util.find_spec(module) is None
    ]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed; pip install -e '.[test]' to build docs")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(tmp_path / "site"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr[-4000:]}"
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    assert "add_step" in api and "StepStatus" in api, "the API reference rendered no entries"
