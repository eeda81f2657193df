"""The package is typed for its users: ``py.typed`` ships, and ``mypy --strict`` accepts the
examples, which use the public API the way users do."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_py_typed_is_in_the_package_and_its_data():
    assert (ROOT / "sequent" / "py.typed").is_file()
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert "py.typed" in setup["options.package_data"]["sequent"]


@pytest.mark.slow
def test_mypy_strict_accepts_the_examples():
    if shutil.which("mypy") is None:
        pytest.skip("mypy is not installed (pip install -e .[test])")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "examples/"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success" in done.stdout
