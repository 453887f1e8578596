"""What the tests share (imported as `helpers`): paths, the committed tasks, a CLI runner and error checks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
# every committed artifact folder: adding a task adds its folder, not a line here
TASKS = tuple(sorted(p.name for p in ARTIFACTS.iterdir() if (p / "manifest.json").is_file()))
TOY_TASKS = ("blobs", "circles", "moons", "spirals")
TORCH_FORMATS = ("onnx", "torchscript", "torch.export")
WEB = ROOT / "web"
ORT_NODE = WEB / "node_modules" / "onnxruntime-node"  # `make setup` installs it (npm ci --prefix web)
ON_CI = os.environ.get("CI") == "true"  # parts `make test` installs (ExecuTorch) or a CI image has (g++) are required


def skip_or_fail(reason: str, required: bool = False) -> None:
    """The README's promise: a missing browser or Node part skips with its reason, unless this machine must have
    it (EDGECLF_REQUIRE_BROWSER=1, set by .ci/run) or the caller says it must (required)."""
    if required or os.environ.get("EDGECLF_REQUIRE_BROWSER") == "1":
        pytest.fail(f"test required here but {reason}")
    pytest.skip(reason)


def node_missing() -> str | None:
    """Why onnxruntime-node cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed (Node.js 18+)"
    if not (ORT_NODE / "package.json").is_file():
        return "onnxruntime-node is not installed (make setup runs npm ci --prefix web)"
    return None


def run_cli(*args: object, input: str | bytes | None = None) -> Result:
    """Invoke `edgeclf ARGS` in-process; returns click's Result (exit_code, output, exception)."""
    from edgeclf.cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=True)


def assert_clean_error(result: Result, code: int, *fragments: str) -> None:
    """A one-line error (no traceback), the exit code, and the message naming what it must."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    for f in fragments:
        assert f in result.output, result.output


def python(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, **kw)  # type: ignore[call-overload]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# A meta-path blocker: code run after it cannot import the heavy packages (the runtime's promise).
BLOCKER = """
import importlib.abc, sys
HEAVY = {"torch", "sklearn", "onnx", "onnxscript", "matplotlib", "pandas", "scipy", "pyarrow", "dask"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in HEAVY:
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, Block())
"""
