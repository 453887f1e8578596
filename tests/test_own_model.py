"""Bring your own model: eight architectures through export_model and `edgeclf export --from`, the runtime on
them unchanged, and every bad input refused cleanly with nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import assert_clean_error, assert_parity_figures, run_cli
from torch import nn

from edgeclf.export.own_model import export_model
from edgeclf.export.pipeline import verify_artifact
from edgeclf.runtime import Classifier
from edgeclf.runtime.errors import InputError

SIZES = (64,)  # one fixed batch exercises the writers (the ladder is the trained tasks' tests' business)


def iris() -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    from sklearn.datasets import load_iris

    d = load_iris()
    return d.data.astype(np.float32), d.target, ["sl", "sw", "pl", "pw"], ["setosa", "versicolor", "virginica"]


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp, self.block, self.out = nn.Linear(4, 16), nn.Sequential(nn.Linear(16, 16), nn.SiLU()), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        return self.out(h + self.block(h))


class OwnScaling(nn.Module):
    """Preprocessing held as buffers inside the module."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(mean))
        self.register_buffer("std", torch.from_numpy(std))
        self.net = nn.Sequential(nn.Linear(4, 8), nn.LeakyReLU(0.1), nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


class Binary(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Softmaxed(nn.Module):
    """Returns probabilities by mistake."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=1)


def architectures() -> dict[str, nn.Module]:
    x, _, _, _ = iris()
    return {
        "layernorm-gelu": nn.Sequential(nn.Linear(4, 16), nn.LayerNorm(16), nn.GELU(), nn.Linear(16, 3)),
        "batchnorm": nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3)),
        "silu-tanh-leaky": nn.Sequential(nn.Linear(4, 8), nn.SiLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8),
                                         nn.LeakyReLU(0.05), nn.Linear(8, 3)),
        "residual": Residual(),
        "dropout": nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3)),
        "own-scaling": OwnScaling(x.mean(0), x.std(0)),
        "binary": Binary(),
        "softmaxed": Softmaxed(),
    }


def trained(name: str, module: nn.Module) -> nn.Module:
    """A brief real training on iris (binary: setosa vs the rest)."""
    x, y, _, _ = iris()
    torch.manual_seed(0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(module.parameters(), lr=0.02)
    module.train()
    for _ in range(60):
        out = module(xt)
        if name == "binary":
            loss = nn.functional.binary_cross_entropy_with_logits(out[:, 0], (yt == 0).float())
        elif name == "softmaxed":
            loss = nn.functional.nll_loss(torch.log(out + 1e-9), yt)
        else:
            loss = nn.functional.cross_entropy(out, yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return module


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    return {name: trained(name, m) for name, m in architectures().items()}


def classes_for(name: str) -> list[str]:
    return ["other", "setosa"] if name == "binary" else iris()[3]


def eager_labels(module: nn.Module, x: np.ndarray, classes: list[str]) -> np.ndarray:
    with torch.inference_mode():
        z = module.eval()(torch.from_numpy(x))
    idx = (z[:, 0] > 0).long() if z.shape[1] == 1 else z.argmax(1)
    return np.array(classes)[idx.numpy()]


NAMES = list(architectures())


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_python_entry_point(name, models, tmp_path):
    module = models[name]
    module.train()  # export_model puts it in eval mode, then restores this
    x, _, features, _ = iris()
    classes = classes_for(name)
    manifest, results = export_model(module, tmp_path, features=features, classes=classes, check_data=x,
                                     batch_sizes=SIZES, name=name)
    assert module.training, "the module's mode is restored"
    assert_parity_figures(results, [f.path for f in manifest.files])
    assert manifest.origin.kind == "imported" and manifest.origin.parameters == sum(p.numel() for p in module.parameters())
    clf = Classifier.load(tmp_path / name)  # the unchanged runtime
    assert list(clf.predict(x)) == list(eager_labels(module, x, classes))
    if name in ("batchnorm", "binary"):  # verify re-runs every check: twice is enough to show it works here
        assert verify_artifact(tmp_path / name)
    warned = "warning" in manifest.origin.details
    assert warned == (name == "softmaxed")


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_cli_entry_point_from_pt2(name, models, tmp_path):
    module = models[name].eval()
    x, _, features, _ = iris()
    classes = classes_for(name)
    program = torch.export.export(module, (torch.from_numpy(x[:8]),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, tmp_path / "model.pt2")
    np.save(tmp_path / "rows.npy", x)
    res = run_cli("export", "--from", tmp_path / "model.pt2", "--features", ",".join(features), "--classes",
                  ",".join(classes), "--check-data", tmp_path / "rows.npy", "--out", tmp_path / "out",
                  "--batch-size", "64", "--name", name)
    assert res.exit_code == 0, res.output
    assert res.output.count("PASS") == 3
    clf = Classifier.load(tmp_path / "out" / name)
    assert list(clf.predict(x)) == list(eager_labels(module, x, classes))
    card = run_cli("info", tmp_path / "out" / name)
    assert "imported" in card.output


def test_dropout_is_inactive_in_the_export(models, tmp_path):
    module = models["dropout"]
    x, _, features, classes = iris()
    export_model(module, tmp_path, features=features, classes=classes, check_data=x, batch_sizes=(64,), name="d")
    clf = Classifier.load(tmp_path / "d")
    a, b = clf.predict_proba(x), clf.predict_proba(x)
    assert np.array_equal(a, b)
    with torch.inference_mode():
        ref = torch.softmax(module.eval()(torch.from_numpy(x)), 1).numpy()
    assert np.abs(a - ref).max() <= 1e-5


def test_two_logit_binary_is_adapted(tmp_path):
    x, y, features, _ = iris()
    torch.manual_seed(1)
    m = nn.Linear(4, 2)
    manifest, results = export_model(m, tmp_path, features=features, classes=["a", "b"], check_data=x,
                                     batch_sizes=(64,), name="two")
    assert all(results) and manifest.signature.logits.columns == 1 and "adapted" in manifest.origin.details
    with torch.inference_mode():
        ref = torch.softmax(m(torch.from_numpy(x)), 1).numpy()
    assert np.abs(Classifier.load(tmp_path / "two").predict_proba(x) - ref).max() <= 1e-5


class TwoInputs(nn.Module):
    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x


class Embedder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.emb(x).sum(1)


class NaNOut(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x[:, :3] - 5.0)  # NaN where x < 5


class Unconvertible(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) + torch.special.zeta(x[:, :3].abs() + 2.0, torch.tensor(1.0))


@pytest.mark.parametrize("module,classes,fragments", [
    (nn.Linear(4, 4), ["a", "b", "c"], ["shape (150, 4)", "(150, 3)"]),
    (nn.Linear(3, 3), ["a", "b", "c"], ["4 features", "input width 4"]),
    (NaNOut(), ["a", "b", "c"], ["NaN or inf", "row 0"]),
    (TwoInputs(), ["a", "b", "c"], ["2 required inputs", "x, mask"]),
    (Embedder(), ["a", "b", "c"], ["integer inputs"]),
    (nn.Linear(4, 3), ["a", "b", "a"], ["'a' twice"]),
    (nn.Linear(4, 3), ["a"], ["at least 2"]),
], ids=["shape", "width", "nonfinite", "two-inputs", "integer", "dup-classes", "one-class"])
def test_bad_models_refused_nothing_written(module, classes, fragments, tmp_path):
    x, _, features, _ = iris()
    with pytest.raises(InputError) as err:
        export_model(module, tmp_path, features=features, classes=classes, check_data=x, batch_sizes=(1,), name="m")
    for f in fragments:
        assert f in str(err.value), str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_unconvertible_operator_is_named(tmp_path):
    x, _, features, classes = iris()
    with pytest.raises(InputError) as err:
        export_model(Unconvertible(), tmp_path, features=features, classes=classes, check_data=x, batch_sizes=(1,),
                     name="u")
    assert "zeta" in str(err.value) and "ONNX" in str(err.value)
    assert not (tmp_path / "u").exists()


def test_cli_from_bad_inputs(tmp_path):
    x, _, features, classes = iris()
    m = nn.Linear(4, 3).eval()
    fixed = torch.export.export(m, (torch.from_numpy(x[:8]),))
    torch.export.save(fixed, tmp_path / "fixed.pt2")
    np.save(tmp_path / "rows.npy", x)
    common = ["--features", ",".join(features), "--classes", ",".join(classes), "--check-data", tmp_path / "rows.npy",
              "--out", tmp_path / "out"]
    assert_clean_error(run_cli("export", "--from", tmp_path / "fixed.pt2", *common), 1, "fixed batch size of 8",
                       "Dim('batch')},)")
    (tmp_path / "junk.pt2").write_bytes(b"PK\x03\x04junk")
    assert_clean_error(run_cli("export", "--from", tmp_path / "junk.pt2", *common), 1, "not a torch.export program")
    assert_clean_error(run_cli("export", "--from", tmp_path / "none.pt2", *common), 1, "does not exist")
    assert_clean_error(run_cli("export", "--from", tmp_path / "fixed.pt2", "--features", "a,b"), 2, "--classes",
                       "--check-data")
    (tmp_path / "rows.csv").write_text("sl,sw\n1,2\n")
    dyn = torch.export.export(m, (torch.from_numpy(x[:8]),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(dyn, tmp_path / "dyn.pt2")
    assert_clean_error(run_cli("export", "--from", tmp_path / "dyn.pt2", "--features", ",".join(features), "--classes",
                               ",".join(classes), "--check-data", tmp_path / "rows.csv", "--out", tmp_path / "out"),
                       1, "no column 'pl'")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_card_warns_about_probabilities(models, tmp_path):
    x, _, features, classes = iris()
    export_model(models["softmaxed"], tmp_path, features=features, classes=classes, check_data=x, batch_sizes=(64,),
                 name="s")
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert "probabilities, not logits" in manifest["origin"]["details"]["warning"]


def test_verify_of_a_brought_in_model_checks_batch_1_on_its_subset(tmp_path):
    """A brought-in model with more check rows than a batch-1 file is checked on (512 + ~512 box points): verify
    slices the traced program's outputs to each file's rows (it compared 41,401 against 1,024 rows and raised)."""
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x = np.random.default_rng(0).normal(size=(1000, 2)).astype(np.float32)
    manifest, _ = export_model(module, tmp_path, features=["a", "b"], classes=["p", "q", "r"], check_data=x,
                               batch_sizes=(1, 64), name="own")
    one, all_rows = (manifest.parity.files[f]["rows"] for f in ("model.b1.onnx", "model.b64.onnx"))
    assert one < all_rows, (one, all_rows)  # the subset path runs
    report = verify_artifact(tmp_path / "own")
    assert_parity_figures(report.results, [f.path for f in manifest.files if f.format != "c"])
    assert report, report
