"""Static int8 quantisation (QDQ) of an exported ONNX file, and the report that is its only claim: int8 files
are not held to the float32 tolerance policy, the report says what they lose.

Choices, each for a reason:
- QDQ format: onnxruntime's recommended one since 1.11, and what its mobile and NNAPI/QNN paths read.
- Only Gemm/MatMul are quantised: the weights are what shrinks; the output Sigmoid/Softmax stay float so
  probabilities keep float resolution instead of steps of 1/255.
- uint8 activations, int8 weights with reduce_range (7-bit weights): x86 CPUs without VNNI multiply u8 x s8
  pairs into int16 and saturate with full 8-bit weights, which would make the labels depend on the CPU.
- Per-tensor by default: per-channel scales measured no better on the four built-in tasks (test accuracy
  equal or 0.5 point lower, check-set agreement within 0.3 point) and the files are 6-18% larger.
- Calibration (MinMax) runs at the file's fixed batch size; the last chunk is filled by wrapping around the
  calibration rows, not with zeros, so padding never widens the calibrated ranges.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np

from edgeclf.export.parity import decisions, run_chunked
from edgeclf.runtime.errors import InputError

if TYPE_CHECKING:
    import onnxruntime as ort

QUANTIZED_OPS = ["Gemm", "MatMul"]


def _batches(rows: np.ndarray, batch: int) -> Iterator[dict[str, np.ndarray]]:
    n = len(rows)
    for start in range(0, n, batch):
        idx = np.arange(start, start + batch) % n  # wrap: the tail is real rows, not zeros
        yield {"input": np.ascontiguousarray(rows[idx], dtype=np.float32)}  # (B, F)


def _reader(rows: np.ndarray, batch: int) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it = _batches(rows, batch)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    return Reader()


def _fixed_batch(onnx_path: Path) -> tuple[int, int]:
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    if len(dims) != 2 or min(dims) <= 0:
        raise InputError(f"{onnx_path.name}: input shape {dims} is not a fixed [B, F]: expected an edgeclf export")
    return dims[0], dims[1]


def quantize_int8(onnx_path: str | Path, out_path: str | Path, calibration_rows: np.ndarray, *,
                  per_channel: bool = False) -> None:
    """Write a statically quantised QDQ copy of onnx_path to out_path (temp name, then rename), calibrated
    on calibration_rows (N, F): the training split."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    src, out = Path(onnx_path), Path(out_path)
    batch, n_features = _fixed_batch(src)
    rows = np.asarray(calibration_rows, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[1] != n_features or len(rows) == 0 or not np.isfinite(rows).all():
        raise InputError(f"calibration rows {rows.shape}: expected (N >= 1, {n_features}) finite values")
    tmp = out.with_name(f".{out.name}.tmp")
    logger = logging.getLogger("root")  # the quantizer logs its pre-processing advice through the root logger
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(
                str(src), str(tmp), _reader(rows, batch), quant_format=QuantFormat.QDQ,
                op_types_to_quantize=QUANTIZED_OPS, per_channel=per_channel, reduce_range=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
    finally:
        logger.setLevel(level)
    tmp.replace(out)


def _run(session: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    batch = session.get_inputs()[0].shape[0]
    name = session.get_inputs()[0].name

    def fn(chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, probs = session.run(["logits", "probabilities"], {name: chunk})
        return np.asarray(logits), np.asarray(probs)

    probs: np.ndarray = run_chunked(fn, np.asarray(x, dtype=np.float32), batch)[1]  # (N, C)
    return probs


def _recall(labels: np.ndarray, y: np.ndarray, k: int) -> float | None:
    mask = y == k
    return float((labels[mask] == k).mean()) if mask.any() else None


def decide(probs: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """The runtime's decisions as columns (runtime column_decisions) for a manifest's thresholds (() for one
    label): (N,) class indices, or (N, L) 0/1, p >= its threshold compared in float32."""
    from edgeclf.runtime.classifier import column_decisions

    return column_decisions(probs, np.asarray(thresholds, np.float32) if len(thresholds) else None)


def _accuracy(decided: np.ndarray, y: np.ndarray) -> float:
    """Share of rows right: for a multi-label model every label of the row (subset accuracy)."""
    right = decided == y
    return float((right.all(axis=1) if right.ndim == 2 else right).mean())


def _recalls(f: np.ndarray, q: np.ndarray, y: np.ndarray, classes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per class (rows of class k labelled k), or per label (positive rows of label k decided positive)."""
    out = {}
    for k, name in enumerate(classes):
        if y.ndim == 2:
            rf, rq = _recall(f[:, k], y[:, k], 1), _recall(q[:, k], y[:, k], 1)
        else:
            rf, rq = _recall(f, y, k), _recall(q, y, k)
        out[name] = {"float32": rf, "int8": rq, "delta": None if rf is None or rq is None else rq - rf}
    return out


def _agreement(p_float: np.ndarray, p_int8: np.ndarray, thresholds: Sequence[float]) -> dict[str, Any]:
    """Label agreement with float32: per row (argmax) for a single-label model; for a multi-label model per
    (row, label) cell, over the cells whose float32 probability is further than the parity margin from its
    threshold (export.parity.decisions: a cell on its threshold has no decision to keep)."""
    same, decisive = decisions(p_int8, p_float, thresholds)
    if len(thresholds):
        same = same[decisive]
    out = {"rows": len(p_float), "label_agreement": float(same.mean()) if len(same) else 1.0,
           "disagreements": int((~same).sum()), "max_abs_probability_diff": float(np.abs(p_float - p_int8).max())}
    if len(thresholds):
        out["cells"] = len(same)  # the (row, label) cells compared
    return out


def int8_report(float_session: ort.InferenceSession, int8_session: ort.InferenceSession, x_test: np.ndarray,
                y_test: np.ndarray, check_rows: np.ndarray, classes: Sequence[str], *,
                float_path: str | Path, int8_path: str | Path, thresholds: Sequence[float] = ()) -> dict[str, Any]:
    """What int8 changes: file size, test accuracy, per-class recall, and label agreement with float32 on
    the check rows (the parity rows: test split + grid). y_test holds class indices into classes; for a
    multi-label model (thresholds given, one per label) an (N, L) 0/1 matrix: accuracy is then subset accuracy,
    recall is per label, and agreement is per (row, label) cell."""
    y = np.asarray(y_test)
    f_test = decide(_run(float_session, x_test), thresholds)  # (N,) or (N, L)
    q_test = decide(_run(int8_session, x_test), thresholds)
    p_float, p_int8 = _run(float_session, check_rows), _run(int8_session, check_rows)  # (M, C)
    before, after = Path(float_path).stat().st_size, Path(int8_path).stat().st_size
    acc_f, acc_q = _accuracy(f_test, y), _accuracy(q_test, y)
    accuracy: dict[str, Any] = {"rows": len(y), "float32": acc_f, "int8": acc_q, "delta": acc_q - acc_f}
    if len(thresholds):
        accuracy["measure"] = "subset accuracy"
    return {
        "bytes": {"float32": before, "int8": after, "ratio": after / before, "grew": after > before},
        "test_accuracy": accuracy,
        "recall": _recalls(f_test, q_test, y, classes),
        "check": _agreement(p_float, p_int8, thresholds),
    }


MIN_AGREEMENT = 0.99  # an int8 file that changes more labels than this of float32's is not a faithful copy


def lossy(details: Mapping[str, Any]) -> str | None:
    """Why an int8 file (its manifest details, from int8_report) does not pay for itself, or None: it is larger than
    its float32 file, or agrees with it on fewer than MIN_AGREEMENT of the check rows' labels."""
    reasons = []
    if float(details.get("bytes.ratio", 0.0)) > 1.0:
        reasons.append(f"{float(details['bytes.ratio']):.2f}x its float32 file's bytes ({details['bytes.int8']:,} vs "
                       f"{details['bytes.float32']:,})")
    agreement = float(details.get("check.label_agreement", 1.0))
    if agreement < MIN_AGREEMENT:
        where = "(row, label) cells" if "check.cells" in details else "rows"
        reasons.append(f"labels agree with float32 on {share(agreement)} of the check {where} (< {MIN_AGREEMENT:.0%}), max "
                       f"probability difference {float(details['check.max_abs_probability_diff']):.2g}")
    return "; ".join(reasons) or None


def share(agreement: float) -> str:
    """An agreement as a percentage, with a third decimal, rounded down, where two would round it up to
    MIN_AGREEMENT (98.995% is refused and must not read as 99.00%, nor 98.9996% as 99.000%)."""
    text = f"{agreement:.2%}"
    if agreement < MIN_AGREEMENT <= float(text[:-1]) / 100:
        # in thousandths of a percent, rounded down (+ 1e-6: 0.98995 * 1e5 is 98994.99...), and below the limit
        milli = min(math.floor(agreement * 1e5 + 1e-6), round(MIN_AGREEMENT * 1e5) - 1)
        return f"{milli / 1e3:.3f}%"
    return text
