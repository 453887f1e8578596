"""Export a model the user brings (an nn.Module in Python, or a torch.export .pt2 file) with proven parity.

The module maps float32 (B, F) to logits: (B, 1) for two classes (the logit of classes[1]) or (B, C); a multi-label
model (labels=[...]) to (B, L), one log-odds per label. It goes
through the same writers, parity policy, manifest and atomic folder write as a model edgeclf trained.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import types
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from edgeclf.artifact.store import CHECK_DATA, staged_folder, write_bytes
from edgeclf.export import DEFAULT_BATCH_SIZES, DEFAULT_OPSET
from edgeclf.export.formats import quiet_torch
from edgeclf.export.geometry import domain_of
from edgeclf.export.keep import CardWriter
from edgeclf.export.parity import ParityResult
from edgeclf.export.pipeline import validate_export_args, write_kept
from edgeclf.export.registry import selected
from edgeclf.export.subject import ExportSpec, parameter_count, state_dict_sha256
from edgeclf.runtime.contract import n_logits
from edgeclf.runtime.errors import InputError, first_line
from edgeclf.runtime.formats import options_of
from edgeclf.runtime.inputs import as_matrix
from edgeclf.runtime.manifest import Feature, Manifest, Origin, thresholds_problem
from edgeclf.tables.kinds import kind_of
from edgeclf.tables.stats import FeatureStats
from edgeclf.train.model import WithProbabilities
from edgeclf.train.tabular import sanitize_name


def export_model(module: nn.Module, out: Path | str, *, features: Sequence[str],
                 classes: Sequence[str] | None = None, check_data: Any,
                 batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, opset: int = DEFAULT_OPSET,
                 name: str | None = None, description: str = "", formats: Sequence[str] = (),
                 edge: Sequence[str] = (), c_prefix: str | None = None, card: CardWriter | None = None,
                 allow_lossy_int8: bool = False, labels: Sequence[str] | None = None,
                 thresholds: Sequence[float] | None = None) -> tuple[Manifest, list[ParityResult]]:
    """Export `module` to out/NAME/ (ONNX per batch size, TorchScript, .pt2, manifest.json) with proven parity.

    formats: the opt-in formats to add, by option or manifest name (["c", "pte"]; "onnx", "torchscript" and
    "torch.export" are always written and may be listed); edge: the same by option name only (kept for callers).

    check_data: rows (array or DataFrame with the feature columns) parity is measured on, plus points spread over
    their range. The module is put in eval mode for the export and its mode restored after.
    labels (instead of classes): a multi-label model, one sigmoid per label; thresholds: one per label (default
    0.5 each), label i is predicted where P(label i) >= thresholds[i].
    """
    features = _names(features, "features")
    classes, cuts = _targets(classes, labels, thresholds)
    sizes = validate_export_args(batch_sizes, opset)
    edge = options_of([*edge, *formats])
    selected(edge)  # an unknown format is refused before anything is written, even the folder's lock
    rows = np.ascontiguousarray(as_matrix(check_data, features), np.float32)  # (N, F), finite
    if len(rows) < 1:
        raise InputError("check_data has no rows: expected at least one row of features to measure parity on")
    name = sanitize_name(name or type(module).__name__)
    was_training = module.training
    module.eval()
    try:
        net = _logit_net(module, rows, features, classes, bool(cuts))
        buf = io.BytesIO()
        np.save(buf, rows, allow_pickle=False)
        spec = replace(_export_spec(module, net, rows, features, classes, name, description, buf.getvalue(),
                                    bool(cuts)), thresholds=cuts)
        with staged_folder(Path(out) / name) as tmp:
            write_bytes(tmp / CHECK_DATA, buf.getvalue())
            manifest, results = write_kept(Path(out) / name, tmp, spec, sizes, opset, edge, c_prefix, "auto", card,
                                           allow_lossy_int8)
    finally:
        module.train(was_training)
    return manifest, results


def _targets(classes: Sequence[str] | None, labels: Sequence[str] | None,
             thresholds: Sequence[float] | None) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """(classes or labels, thresholds: () for a single-label model), checked."""
    if (classes is None) == (labels is None):
        raise InputError("give classes=[...] (one class per row) or labels=[...] (multi-label), exactly one of them")
    if classes is not None:
        if thresholds is not None:
            raise InputError("thresholds are for multi-label models: pass labels=[...] instead of classes=[...]")
        out = _names(classes, "classes")
        if len(out) < 2:
            raise InputError(f"classes {list(out)}: expected at least 2 class names")
        return out, ()
    assert labels is not None
    out = _names(labels, "labels")
    if len(out) < 2:
        raise InputError(f"labels {list(out)}: expected at least 2 label names")
    cuts = tuple(float(t) for t in (thresholds if thresholds is not None else [0.5] * len(out)))
    if problem := thresholds_problem(cuts, len(out)):
        raise InputError(problem)
    return out, cuts


def _names(values: Sequence[str], what: str) -> tuple[str, ...]:
    out = tuple(str(v).strip() for v in values)
    if not out or any(not v for v in out):
        raise InputError(f"{what} {list(values)}: expected a non-empty list of non-empty names")
    dup = next((v for v in out if out.count(v) > 1), None)
    if dup is not None:
        raise InputError(f"{what} {list(out)} has {dup!r} twice: expected distinct names")
    return out


class _TwoLogitsToOne(nn.Module):
    """A two-class model with two logits, as the binary contract wants it: logit of classes[1] = z1 - z0."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z: torch.Tensor = self.net(x)  # (B, 2)
        return z[:, 1:2] - z[:, 0:1]  # (B, 1)


def _check_signature(module: nn.Module) -> None:
    params = [p for p in inspect.signature(module.forward).parameters.values()
              if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(params) != 1:
        raise InputError(f"{type(module).__name__}.forward takes {len(params)} required inputs "
                         f"({', '.join(p.name for p in params)}): expected one float32 (B, F) tensor")


def _trial(module: nn.Module, rows: np.ndarray, features: tuple[str, ...]) -> torch.Tensor:
    with torch.inference_mode():
        try:
            out: Any = module(torch.from_numpy(rows))
        except (RuntimeError, TypeError, IndexError, ValueError) as e:
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            if any(w in first for w in ("Long", "Int", "integer", "Embedding")):
                raise InputError(f"{type(module).__name__} needs integer inputs ({first}): edgeclf exports "
                                 f"models of float32 features") from None
            raise InputError(f"{type(module).__name__} failed on a float32 batch of {len(features)} features "
                             f"({', '.join(features)}): {first}; is its input width {len(features)}?") from None
    if not isinstance(out, torch.Tensor):
        raise InputError(f"{type(module).__name__} returned {type(out).__name__}: expected one logits tensor (B, 1|C)")
    logits: torch.Tensor = out
    return logits


def _logit_net(module: nn.Module, rows: np.ndarray, features: tuple[str, ...], classes: tuple[str, ...],
               multilabel: bool = False) -> nn.Module:
    """The module as a (B, F) -> (B, 1|C|L) logits network, after checking what it really returns."""
    _check_signature(module)
    out = _trial(module, rows, features)
    k = len(classes)
    widths = (k,) if multilabel else (n_logits(k), k)
    if out.ndim != 2 or out.shape[0] != len(rows) or out.shape[1] not in widths:
        want = f"({len(rows)}, 1)" if k == 2 and not multilabel else f"({len(rows)}, {k})"
        what = "labels" if multilabel else "classes"
        raise InputError(f"{type(module).__name__} returned shape {tuple(out.shape)} for {len(rows)} rows: "
                         f"expected {want} logits for {k} {what} {list(classes)}")
    bad = ~torch.isfinite(out).all(dim=1)
    if bad.any():
        raise InputError(f"{type(module).__name__} returned NaN or inf on check_data row {int(bad.nonzero()[0, 0])}: "
                         f"expected finite logits")
    return _TwoLogitsToOne(module) if (k == 2 and out.shape[1] == 2 and not multilabel) else module


def looks_like_probabilities(module: nn.Module, rows: np.ndarray) -> bool:
    """Every row in [0, 1] and summing to 1: a forward that already applies softmax (edgeclf would apply it twice)."""
    with torch.inference_mode():
        z = module(torch.from_numpy(rows)).double()
    return bool(z.shape[1] > 1 and (z >= 0).all() and (z <= 1).all() and torch.allclose(z.sum(1), torch.ones_like(z[:, 0]),
                                                                                      atol=1e-5))


def _export_spec(module: nn.Module, net: nn.Module, rows: np.ndarray, features: tuple[str, ...],
                 classes: tuple[str, ...], name: str, description: str, check_npy: bytes,
                 multilabel: bool = False) -> ExportSpec:
    x = rows.astype(np.float64)  # (N, F)
    feats = tuple(Feature(f, "float32", *v) for f, v in zip(features, FeatureStats.of(x).per_feature()))
    details: dict[str, Any] = {"source": "edgeclf.export.export_model", "check_data": CHECK_DATA,
                               "check_data_sha256": hashlib.sha256(check_npy).hexdigest()}
    if net is not module:
        details["adapted"] = "two logits z0, z1 exported as one binary logit z1 - z0"
    if not multilabel and looks_like_probabilities(module, rows):
        details["warning"] = ("every check row's outputs lie in [0, 1] and sum to 1: the forward seems to return "
                              "probabilities, not logits; softmax/sigmoid is then applied twice")
    origin = Origin("imported", f"{type(module).__name__} (imported nn.Module)", parameter_count(module),
                    type(module).__name__, state_dict_sha256(module), details)
    box = np.array([x.min(0), x.max(0)], np.float32)  # (2, F)
    data = {"description": description or f"check data supplied at export ({len(rows)} rows)",
            "train_rows": 0, "test_rows": 0, "split": "none: imported model"}
    return ExportSpec(name, classes, feats, WithProbabilities(net, len(classes), multilabel).eval(), rows, "check data",
                      domain_of(box, relative=True), origin, data, {}, None)


def load_pt2_module(path: Path | str) -> tuple[nn.Module, int | None, int | None]:
    """A torch.export .pt2 as a module, its fixed batch size (None when the batch dimension is dynamic) and its
    number of features (None when not fixed)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"model file {p} does not exist: expected a .pt2 written by torch.export.save")
    try:
        with quiet_torch():
            program = torch.export.load(str(p))
    except Exception as e:  # a zip of another kind, another torch's schema, garbage: refused alike
        raise _unreadable(p, e) from None
    if not isinstance(program, torch.export.ExportedProgram):
        raise InputError(f"{p} holds a {type(program).__name__}, expected an ExportedProgram")
    with quiet_torch():
        module = program.module()
    # a captured program has its train/eval behaviour baked in, and its module refuses eval(): make the mode
    # switches that export_model and nn.Module.eval() perform no-ops on it
    module.train = types.MethodType(lambda self, mode=True: self, module)  # type: ignore[method-assign]
    module.eval = types.MethodType(lambda self: self, module)  # type: ignore[method-assign]
    return (module, *_input_dims(program, p))


def _unreadable(p: Path, e: Exception) -> InputError:
    version = torch.__version__.split("+")[0]
    if _is_torchscript(p):
        return InputError(f"{p} is a TorchScript archive (torch.jit.save), not a torch.export program: expected a "
                          f".pt2 written by torch.export.save (torch {version})")
    first = first_line(e)[:160]
    if "check the warnings above" in first:  # the warnings are kept quiet: they only said the archive is not one
        first = "not a torch.export archive"
    return InputError(f"{p} is not a torch.export program this torch ({torch.__version__}) can read: {first}. "
                      f"Save it with torch.export.save from torch {version}")


def _is_torchscript(p: Path) -> bool:
    """torch.jit.save writes a zip with <stem>/code/ and <stem>/constants.pkl; torch.export.save does not."""
    import zipfile

    try:
        with zipfile.ZipFile(p) as z:
            return any("/code/" in n or n.endswith("/constants.pkl") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _input_dims(program: torch.export.ExportedProgram, path: Path) -> tuple[int | None, int | None]:
    """(batch, features) of the one (B, F) float32 input: an int where the program fixed it, else None."""
    user = program.graph_signature.user_inputs
    if len(user) != 1:
        raise InputError(f"{path} takes {len(user)} inputs ({', '.join(map(str, user))}): expected one float32 "
                         f"(B, F) tensor")
    node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == user[0])
    val = node.meta.get("val")
    if val is None or val.dtype != torch.float32 or val.ndim != 2:
        raise InputError(f"{path}: input {user[0]!r} is {getattr(val, 'dtype', '?')} of shape "
                         f"{tuple(getattr(val, 'shape', ()))}: expected float32 (B, F)")
    b, f = val.shape
    return (int(b) if isinstance(b, int) else None), (int(f) if isinstance(f, int) else None)


def read_check_data(path: Path | str, features: Sequence[str]) -> np.ndarray:
    """The feature columns of a CSV (with header), Parquet or .npy file, as (N, F) float32."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"check data file {p} does not exist: expected a CSV (with header), Parquet or .npy file")
    if kind_of(p) == "npy":
        try:
            return np.asarray(np.load(p, allow_pickle=False), np.float32)
        except (ValueError, OSError) as e:
            raise InputError(f"{p} is not a readable .npy array ({e})") from None
    from edgeclf.tables.columns import RowNames, features_matrix
    from edgeclf.tables.messages import check_columns
    from edgeclf.tables.read import read_table

    table, where = read_table(p, str(p))
    check_columns(where, [str(n) for n in table.column_names], features, header=False)
    return features_matrix(table, list(features), where, RowNames())  # (N, F) float32, finite


def export_pt2(path: Path | str, out: Path | str, *, features: Sequence[str], classes: Sequence[str],
               check_data: Any, batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, opset: int = DEFAULT_OPSET,
               name: str | None = None, edge: Sequence[str] = (),
               c_prefix: str | None = None, card: CardWriter | None = None,
               allow_lossy_int8: bool = False) -> tuple[Manifest, list[ParityResult]]:
    """export_model for a torch.export .pt2 file (the supported successor of TorchScript as an interchange format)."""
    module, fixed, n_in = load_pt2_module(path)
    if n_in is not None and n_in != len(features):  # its guards would refuse the check rows with a traceback
        raise InputError(f"{path}: the program takes {n_in} features, --features names {len(features)} "
                         f"({', '.join(features)})")
    if fixed is not None:  # its guards refuse any other batch: the exporters and the parity check need several
        raise InputError(
            f"{path} was captured with a fixed batch size of {fixed}, so it cannot be re-exported at other sizes: "
            f"capture it with a dynamic batch dimension, torch.export.export(model, (x,), "
            f"dynamic_shapes=({{0: torch.export.Dim('batch')}},)), then torch.export.save")
    return export_model(module, out, features=features, classes=classes, check_data=check_data,
                        batch_sizes=batch_sizes, opset=opset, name=name or Path(path).stem,
                        description=f"imported from {Path(path).name}", edge=edge, c_prefix=c_prefix, card=card,
                        allow_lossy_int8=allow_lossy_int8)
