"""The README's numbers are the committed artifacts' numbers, and its API example runs."""

from __future__ import annotations

import json
import re

import pytest
from helpers import ARTIFACTS, ROOT, TASKS

from edgeclf.train.tasks import get_task

README = (ROOT / "README.md").read_text()


def results_rows() -> dict[str, list[str]]:
    block = README.split("<!-- results-table", 1)[1].split("\n\n", 1)[0]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in block.splitlines()[1:] if ln.startswith("|")]
    return {r[0]: r for r in rows[2:]}


@pytest.mark.parametrize("task", TASKS)
def test_results_table_matches_metrics(task):
    row = results_rows()[task]
    m = json.loads((ARTIFACTS / task / "metrics.json").read_text())
    spec = get_task(task)
    assert row[1] == str(spec.n_classes)
    assert row[2] == "-".join(map(str, (2, *spec.hidden, 1 if spec.n_classes == 2 else spec.n_classes))) + " relu"
    assert row[3] == str(m["epochs"])
    assert row[4] == f"{m['test_accuracy']:.2%}" and row[5] == f"{m['train_accuracy']:.2%}"
    assert row[6] == f"{spec.target_accuracy:.1%}".replace(".0%", "%")


def test_readme_python_example_runs():
    block = re.search(r"```python\n(from edgeclf.runtime import Classifier.*?)```", README, re.S).group(1)
    lines = [ln.split("#")[0].rstrip() for ln in block.splitlines()]
    namespace: dict = {}
    exec("\n".join(lines).replace('"artifacts/', f'"{ARTIFACTS}/'), namespace)
    clf = namespace["clf"]
    assert list(clf.predict([[0.0, 0.1], [1.0, 0.0]])) == ["inner", "outer"]
    assert list(clf.classes_) == ["outer", "inner"]
