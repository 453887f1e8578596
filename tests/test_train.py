"""Training: registry, data, targets, the lesson's lesson, determinism, devices, checkpoints, CLI errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import ARTIFACTS, TOY_TASKS, assert_clean_error, run_cli, snapshot

from edgeclf.runtime import Classifier
from edgeclf.runtime.errors import ArtifactError, InputError
from edgeclf.train import loop
from edgeclf.train.api import train_task
from edgeclf.train.calibration import calibration_summary
from edgeclf.train.checkpoint import load_checkpoint
from edgeclf.train.loop import TrainConfig, resolve_device, train
from edgeclf.train.model import ModelConfig, Standardize, build_mlp
from edgeclf.train.tasks import TASKS as REGISTRY
from edgeclf.train.tasks import get_task

TASKS = TOY_TASKS


def model_config(task: str, **kw: object) -> ModelConfig:
    spec = REGISTRY[task]
    base = dict(task=task, n_features=len(spec.features), n_classes=spec.n_classes, hidden=spec.hidden,
                activation=spec.activation, standardize=spec.standardize)
    return ModelConfig(**{**base, **kw})  # type: ignore[arg-type]


def fit(task: str, **overrides: object):
    spec = REGISTRY[task]
    return train(spec, TrainConfig.defaults(spec, device="cpu", **overrides), model_config(task))


def test_registry_matches_cli_and_lesson():
    assert set(TASKS) <= set(REGISTRY)
    sizes = {name: (len(REGISTRY[name].dataset().x_train), len(REGISTRY[name].dataset().x_test)) for name in TASKS}
    assert sizes == {"circles": (800, 200), "blobs": (800, 200), "moons": (800, 200), "spirals": (240, 60)}
    assert [REGISTRY[t].n_classes for t in TASKS] == [4, 2, 2, 3]


def test_tables_split_stratified_toys_as_the_lesson():
    spec = get_task("wine")
    d = spec.dataset()
    ratio = lambda y: np.bincount(y, minlength=spec.n_classes) / len(y)  # noqa: E731
    assert np.abs(ratio(d.y_train) - ratio(d.y_test)).max() < 0.02 and d.split.startswith("stratified")
    from sklearn.model_selection import train_test_split

    x, y = REGISTRY["moons"].make_data(1000, 42)
    lesson = train_test_split(x.astype(np.float32), y, test_size=0.2, random_state=42)[1]
    assert np.array_equal(REGISTRY["moons"].dataset().x_test, lesson)


@pytest.mark.parametrize("task", TASKS)
def test_fresh_sample_is_new(task):
    spec = REGISTRY[task]
    d = spec.dataset()
    x, y = spec.fresh()
    assert len(x) >= 19_998 and set(np.unique(y)) == set(range(spec.n_classes))
    shared = set(map(tuple, x.tolist())) & set(map(tuple, d.x_all.tolist()))
    assert len(shared) <= 3, shared  # new points (a spiral's arms all start at the origin)


def test_circles_data_is_the_lessons():
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=1000, noise=0.03, random_state=42)
    d = REGISTRY["circles"].dataset()
    assert np.allclose(np.sort(d.x_all, axis=0), np.sort(x.astype(np.float32), axis=0))
    assert d.y_train.sum() + d.y_test.sum() == y.sum()


@pytest.fixture(scope="module")
def fresh_results():
    """Every task trained with its defaults on CPU (a few seconds in all)."""
    return {t: fit(t) for t in TASKS}


@pytest.mark.parametrize("task", TASKS)
def test_defaults_reach_target(task, fresh_results):
    r = fresh_results[task]
    spec = REGISTRY[task]
    assert r.metrics["test_accuracy"] >= spec.target_accuracy and r.metrics["target_met"] is True
    assert len(r.metrics["history"]["test_accuracy"]) == spec.recipes[spec.optimizer].epochs
    # the history's last entry is the reported figure
    assert r.metrics["history"]["test_loss"][-1] == r.metrics["test_loss"]
    assert set(r.metrics["calibration"]) == {"test", "fresh"}


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_sgd_defaults_reach_target(task):
    """Each optimizer has its own recipe (lr, epochs): --optimizer sgd alone reaches the task's target."""
    r = fit(task, optimizer="sgd")
    assert r.metrics["train_config"]["optimizer"] == "sgd" and r.metrics["train_config"]["weight_decay"] == 0
    assert r.metrics["test_accuracy"] >= REGISTRY[task].target_accuracy, r.metrics["test_accuracy"]


def test_missed_target_is_said(tmp_path):
    res = run_cli("train", "spirals", "--epochs", "3", "--out", tmp_path, "--quiet")
    assert res.exit_code == 0, res.output
    assert "warning: spirals missed its target" in res.output
    assert json.loads((tmp_path / "spirals" / "metrics.json").read_text())["target_met"] is False


@pytest.mark.parametrize("task", TASKS)
def test_committed_metrics_reach_target(task):
    m = json.loads((ARTIFACTS / task / "metrics.json").read_text())
    assert m["test_accuracy"] >= REGISTRY[task].target_accuracy and m["target_met"] is True
    assert m["seed"] == 42 and m["device"] == "cpu"


@pytest.mark.parametrize("task", TASKS)
def test_committed_models_are_calibrated_on_a_fresh_sample(task):
    """Computed here from the committed ONNX through the runtime, not copied from metrics.json."""
    spec = REGISTRY[task]
    x, y = spec.fresh()
    got = calibration_summary(Classifier.load(ARTIFACTS / task).predict_proba(x), y)
    targets = spec.fresh_targets
    assert got["accuracy"] >= targets["accuracy"], got
    assert got["log_loss"] <= targets["log_loss"], got
    assert got["ece"] <= targets["ece"], got
    recorded = json.loads((ARTIFACTS / task / "metrics.json").read_text())["calibration"]["fresh"]
    assert recorded["rows"] == got["rows"] and recorded["accuracy"] == pytest.approx(got["accuracy"], abs=1e-4)
    assert recorded["log_loss"] == pytest.approx(got["log_loss"], rel=1e-3, abs=1e-6)


def test_lessons_lesson_nonlinearity_matters():
    spec = REGISTRY["circles"]
    r = train(spec, TrainConfig.defaults(spec, device="cpu"), model_config("circles", activation="none"))
    assert r.metrics["test_accuracy"] < 0.60 and r.metrics["target_met"] is False
    relu = train(spec, TrainConfig.defaults(spec, device="cpu"), model_config("circles", activation="relu"))
    assert relu.metrics["test_accuracy"] >= spec.target_accuracy


def test_standardize_layer_learns_train_statistics():
    x = torch.tensor([[1.0, 5.0, 3.0], [3.0, 5.0, 7.0]])
    layer = Standardize(3)
    layer.fit(x)
    assert torch.allclose(layer.mean, torch.tensor([2.0, 5.0, 5.0])) and torch.equal(layer.std[1], torch.tensor(1.0))
    assert torch.allclose(layer(x), torch.tensor([[-1.0, 0.0, -1.0], [1.0, 0.0, 1.0]]))
    m = build_mlp(ModelConfig("t", 3, 3, (4,), standardize=True))
    assert isinstance(m[0], Standardize) and {"0.mean", "0.std"} <= set(m.state_dict())


def test_same_seed_bit_identical_and_seed_matters():
    spec = REGISTRY["moons"]
    cfg = TrainConfig.defaults(spec, device="cpu", epochs=30, batch_size=64)  # mini-batches: data order counts
    a, b = train(spec, cfg, model_config("moons")), train(spec, cfg, model_config("moons"))
    c = train(spec, TrainConfig.defaults(spec, device="cpu", epochs=30, batch_size=64, seed=7), model_config("moons"))
    sa, sb, sc = a.model.state_dict(), b.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.metrics == b.metrics


def test_training_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit("blobs", epochs=2)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("activation,layer", [("relu", torch.nn.ReLU), ("tanh", torch.nn.Tanh), ("none", None)])
def test_mlp_builder(activation, layer):
    m = build_mlp(ModelConfig("blobs", 2, 4, (10, 10), activation))
    assert [type(x) for x in m if not isinstance(x, torch.nn.Linear)] == ([layer, layer] if layer else [])
    assert m(torch.zeros(5, 2)).shape == (5, 4)
    assert build_mlp(ModelConfig("circles", 2, 2, (3,))).forward(torch.zeros(1, 2)).shape == (1, 1)


@pytest.mark.parametrize("requested,available,expected", [
    ("auto", True, "cuda"), ("auto", False, "cpu"), ("cpu", True, "cpu"), ("cuda", True, "cuda"),
])
def test_resolve_device(requested, available, expected):
    assert resolve_device(requested, available) == expected


def test_cuda_requested_without_gpu_is_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="no CUDA GPU"):
        resolve_device("cuda")
    assert_clean_error(run_cli("train", "circles", "--device", "cuda", "--quiet"), 1, "'cuda'", "--device cpu")


def test_auto_device_moves_work_to_cuda_when_available(monkeypatch):
    """Without a GPU, check the plumbing: 'auto' with CUDA present sends model and data to 'cuda'."""
    seen = []
    monkeypatch.setattr(loop, "resolve_device", lambda req: "cuda")
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, dev: seen.append(str(dev)) or self)
    monkeypatch.setattr(torch.Tensor, "to", lambda self, dev: seen.append(str(dev)) or self)
    spec = REGISTRY["blobs"]
    r = train(spec, TrainConfig.defaults(spec, epochs=1), model_config("blobs"))
    assert r.device == "cuda" and r.metrics["device"] == "cuda"
    assert seen and set(seen) == {"cuda"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_cuda_training_loads_on_cpu(tmp_path):
    r = train_task("blobs", tmp_path, device="cuda")
    t = load_checkpoint(tmp_path / "blobs")
    assert t.metrics["device"] == "cuda" and r.metrics["test_accuracy"] >= 0.995


def test_checkpoint_roundtrip_weights_only(tmp_path):
    r = train_task("circles", tmp_path, epochs=3)
    t = load_checkpoint(tmp_path / "circles", "circles")
    assert t.config == r.model_config
    assert all(torch.equal(a, b) for a, b in zip(t.model.state_dict().values(), r.model.state_dict().values()))
    assert t.metrics == json.loads((tmp_path / "circles" / "metrics.json").read_text())
    d = REGISTRY["circles"].dataset()
    assert np.array_equal(t.data.x_test, d.x_test) and np.array_equal(t.data.y_train, d.y_train)
    assert t.task.classes == ("outer", "inner") and t.task.stats["min"] == [float(str(v)) for v in d.x_train.min(0)]
    with pytest.raises(ArtifactError, match="task 'circles', expected 'blobs'"):
        load_checkpoint(tmp_path / "circles", "blobs")


def test_training_output_is_byte_reproducible(tmp_path):
    train_task("blobs", tmp_path / "a", epochs=20)
    train_task("blobs", tmp_path / "b", epochs=20)
    assert snapshot(tmp_path / "a" / "blobs") == snapshot(tmp_path / "b" / "blobs")
    assert b"time" not in (tmp_path / "a" / "blobs" / "metrics.json").read_bytes()


def test_interrupted_save_keeps_previous_files(tmp_path, monkeypatch):
    train_task("circles", tmp_path, epochs=2)
    before = snapshot(tmp_path / "circles")

    def boom(*a, **k):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        train_task("circles", tmp_path, epochs=5)
    assert snapshot(tmp_path / "circles") == before
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == ["circles"]


@pytest.mark.parametrize("args,code,fragments", [
    (["train", "squares"], 2, ["'squares'", "circles"]),
    (["train", "circles", "--hidden", "10,x"], 2, ["'10,x'", "comma-separated"]),
    (["train", "circles", "--hidden", "10,-3"], 2, ["'10,-3'"]),
    (["train", "circles", "--epochs", "0"], 2, ["--epochs", "0"]),
    (["train", "circles", "--lr", "0"], 2, ["--lr", "0"]),
    (["train", "circles", "--lr", "-1"], 2, ["--lr", "-1"]),
    (["train", "circles", "--optimizer", "rmsprop"], 2, ["'rmsprop'"]),
    (["train", "circles", "--activation", "gelu"], 2, ["'gelu'"]),
    (["train", "circles", "--device", "tpu"], 2, ["'tpu'"]),
    (["train", "circles", "--optimizer", "sgd", "--weight-decay", "0.01"], 1, ["weight decay 0.01", "adam"]),
], ids=["unknown-task", "hidden-not-int", "hidden-negative", "epochs-0", "lr-0", "lr-negative", "optimizer",
        "activation", "device", "sgd-decay"])
def test_train_bad_input(args, code, fragments):
    assert_clean_error(run_cli(*args, "--quiet"), code, *fragments)


def test_train_unwritable_out(tmp_path, monkeypatch):
    import edgeclf.artifact.store as store

    monkeypatch.setattr(store, "_can_write", lambda folder: False)  # as for a read-only folder, even as root
    assert_clean_error(run_cli("train", "circles", "--out", tmp_path, "--quiet"), 1, "not writable", str(tmp_path))
    assert list(tmp_path.iterdir()) == []  # refused before training, nothing written


def test_train_out_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert_clean_error(run_cli("train", "circles", "--out", f / "sub", "--quiet"), 1, "cannot create output folder")


def test_library_errors_name_values():
    with pytest.raises(InputError, match="'squares'.*circles"):
        get_task("squares")
    with pytest.raises(InputError, match="-5"):
        TrainConfig(epochs=-5, lr=0.1)
    with pytest.raises(InputError, match="'gelu'"):
        ModelConfig("circles", 2, 2, (4,), "gelu")


def test_train_cli_writes_checkpoint(tmp_path):
    res = run_cli("train", "moons", "--epochs", "5", "--hidden", "4", "--seed", "3", "--out", tmp_path, "--quiet")
    assert res.exit_code == 0, res.output
    assert "moons: test accuracy" in res.output
    t = load_checkpoint(tmp_path / "moons")
    assert t.config.hidden == (4,) and t.metrics["seed"] == 3 and t.metrics["epochs"] == 5
