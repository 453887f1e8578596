"""Shared fixtures: writable copies of the committed artifacts, the web server and a headless Chromium page.
Plain helpers live in helpers.py."""

from __future__ import annotations

from edgeclf.train.settings import pin_arithmetic

pin_arithmetic()  # before anything imports torch: tests train with the same arithmetic as `make run`

import importlib.util  # noqa: E402
import shutil  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import pytest  # noqa: E402
from helpers import ARTIFACTS, ON_CI, WEB, skip_or_fail  # noqa: E402

from edgeclf.cli.serve import ORT_DIST, make_server  # noqa: E402
from edgeclf.runtime import Manifest  # noqa: E402

CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--disable-quic", "--no-first-run"]


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


@pytest.fixture(scope="session")
def pte_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifacts folder whose every task lists model.pte and model.portable.pte: the committed one once `make run`
    writes them, else copies with both programs written in (manifest entries added, no other file changed)."""
    pytest.importorskip("torch")
    if importlib.util.find_spec("executorch") is None:
        skip_or_fail("executorch is not installed (pip install 'edgeclf[executorch]' -c constraints.txt)", required=ON_CI)
    from edgeclf.export import pte

    tasks = [p.parent for p in sorted(ARTIFACTS.glob("*/manifest.json"))]
    if all(pte.entry_of(Manifest.read(t)[0], pte.PORTABLE) for t in tasks):
        return ARTIFACTS
    root = tmp_path_factory.mktemp("pte") / "artifacts"
    for src in tasks:
        shutil.copytree(src, root / src.name)
        add_pte(root / src.name)
    return root


def add_pte(folder: Path) -> None:
    """Write folder's .pte programs (from its checkpoint) and list them in its manifest."""
    import dataclasses

    from edgeclf.artifact.store import MANIFEST, write_json
    from edgeclf.export import pte
    from edgeclf.export.subject import from_trained
    from edgeclf.train.checkpoint import load_checkpoint

    m, _ = Manifest.read(folder)
    s = from_trained(load_checkpoint(folder, m.task))
    entries = pte.write_programs(folder, s.model, s.n_features)
    write_json(folder / MANIFEST, dataclasses.replace(m, files=(*m.files, *entries)).to_dict())


def browser_missing() -> str | None:
    if shutil.which("chromium") is None:
        return "Debian's chromium is not installed (apt-get install chromium)"
    if not (WEB / ORT_DIST / "ort.wasm.min.js").is_file():
        return "onnxruntime-web is not installed (npm ci --prefix web)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def server():
    """`edgeclf serve-web`'s server (web/ and artifacts/) on a free port of 127.0.0.1; yields its base URL."""
    if not (WEB / ORT_DIST / "ort.wasm.min.js").is_file():  # make_server refuses to serve the page without it
        skip_or_fail("onnxruntime-web is not installed (npm ci --prefix web)", browser=True)
    httpd = make_server(WEB, ARTIFACTS, port=0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def page(server):
    """(page, page errors): headless Debian Chromium; skips (or fails under EDGECLF_REQUIRE_BROWSER=1) without it."""
    reason = browser_missing()
    if reason:
        skip_or_fail(reason, browser=True)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROME_ARGS, headless=True)
        pg = browser.new_page(viewport={"width": 1000, "height": 620})
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        yield pg, errors
        browser.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The skip count per reason at the end of the run: a skip that should not happen here stands out (on CI
    a missing tool is a failure, tests/helpers.py skip_or_fail)."""
    from collections import Counter

    counts: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        counts[reason.removeprefix("Skipped: ")] += 1
    terminalreporter.write_sep("=", f"skips by reason: {sum(counts.values())}")
    for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        terminalreporter.write_line(f"{n:5d}  {reason}")


CATEGORY_MODEL = """
import sys
import numpy as np, pandas as pd, warnings
from edgeclf.export.pipeline import export_artifact
from edgeclf.train.api import train_data

rng = np.random.default_rng(0)
n = 240
color = rng.choice(["blue", "green", "red"], n)
a, b = rng.normal(0, 1, n), rng.normal(5, 2, n)
label = np.where(a + 1.5 * (color == "red") - (b - 5) / 2 > 0.3, "yes", "no")
a[rng.random(n) < 0.1] = np.nan  # empty cells, filled with the training median
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the one-line note on the fill
    train_data(pd.DataFrame({"a": a, "b": b, "color": color, "label": label}), "label", sys.argv[1], name="shop",
               epochs=20, cv=0, impute="median")
export_artifact(__import__("pathlib").Path(sys.argv[1]) / "shop", batch_sizes=(1, 64))
"""


@pytest.fixture(scope="session")
def category_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifacts folder (named artifacts/, as the card's snippets say) holding `shop`: a small binary model with
    a category column (color: blue, green, red) and a number the model fills (a, --impute median) beside a plain one
    (b); ONNX at batch 1 and 64. Trained and exported in a child process (~30 s on 2 busy cores), once per run (the
    xdist workers share it): the tests that use it are slow-marked."""
    import fcntl
    import os
    import subprocess
    import sys

    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "categories"  # one run's workers
    shared.mkdir(exist_ok=True)
    root = shared / "artifacts"  # the name the card's snippets use
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker builds it, the others wait and take it
        if not (root / "shop" / "manifest.json").is_file():
            done = subprocess.run([sys.executable, "-c", CATEGORY_MODEL, str(root)], capture_output=True, text=True,
                                  timeout=600)
            assert done.returncode == 0, done.stderr
    return root
