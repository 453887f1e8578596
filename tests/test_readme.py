"""The README's numbers are the committed artifacts' numbers, and its API example runs."""

from __future__ import annotations

import json
import re

import pytest
from helpers import ALL_TASKS, ARTIFACTS, ROOT

from edgeclf.train.checkpoint import load_checkpoint
from edgeclf.train.tasks import get_task

README = (ROOT / "README.md").read_text()


def results_rows() -> dict[str, list[str]]:
    block = README.split("<!-- results-table", 1)[1].split("\n\n", 1)[0]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in block.splitlines()[1:] if ln.startswith("|")]
    return {r[0]: r for r in rows[2:]}


@pytest.mark.parametrize("task", ALL_TASKS)
def test_results_table_matches_metrics(task):
    row = results_rows()[task]
    m = json.loads((ARTIFACTS / task / "metrics.json").read_text())
    t = load_checkpoint(ARTIFACTS / task)
    spec = get_task(task)
    assert row[1:3] == [str(len(t.task.features)), str(len(t.task.classes))]
    assert row[3] == "-".join(map(str, t.config.layer_sizes)) + " relu" + (" (std.)" if t.config.standardize else "")
    tc = m["train_config"]
    assert row[4] == f"{tc['optimizer']} lr {tc['lr']}" + (f" wd {tc['weight_decay']}" if tc["weight_decay"] else "")
    assert row[5] == str(m["epochs"]) and row[6] == f"{m['test_accuracy']:.2%}"
    if m.get("kind") == "multilabel":  # F1 at the chosen thresholds, against the MLPClassifier baseline
        mine, mlp = m["test"], m["baselines"]["mlp"]
        assert row[7] == f"F1 {mine['micro_f1']:.4f} / {mine['macro_f1']:.4f} (micro / macro, test)"
        assert row[8] == f"macro-F1 {mine['macro_f1']:.2%} vs {mlp['macro_f1']:.2%} (MLP)"
        assert row[9] == "F1 >= MLP - 1 pt" and row[10] == ("yes" if m["target_met"] else "NO")
        return
    sample = "fresh" if "fresh" in m["calibration"] else "test"
    c = m["calibration"][sample]
    assert row[7] == f"{c['log_loss']:.4f} / {c['ece']:.4f} ({sample})"
    if "cv" in m:
        assert row[8] == f"{m['cv']['cv_mean']:.2%} vs {m['baseline']['cv_mean']:.2%}"
    else:
        assert row[8] == "-" and row[9] == f"{spec.target_accuracy:.1%}".replace(".0%", "%")
    assert row[10] == ("yes" if m["target_met"] else "NO")


def test_readme_python_example_runs():
    block = re.search(r"```python\n(from edgeclf.runtime import Classifier.*?)```", README, re.S).group(1)
    lines = [ln.split("#")[0].rstrip() for ln in block.splitlines()]
    namespace: dict = {}
    exec("\n".join(lines).replace('"artifacts/', f'"{ARTIFACTS}/'), namespace)
    clf = namespace["clf"]
    assert list(clf.predict([[0.0, 0.1], [1.0, 0.0]])) == ["inner", "outer"]
    assert list(clf.classes_) == ["outer", "inner"]
