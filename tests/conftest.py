"""Shared fixtures: the committed artifacts, a CLI runner, and one fresh training per session."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
TASKS = ("circles", "blobs", "moons", "spirals")
FORMATS = ("onnx", "torchscript", "torch.export")


def run_cli(*args: str, input: str | bytes | None = None):
    """Invoke `edgeclf ARGS` in-process; returns click's Result (exit_code, output, exception)."""
    from edgeclf.cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=True)


def assert_clean_error(result, code: int, *fragments: str) -> None:
    """A one-line error (no traceback), the exit code, and the message naming what it must."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    for f in fragments:
        assert f in result.output, result.output


def python(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, **kw)


@pytest.fixture(scope="session")
def circles_copy(tmp_path_factory) -> Path:
    """A private copy of the committed circles artifact (root folder), for tests that write."""
    root = tmp_path_factory.mktemp("art")
    shutil.copytree(ARTIFACTS / "circles", root / "circles")
    return root


@pytest.fixture
def artifact_copy(tmp_path) -> callable:
    """copy(task) -> a fresh writable copy of artifacts/<task>/ under tmp_path."""

    def copy(task: str = "circles") -> Path:
        dst = tmp_path / task
        shutil.copytree(ARTIFACTS / task, dst)
        return dst

    return copy


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
