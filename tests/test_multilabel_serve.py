"""The server with a multi-label model (issue 26): `label` is a BOOL (N, L) tensor, equal to Classifier.predict, in
JSON and in the binary extension; the metadata names the labels and thresholds. A real `edgeclf serve` process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import skip_or_fail
from test_serve import Server, _get, _missing, _request, binary_body, json_body
from torch import nn

from edgeclf.export import export_model
from edgeclf.runtime import Classifier

LABELS = ["red", "green", "blue"]
pytestmark = pytest.mark.slow  # an export and a server process: ~30-50 s


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Server, Path]:
    why = _missing()
    if why:
        skip_or_fail(why)
    root = tmp_path_factory.mktemp("mlserve")
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 3))
    rows = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    export_model(net, root, features=["a", "b", "c"], labels=LABELS, thresholds=[0.5, 0.4, 0.6], check_data=rows,
                 batch_sizes=(8,), name="tags")
    s = Server([root / "tags"], root)
    yield s, root / "tags"
    assert s.stop() == 0


def test_label_is_bool_per_label(served: tuple[Server, Path]) -> None:
    server, folder = served
    clf = Classifier.load(folder)
    x = np.random.default_rng(3).normal(size=(17, 3)).astype(np.float32)
    status, _, body = _request(server.port, "POST", "/v2/models/tags/infer", json_body(x),
                               {"Content-Type": "application/json"})
    assert status == 200, body
    outs = {o["name"]: o for o in json.loads(body)["outputs"]}
    assert outs["label"]["datatype"] == "BOOL" and outs["label"]["shape"] == [17, 3]
    assert np.array_equal(np.array(outs["label"]["data"]).reshape(17, 3), clf.predict(x))
    assert np.array_equal(np.array(outs["probabilities"]["data"], np.float32).reshape(17, 3), clf.predict_proba(x))
    raw, headers = binary_body(x)
    status, h, body = _request(server.port, "POST", "/v2/models/tags/infer", raw, headers)
    assert status == 200
    cut = int(h["inference-header-content-length"])
    head = json.loads(body[:cut])
    sizes = [o["parameters"]["binary_data_size"] for o in head["outputs"]]
    label = next(i for i, o in enumerate(head["outputs"]) if o["name"] == "label")
    start = cut + sum(sizes[:label])
    got = np.frombuffer(body[start:start + sizes[label]], np.uint8).reshape(17, 3).astype(bool)
    assert np.array_equal(got, clf.predict(x))


def test_metadata_names_labels_and_thresholds(served: tuple[Server, Path]) -> None:
    server, _ = served
    status, _, body = _get(server.port, "/v2/models/tags")
    assert status == 200
    meta = json.loads(body)
    assert meta["parameters"]["labels"] == LABELS and meta["parameters"]["thresholds"] == [0.5, 0.4, 0.6]
    assert {"name": "label", "datatype": "BOOL", "shape": [-1, 3]} in meta["outputs"]
