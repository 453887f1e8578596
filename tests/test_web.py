"""The browser page, end to end, in real headless Chromium: the page's own code classifies points with
onnxruntime-web, and the answers must equal the Python runtime's (labels; probabilities within 1e-5).

Needs Debian's `chromium` and `npm ci --prefix web` (make setup runs it). Without them the test skips with the
reason, except where EDGECLF_REQUIRE_BROWSER=1 (set by .ci/run), where a missing browser is a failure. The
`server` and `page` fixtures live in conftest.py (tests/test_card_snippets.py uses them too).
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from edge_helpers import MARGIN
from helpers import ARTIFACTS, MULTILABEL_TASKS, ROOT, WEB, run_cli, skip_or_fail

from edgeclf.cli.serve import ORT_DIST, ORT_WEB_VERSION, make_server
from edgeclf.runtime import Classifier, InputError

POINTS = {
    "circles": [[0.0, 0.0], [0.9, 0.1], [-0.7, -0.7], [0.35, -0.3], [1.05, -0.2], [0.1, 0.78], [-0.5, 0.5]],
    "blobs": [[-2.5, 9.0], [4.5, 2.0], [-7.0, -7.0], [-9.0, 7.5], [-1.5, 2.0], [0.0, 0.0], [5.0, -9.0]],
}


def open_task(page, server, task: str) -> str:
    page.goto(f"{server}/?task={task}")
    page.wait_for_function("() => window.edgeclf && window.edgeclf.state.ready !== null", timeout=60_000)
    return page.evaluate("() => window.edgeclf.state.ready")


def artifact_tasks() -> list[str]:
    return sorted(d.name for d in ARTIFACTS.iterdir() if (d / "manifest.json").is_file())


def test_server_makes_task_list_and_palette(server):
    """The page's task picker and colours come from the server: the artifact folders and report.plots.COLORS."""
    from edgeclf.report.plots import COLORS

    with urllib.request.urlopen(server + "/artifacts/index.json") as r:
        assert r.headers["Content-Type"] == "application/json"
        assert json.loads(r.read()) == artifact_tasks()
    assert {"circles", "blobs", "moons", "spirals", "iris", "digits"} <= set(artifact_tasks())
    with urllib.request.urlopen(server + "/palette.json") as r:
        assert json.loads(r.read()) == list(COLORS)


def test_task_list_follows_the_folder(tmp_path):
    (tmp_path / "web" / ORT_DIST).mkdir(parents=True)
    (tmp_path / "web" / "index.html").write_text("<!doctype html>")
    (tmp_path / "web" / ORT_DIST / "ort.wasm.min.js").write_text("")
    arts = tmp_path / "arts"
    for name in ("zeta", "alpha", "no_manifest"):
        (arts / name).mkdir(parents=True)
    (arts / "zeta" / "manifest.json").write_text("{}")
    (arts / "alpha" / "manifest.json").write_text("{}")
    (arts / "stray.json").write_text("{}")
    httpd = make_server(tmp_path / "web", arts, port=0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{httpd.server_address[1]}/artifacts/index.json") as r:
            assert json.loads(r.read()) == ["alpha", "zeta"]
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("task", ["circles", "blobs", "moons", "spirals"])
def test_page_matches_python_runtime(page, server, task, tmp_path):
    pg, errors = page
    assert open_task(pg, server, task) == task, pg.inner_text("#error")
    clf = Classifier.load(ARTIFACTS / task)
    assert pg.is_visible("#plot") and not pg.is_visible("#inputs")
    options = pg.eval_on_selector_all("#task option", "os => os.map(o => o.value)")
    assert options == artifact_tasks()  # the picker is the server's list, not a hard-coded one
    if task in POINTS:
        probs = np.array(pg.evaluate("pts => window.edgeclf.predictProba(pts)", POINTS[task]), dtype=np.float64)
        expect = clf.predict_proba(np.array(POINTS[task], np.float32))
        assert list(clf.classes_[probs.argmax(1)]) == list(clf.predict(np.array(POINTS[task], np.float32)))
        assert np.abs(probs - expect).max() <= 1e-5
    # more rows than the largest-but-one batch: the page's chunking and padding, against the runtime's
    grid = np.random.default_rng(7).uniform(clf.manifest.domain.low, clf.manifest.domain.high, (1500, 2))
    grid = grid.astype(np.float32)
    page_grid = np.array(pg.evaluate("pts => window.edgeclf.predictProba(pts)", grid.tolist()))
    assert np.abs(page_grid - clf.predict_proba(grid)).max() <= 1e-5
    assert list(clf.classes_[page_grid.argmax(1)]) == list(clf.predict(grid))
    # a click shows the clicked point's class and probabilities
    pg.click("#plot", position={"x": 200, "y": 200})
    pg.wait_for_selector("#point table")
    assert any(c in pg.inner_text("#point") for c in clf.classes_)
    shot = tmp_path / f"{task}.png"
    pg.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert errors == []


def feature_rows(task: str, n: int, seed: int) -> np.ndarray:
    """Test-like rows from the manifest's training ranges: measurements to 0.1, pixel counts whole."""
    feats = json.loads((ARTIFACTS / task / "manifest.json").read_text())["features"]
    lo = np.array([f["min"] for f in feats])
    hi = np.array([f["max"] for f in feats])
    x = np.random.default_rng(seed).uniform(lo, hi, (n, len(feats)))
    whole = all(float(f["min"]).is_integer() and float(f["max"]).is_integer() for f in feats)
    return (np.round(x) if whole else np.round(x, 1)).astype(np.float32)


def shown(pg) -> tuple[list[float], list[float], str]:
    row, probs = pg.evaluate("() => [window.edgeclf.state.last.row, window.edgeclf.state.last.probs]")
    return row, probs, pg.inner_text("#label")


@pytest.mark.parametrize("task", ["iris", "digits"])
def test_page_feature_inputs_match_python_runtime(page, server, task, tmp_path):
    """More than two features: one input per feature (prefilled with the training means), live probabilities."""
    pg, errors = page
    assert open_task(pg, server, task) == task, pg.inner_text("#error")
    clf = Classifier.load(ARTIFACTS / task)
    feats = json.loads((ARTIFACTS / task / "manifest.json").read_text())["features"]
    assert pg.is_visible("#inputs") and not pg.is_visible("#plot")
    inputs = pg.locator("#inputs input")
    assert inputs.count() == len(feats)
    # prefilled: the means, with the training range as the hint; their probabilities are on show already
    means = np.array([f["mean"] for f in feats], np.float32)
    for j in (0, len(feats) - 1):
        lo, hi = inputs.nth(j).get_attribute("placeholder").split(" … ")
        assert (float(lo), float(hi)) == (feats[j]["min"], feats[j]["max"])
    row, probs, label = shown(pg)
    assert np.array_equal(np.array(row, np.float32), means)
    assert np.abs(np.array(probs) - clf.predict_proba(means[None])[0]).max() <= 1e-5
    assert label == clf.predict(means[None])[0]
    # typed rows: the page's live answer equals the runtime's (labels; probabilities within 1e-5)
    rows = feature_rows(task, 3, seed=11)
    expect, labels = clf.predict_proba(rows), clf.predict(rows)
    for i, r in enumerate(rows):
        text = [repr(float(v)) for v in r]
        if task == "iris" or i == 0:  # as a person types: every box, one input event each
            for j, v in enumerate(text):
                pg.fill(f"#x{j}", v)
        else:  # 64 boxes: set them all, one input event
            pg.evaluate("vals => window.edgeclf.setInputs(vals.map(Number))", text)
        pg.wait_for_function("want => { const l = window.edgeclf.state.last; return l && "
                             "l.row.length === want.length && l.row.every((v, k) => v === Number(want[k])); }",
                             arg=text, timeout=30_000)
        row, probs, label = shown(pg)
        assert np.array_equal(np.array(row, np.float32), r)
        assert np.abs(np.array(probs) - expect[i]).max() <= 1e-5, (task, i)
        assert label == labels[i]
        table = pg.inner_text("#point table")
        assert all(f"{p:.6f}"[:-1] in table for p in probs)  # the table shows them (6 decimals)
    # an empty box is named, not run
    pg.fill("#x1", "")
    pg.wait_for_function("() => window.edgeclf.state.last === null")
    assert feats[1]["name"] in pg.inner_text("#point")
    # the batch path with many rows, against the runtime
    many = feature_rows(task, 300, seed=5)
    page_many = np.array(pg.evaluate("pts => window.edgeclf.predictProba(pts)", many.tolist()))
    assert np.abs(page_many - clf.predict_proba(many)).max() <= 1e-5
    assert list(clf.classes_[page_many.argmax(1)]) == list(clf.predict(many))
    shot = tmp_path / f"{task}.png"
    pg.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert errors == []


def test_page_reports_missing_artifact(page, server):
    pg, _ = page
    assert open_task(pg, server, "nope") == "error"
    assert "no artifact for \"nope\"" in pg.inner_text("#error")


def test_server_refuses_paths_outside_its_folders(server):
    for path in ("/artifacts/../pyproject.toml", "/artifacts/%2e%2e/pyproject.toml", "/ort/../../../app.js",
                 "/artifacts/"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server + path)
        assert err.value.code == 404, path
    with urllib.request.urlopen(server + "/artifacts/circles/model.b1.onnx") as r:
        assert r.read() == (ARTIFACTS / "circles" / "model.b1.onnx").read_bytes()
    if (WEB / ORT_DIST).is_dir():
        with urllib.request.urlopen(server + "/ort/ort-wasm-simd-threaded.wasm") as r:
            assert r.headers["Content-Type"] == "application/wasm"


def test_serve_web_is_quiet_when_a_client_leaves_early(tmp_path):
    """A client that hangs up mid-download (a closed tab) costs the server nothing, and prints nothing."""
    web = tmp_path / "web"
    (web / ORT_DIST).mkdir(parents=True)
    (web / "index.html").write_text("<!doctype html><title>edgeclf</title>")
    (web / ORT_DIST / "ort.wasm.min.js").write_text("")
    (web / "big.bin").write_bytes(bytes(64 << 20))  # far more than the socket buffers hold: the server is mid-write
    cmd = [sys.executable, "-m", "edgeclf.cli", "serve-web", "--port", "0", "--web", str(web), "--artifacts", str(ARTIFACTS)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(re.search(r"127\.0\.0\.1:(\d+)/", p.stdout.readline()).group(1))
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.0 200")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
            s.close()
        time.sleep(1.0)  # the server's next write fails at once; give its threads a moment to report it
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html") as r:  # it still serves
            assert b"edgeclf" in r.read()
    finally:
        p.send_signal(signal.SIGINT)  # what Ctrl-C does
        _, err = p.communicate(timeout=60)
    assert p.returncode == 0 and "Traceback" not in err and "Error" not in err, err


def test_serve_web_bad_folders(tmp_path):
    with pytest.raises(InputError, match="no index.html"):
        make_server(tmp_path, ARTIFACTS, port=0)
    res = run_cli("serve-web", "--web", tmp_path, "--port", "0")
    assert res.exit_code == 1 and "no index.html" in res.output


def test_readme_embedding_snippet_runs(page, server):
    """The README's minimum JS, run as written (in a page that already loaded onnxruntime-web)."""
    import re

    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```html\n(.*?)```", readme, re.S).group(1)
    code = re.findall(r"<script>\n(.*?)</script>", block, re.S)[0]
    pg, errors = page
    open_task(pg, server, "circles")
    pg.evaluate("() => { window.__logs = []; console.log = (...a) => window.__logs.push(a); }")
    pg.evaluate(code)
    pg.wait_for_function("() => window.__logs.length > 0", timeout=30_000)
    label, probs = pg.evaluate("() => [window.__logs[0][0], Array.from(Object.values(window.__logs[0][1]))]")
    clf = Classifier.load(ARTIFACTS / "circles")
    assert label == clf.predict([[0.0, 0.1]])[0]
    assert np.abs(np.array(probs) - clf.predict_proba([[0.0, 0.1]])[0]).max() <= 1e-5


def test_serve_web_from_any_folder_serves_the_installed_page(tmp_path):
    """No --web, run outside the checkout: the page comes from the installed package (edgeclf/web/), and where no
    onnxruntime-web sits beside it (a plain pip install) /ort/ redirects to the pinned version on a CDN."""
    cmd = [sys.executable, "-m", "edgeclf.cli", "serve-web", "--port", "0", "--artifacts", str(ARTIFACTS)]
    p = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(re.search(r"127\.0\.0\.1:(\d+)/", p.stdout.readline()).group(1))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as r:
            assert r.read() == (WEB / "index.html").read_bytes()
        for name in ("app.js", "plan.js", "rows.js"):  # the scripts too (an editable install links them)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/{name}") as r:
                assert r.read() == (WEB / name).read_bytes()
    finally:
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    assert p.returncode == 0 and "Traceback" not in err, err

    page = tmp_path / "page"  # the installed page without node_modules beside it
    page.mkdir()
    (page / "index.html").write_bytes((WEB / "index.html").read_bytes())
    httpd = make_server(page, ARTIFACTS, port=0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", httpd.server_address[1])
        conn.request("GET", "/ort/ort.wasm.min.js")
        r = conn.getresponse()
        assert r.status == 302
        cdn = f"https://cdn.jsdelivr.net/npm/onnxruntime-web@{ORT_WEB_VERSION}/dist/"
        assert r.getheader("Location") == cdn + "ort.wasm.min.js"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_cdn_pin_is_the_lockfile_pin():
    assert json.loads((WEB / "package.json").read_text())["dependencies"]["onnxruntime-web"] == ORT_WEB_VERSION


# ---- multi-label: one bar per label with its threshold marked, each label on or off ----------------------------


def label_table(pg) -> list[dict[str, str]]:
    """The multi-label table on show: per label its name, probability text, mark position and decision."""
    return pg.eval_on_selector_all("#point tr.label-row", """rows => rows.map(r => ({
        name: r.cells[0].innerText.trim(), p: r.cells[1].innerText.trim(),
        mark: r.querySelector('.mark').style.left, bar: r.querySelector('.bar').style.width,
        decision: r.querySelector('td.decision').innerText.trim()}))""")


@pytest.mark.parametrize("task", MULTILABEL_TASKS)
def test_page_multilabel_matches_python_runtime(page, server, task, tmp_path):
    """Every label's probability (within 1e-5) and decision (where |p - threshold| exceeds the margin) equal the
    Python Classifier's, on typed rows and on many rows; the table marks each label's threshold on its bar."""
    pg, errors = page
    assert open_task(pg, server, task) == task, pg.inner_text("#error")
    clf = Classifier.load(ARTIFACTS / task)
    thresholds = np.array(clf.thresholds_, np.float64)
    rows = feature_rows(task, 400, seed=21)
    ref = clf.predict_proba(rows).astype(np.float64)  # (N, L)
    on = ref >= thresholds
    # typed rows: one with no label on (a valid answer), one with exactly one, one with the most labels on
    picks = [int(np.flatnonzero(~on.any(1))[0]), int(np.flatnonzero(on.sum(1) == 1)[0]), int(on.sum(1).argmax())]
    assert on[picks[2]].sum() >= 2
    for i in picks:
        text = [repr(float(v)) for v in rows[i]]
        for j, v in enumerate(text):
            pg.fill(f"#x{j}", v)
        pg.wait_for_function("want => { const l = window.edgeclf.state.last; return l && "
                             "l.row.every((v, k) => v === Number(want[k])); }", arg=text, timeout=30_000)
        row, probs, label = shown(pg)
        assert np.abs(np.array(probs) - ref[i]).max() <= 1e-5
        decided = np.array(pg.evaluate("() => window.edgeclf.state.last.answer"))
        decisive = np.abs(ref[i] - thresholds) > MARGIN
        assert np.array_equal(decided[decisive], clf.predict(rows[i:i + 1])[0][decisive])
        assert label == (", ".join(clf.classes_[decided]) or "no label")
        table = label_table(pg)
        assert [t["name"] for t in table] == list(clf.classes_)
        assert [t["decision"] for t in table] == ["on" if d else "off" for d in decided]
        assert [float(t["mark"].rstrip("%")) for t in table] == [round(100 * t, 1) for t in clf.manifest.thresholds]
        assert [float(t["bar"].rstrip("%")) for t in table] == pytest.approx(100 * ref[i], abs=0.051)
    # many rows through the page's batch path and its decisions
    page_p = np.array(pg.evaluate("pts => window.edgeclf.predictProba(pts)", rows.tolist()))
    page_on = np.array(pg.evaluate("pts => window.edgeclf.predict(pts)", rows.tolist()))
    assert page_p.shape == ref.shape and np.abs(page_p - ref).max() <= 1e-5
    decisive = np.abs(ref - thresholds) > MARGIN
    assert np.array_equal(page_on[decisive], clf.predict(rows)[decisive])
    print(f"{task}: {len(rows)} rows, max |diff| {np.abs(page_p - ref).max():.2e}, "
          f"decisions {np.mean(page_on == clf.predict(rows)):.2%} of (row, label) cells")
    assert (page_p.sum(1) > 1.01).any() or (page_p.sum(1) < 0.99).any()  # independent labels, not a distribution
    shot = tmp_path / f"{task}.png"
    pg.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert errors == []


# ---- categories and filled numbers: a <select> per category column, an empty box where the model fills ----------


@pytest.fixture(scope="module")
def category_server(category_root):
    """The page over an artifacts folder holding the `shop` model (conftest.category_root)."""
    if not (WEB / ORT_DIST / "ort.wasm.min.js").is_file():
        skip_or_fail("onnxruntime-web is not installed (npm ci --prefix web)", browser=True)
    httpd = make_server(WEB, category_root, port=0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


CATEGORY_ROWS = [[None, 5.0, "red"], [0.5, 2.0, "blue"], [-1.2, 7.5, "green"], [None, 3.0, 0], [0.25, 6.0, 2],
                 [2.0, 1.0, "red"], [None, 9.0, "green"]]


@pytest.mark.slow  # category_root trains and exports a model (~30 s)
def test_page_category_model_matches_python_runtime(page, category_server, category_root):
    """A select per category column (the manifest's vocabulary; the graph gets the value's index, as the Python
    runtime feeds it) and an empty box for a number the model fills: the page's probabilities equal the
    Classifier's on the same rows (text, indices, empty cells)."""
    pg, errors = page
    assert open_task(pg, category_server, "shop") == "shop", pg.inner_text("#error")
    clf = Classifier.load(category_root / "shop")
    assert pg.eval_on_selector_all("#x2 option", "os => os.map(o => [o.textContent, o.value])") == [
        ["blue", "0"], ["green", "1"], ["red", "2"]]
    for a, b, color in [(None, 5.0, "red"), (0.5, 2.0, "green"), (None, 3.0, "blue")]:
        pg.fill("#x0", "" if a is None else repr(a))
        pg.fill("#x1", repr(b))
        pg.select_option("#x2", label=color)
        want = [a, b, color]
        pg.wait_for_function("want => { const l = window.edgeclf.state.last; return l && l.row[1] === want[1] && "
                             "l.row[2] === want[2] && (want[0] === null ? Number.isNaN(l.row[0]) : l.row[0] === want[0]); }",
                             arg=[a, b, clf.manifest.features[2].categories.index(color)], timeout=30_000)
        _, probs, label = shown(pg)
        assert np.abs(np.array(probs) - clf.predict_proba([want])[0]).max() <= 1e-5
        assert label == clf.predict([want])[0]
    assert "median" in pg.get_attribute("#x0", "placeholder")
    pg.evaluate("row => window.edgeclf.setInputs(row)", [None, 4.0, "green"])  # text in, the select shows it
    assert pg.eval_on_selector("#x2", "s => s.options[s.selectedIndex].textContent") == "green"
    _, probs, _ = shown(pg)
    assert np.abs(np.array(probs) - clf.predict_proba([[None, 4.0, "green"]])[0]).max() <= 1e-5
    page_p = np.array(pg.evaluate("pts => window.edgeclf.predictProba(pts)", CATEGORY_ROWS))
    assert np.abs(page_p - clf.predict_proba(CATEGORY_ROWS)).max() <= 1e-5
    print(f"shop: {len(CATEGORY_ROWS)} rows, max |diff| {np.abs(page_p - clf.predict_proba(CATEGORY_ROWS)).max():.2e}")
    assert pg.evaluate("pts => window.edgeclf.predict(pts)", CATEGORY_ROWS) == list(clf.predict(CATEGORY_ROWS))
    # an empty box the model does not fill is named, not run; an unseen category names value, column, vocabulary
    pg.fill("#x1", "")
    pg.wait_for_function("() => window.edgeclf.state.last === null")
    assert "enter a number for b" in pg.inner_text("#point")
    message = pg.evaluate("() => window.edgeclf.predictProba([[0.1, 5.0, 'purple']]).then(() => '', e => e.message)")
    assert message.startswith("row 0, column 'color': \"purple\" is not a category seen in training")
    assert '["blue","green","red"]' in message
    typed = pg.evaluate("() => window.edgeclf.setInputs([0.1, 5.0, 'purple']).then(() => '', e => e.message)")
    assert typed.startswith("row 0, column 'color': \"purple\" is not a category seen in training")
    message = pg.evaluate("() => window.edgeclf.predictProba([[0.1, null, 'red']]).then(() => '', e => e.message)")
    assert "column 'b': expected a finite number" in message and '["a"]' in message
    assert errors == []
