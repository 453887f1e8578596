"""Packaging as a user gets it: the wheel in a fresh venv with the core install only (no torch)."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import urllib.request
import venv

import pytest
from helpers import ARTIFACTS, ROOT


@pytest.mark.slow
def test_wheel_core_install_runs_predict_and_info(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, ROOT], check=True)
    wheel = next(dist.glob("edgeclf-*.whl"))
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    pip = [env / "bin" / "python", "-m", "pip", "install", "-q", "-c", ROOT / "constraints.txt"]
    subprocess.run([*pip, wheel], check=True, capture_output=True)
    freeze = subprocess.run([env / "bin" / "python", "-m", "pip", "freeze"], capture_output=True, text=True).stdout
    names = {re.split(r"==| @ ", line)[0].lower() for line in freeze.splitlines()}
    assert {"numpy", "onnxruntime", "click", "edgeclf"} <= names
    assert not names & {"torch", "scikit-learn", "onnx", "matplotlib", "pandas"}, names

    work = tmp_path / "elsewhere"  # outside the checkout: nothing can come from the source tree
    shutil.copytree(ARTIFACTS / "circles", work / "circles")
    (work / "in.csv").write_text("x1,x2\n0.0,0.1\n1.0,0.0\n")
    exe = env / "bin" / "edgeclf"
    p = subprocess.run([exe, "predict", "circles", "in.csv", "--proba"], cwd=work, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == "label,proba_outer,proba_inner"
    assert [ln.split(",")[0] for ln in p.stdout.splitlines()[1:]] == ["inner", "outer"]
    p = subprocess.run([exe, "info", "circles"], cwd=work, capture_output=True, text=True)
    assert p.returncode == 0 and "circles (binary, 2 classes)" in p.stdout, p.stderr
    p = subprocess.run([exe, "train", "circles"], cwd=work, capture_output=True, text=True)
    assert p.returncode == 1 and "edgeclf[train]" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run([exe, "serve", "circles"], cwd=work, capture_output=True, text=True)
    assert p.returncode == 1 and "edgeclf[serve]" in p.stderr and "Traceback" not in p.stderr

    # the browser page ships in the wheel: serve-web works from any folder with the core install
    server = subprocess.Popen([exe, "serve-web", "--port", "0", "--artifacts", "."], cwd=work, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        port = int(re.search(r"127\.0\.0\.1:(\d+)/", server.stdout.readline()).group(1))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as r:
            assert r.read() == (ROOT / "web" / "index.html").read_bytes()
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0 and "Traceback" not in err, err


def test_no_big_file_tracked_outside_artifacts_and_docs():
    """Generated files (profiler dumps, datasets, builds) never ship: nothing tracked outside artifacts/ and docs/
    is over 1 MB."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    big = [(p, (ROOT / p).stat().st_size) for p in listed.stdout.split("\0") if p and (ROOT / p).is_file()
           and not p.startswith(("artifacts/", "docs/")) and (ROOT / p).stat().st_size > 1 << 20]
    assert big == []
