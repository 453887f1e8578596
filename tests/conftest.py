"""Shared fixtures: writable copies of the committed artifacts. Plain helpers live in helpers.py."""

from __future__ import annotations

from edgeclf.train.settings import pin_arithmetic

pin_arithmetic()  # before anything imports torch: tests train with the same arithmetic as `make run`

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import pytest  # noqa: E402
from helpers import ARTIFACTS  # noqa: E402


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
