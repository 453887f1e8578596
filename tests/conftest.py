"""Shared fixtures: writable copies of the committed artifacts. Plain helpers live in helpers.py."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pytest
from helpers import ARTIFACTS


@pytest.fixture(scope="session")
def circles_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the committed circles artifact (root folder), for tests that write."""
    root = tmp_path_factory.mktemp("art")
    shutil.copytree(ARTIFACTS / "circles", root / "circles")
    return root


@pytest.fixture
def artifact_copy(tmp_path: Path) -> Callable[[str], Path]:
    """copy(task) -> a fresh writable copy of artifacts/<task>/ under tmp_path."""

    def copy(task: str = "circles") -> Path:
        dst = tmp_path / task
        shutil.copytree(ARTIFACTS / task, dst)
        return dst

    return copy
