"""What the tests share (imported as `helpers`): paths, the committed tasks, a CLI runner and error checks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, NoReturn, Sequence

import pytest
from click.testing import CliRunner, Result

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
# every committed artifact folder: adding a task adds its folder, not a line here
ALL_TASKS = tuple(sorted(p.name for p in ARTIFACTS.iterdir() if (p / "manifest.json").is_file()))


def _kind(task: str) -> str:
    import json

    return str(json.loads((ARTIFACTS / task / "manifest.json").read_text())["kind"])


# the single-label ones (one class per row): what the per-format, client and card tests are written for; the
# multi-label ones (label = one yes/no per label) have their own tests (tests/test_multilabel_*.py)
TASKS = tuple(t for t in ALL_TASKS if _kind(t) != "multilabel")
MULTILABEL_TASKS = tuple(t for t in ALL_TASKS if _kind(t) == "multilabel")
TOY_TASKS = ("blobs", "circles", "moons", "spirals")
TORCH_FORMATS = ("onnx", "torchscript", "torch.export")
WEB = ROOT / "web"
ORT_NODE = WEB / "node_modules" / "onnxruntime-node"  # `make setup` installs it (npm ci --prefix web)
ON_CI = os.environ.get("CI") == "true"  # parts `make test` installs (ExecuTorch) or a CI image has (g++) are required


def required_here(browser: bool = False) -> bool:
    """On CI (CI=true, set by .ci/run) every tool the project installs must be there; EDGECLF_REQUIRE_BROWSER=1
    asks the same of the browser and Node parts alone."""
    return os.environ.get("CI", "").lower() in ("true", "1") or (browser and
                                                                 os.environ.get("EDGECLF_REQUIRE_BROWSER") == "1")


def skip_or_fail(reason: str, required: bool = False, *, browser: bool = False, module: bool = False) -> NoReturn:
    """The one place a test gives up for a missing tool (gcc, emlearn, OpenCV, dask, the browser, Node, the server
    extra, ...): it skips with its reason on a developer's machine and fails where the tool is required
    (required_here, or the caller says so). module=True for a module-level call."""
    if required or required_here(browser):
        pytest.fail(f"required here (CI) but {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=module)


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


def assert_parity_figures(results: Sequence[Any], files: Iterable[str], rows: int | None = None) -> None:
    """A parity claim by its figures, not its truthiness (the exporter raises before returning a failure, so
    `assert results` could only check the list is not empty): one result per file, every file compared on the
    check rows, probabilities within the policy's absolute bound, every output within its bound, no label
    mismatch above the margin."""
    from edgeclf.export.parity import PROBA_ATOL

    checked, shipped = sorted(r.file for r in results), sorted(files)
    assert checked == shipped, f"parity results for {checked}, files {shipped}"
    for r in results:
        assert r.rows > 0 if rows is None else r.rows == rows, (r.file, r.rows)
        assert {o.name for o in r.outputs} == {"logits", "probabilities"}, r
        assert r.output("probabilities").max_abs <= PROBA_ATOL, r
        assert all(0 <= o.excess <= 1 for o in r.outputs), r
        assert r.label_mismatches == 0 and 0 < r.label_agreement <= 1, r


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
