"""Fixtures for the store tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder for one test's store, logs and step notes."""
    path = tmp_path / "work"
    path.mkdir()
    return path
