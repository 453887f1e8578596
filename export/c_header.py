"""A dependency-free C99 header for an MLP classifier: microcontrollers, firmware, any C or C++ program.

The header holds the weights as `static const float` arrays (flash on a microcontroller) and three
`static inline` functions that keep their activations on the stack: no malloc, no stdio, no globals that
change, only <math.h> (expf for probabilities, tanhf for tanh layers). Several models live in one program
under different prefixes.

Input standardisation is applied first, `(x[i] - mean[i]) / std[i]`, not folded into the first layer:
folding (W / std, b - W @ (mean / std)) rounds differently from the graph the other formats run, and when the
features sit far from zero relative to their spread it subtracts two large nearly equal sums, so the C
outputs would drift from ONNX and eager PyTorch by more than the tolerance policy allows. Applying it costs
2F floats of flash and F divisions per row, and is the same arithmetic as the graph.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from edgeclf.runtime.errors import InputError
from edgeclf.runtime.manifest import thresholds_problem

if TYPE_CHECKING:
    from torch import nn

ACTIVATIONS = ("none", "relu", "tanh")
# static identifiers keep 63 significant characters (C99 5.2.4.1); the longest suffix is "_predict_proba"
MAX_PREFIX = 48
_PREFIX_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_C_ACT = {"none": "{s}", "relu": "({s} < 0.0f ? 0.0f : {s})", "tanh": "tanhf({s})"}  # relu keeps NaN, as torch

Layer = tuple[np.ndarray, np.ndarray]  # W (out, in) float32, b (out,) float32


@dataclass(frozen=True)
class CHeader:
    """One generated header. flash_bytes: the float arrays (weights, biases, mean/std); ram_bytes: the float
    arrays the deepest call (P_predict_proba -> P_logits) keeps on the stack, without the compiler's spills."""

    prefix: str
    text: str
    flash_bytes: int
    ram_bytes: int

    def write(self, path: str | Path) -> Path:
        """Write to a temp name beside `path`, then rename: a reader never sees half a header."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(self.text, encoding="ascii")
        tmp.replace(path)
        return path


def c_float(value: float) -> str:
    """A float32 as a C literal that parses back to the same bits: 9 significant digits always suffice."""
    text = f"{float(np.float32(value)):.9g}"
    if not any(c in text for c in ".en"):
        text += ".0"  # "1f" is not a C literal; "1.0f" is
    return text + "f"


def c_string(text: str) -> str:
    """A C string literal for any Unicode text: UTF-8 bytes, non-printables as 3-digit octal escapes (hex ones
    would swallow following digits), and '?' escaped so no trigraph forms under -std=c99."""
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\?':
            out.append("\\" + ch)
        elif 32 <= byte < 127:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix) or len(prefix) > MAX_PREFIX:
        raise InputError(
            f"C prefix {prefix!r} is not usable: expected a C identifier of at most {MAX_PREFIX} characters "
            "that starts with a letter (letters, digits, '_'), e.g. 'edgeclf' or 'door_model'"
        )
    return prefix


def _check_layers(layers: Sequence[Layer], n_features: int, n_classes: int, multilabel: bool = False) -> list[Layer]:
    if not layers:
        raise InputError("the MLP has no Linear layer: expected at least one (W, b) pair")
    out: list[Layer] = []
    width = n_features
    for k, (w, b) in enumerate(layers):
        w, b = np.asarray(w, dtype=np.float32), np.asarray(b, dtype=np.float32)
        if w.ndim != 2 or w.shape[1] != width or b.shape != (w.shape[0],):
            raise InputError(
                f"layer {k}: weight {w.shape} and bias {b.shape} do not chain: expected weight (out, {width}) "
                "and bias (out,)"
            )
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise InputError(f"layer {k} holds NaN or infinite weights: expected finite float32 values")
        out.append((w, b))
        width = w.shape[0]
    expected = 1 if n_classes == 2 and not multilabel else n_classes
    if width != expected:
        raise InputError(
            f"the last layer has {width} outputs: expected {expected} for {n_classes} "
            f"{'labels' if multilabel else 'classes'} "
            "(binary: one logit of classes[1]; multiclass: one logit per class; multilabel: one per label)"
        )
    return out


def _check_standardisation(mean: Any, std: Any, n_features: int) -> tuple[np.ndarray, np.ndarray] | None:
    if mean is None and std is None:
        return None
    if mean is None or std is None:
        raise InputError("standardisation needs both mean and std, got only one of them")
    m, s = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)  # (F,)
    if m.shape != (n_features,) or s.shape != (n_features,):
        raise InputError(f"mean {m.shape} and std {s.shape}: expected ({n_features},) each, one per feature")
    if not (np.isfinite(m).all() and np.isfinite(s).all()):
        raise InputError("mean and std must be finite")
    return m, np.where(s == 0, np.float32(1), s).astype(np.float32)  # a constant feature: divide by 1


def _check_names(features: Sequence[str], classes: Sequence[str]) -> None:
    if not features or not all(isinstance(f, str) for f in features):
        raise InputError(f"features {list(features)!r}: expected a non-empty list of names")
    if len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise InputError(f"classes {list(classes)!r}: expected at least 2 class names")


def c_header(layers: Sequence[Layer], activation: str, *, features: Sequence[str], classes: Sequence[str],
             prefix: str = "edgeclf", mean: Any = None, std: Any = None,
             thresholds: Sequence[float] | None = None, fill: Sequence[float | None] | None = None,
             categories: Sequence[int] | None = None) -> CHeader:
    """Emit the MLP Linear, act, ..., Linear (W (out, in), b (out,)) as one C99 header; see the module doc.
    thresholds: a multi-label model's (classes are then its labels): P_predict writes one 0/1 per label.
    fill: per feature, the value a NaN input takes before standardisation (None: not filled), as the graph.
    categories: per feature, its number of categories (0: a number): the input is the category's index, one-hot
    encoded before the first layer, as the graph."""
    if activation not in ACTIVATIONS:
        raise InputError(f"cannot emit activation {activation!r} in C: expected one of {', '.join(ACTIVATIONS)}")
    check_prefix(prefix)
    _check_names(features, classes)
    multilabel = thresholds is not None
    cats = list(categories) if categories is not None and any(categories) else None
    if cats is not None and (len(cats) != len(features) or mean is None):
        raise InputError(f"categories has {len(cats)} counts: expected one per feature ({len(features)}), with mean and std")
    checked = _check_layers(layers, sum(k or 1 for k in cats) if cats else len(features), len(classes), multilabel)
    scale = _check_standardisation(mean, std, len(features))
    filled = _check_fill(fill, len(features), scale is not None)
    plan = _Plan(prefix, checked, activation, scale is not None, filled is not None, cats)
    inputs = _fill_doc(prefix, features, fill) + _category_doc(prefix, features, cats)
    arrays = _arrays(prefix, checked, scale) + _fill_arrays(prefix, filled) + _category_arrays(prefix, cats)
    if thresholds is not None:
        if problem := thresholds_problem(thresholds, len(classes)):
            raise InputError(problem)
        head = [_multilabel_preamble(prefix, features, classes, thresholds) + inputs, arrays, _logits_fn(plan),
                _multilabel_fns(prefix)]
    else:
        head = [_preamble(prefix, features, classes, checked[-1][0].shape[0]) + inputs, arrays,
                _logits_fn(plan), _proba_fn(prefix, len(classes)), _predict_fn(prefix, len(classes))]
    parts = [*head, f"#endif /* {_guard(prefix)} */\n"]
    floats = sum(w.size + b.size for w, b in checked) + (2 * len(features) if scale is not None else 0) + \
        (len(features) if filled is not None else 0)
    n_logits = checked[-1][0].shape[0]
    return CHeader(prefix, "\n".join(parts), flash_bytes=4 * floats, ram_bytes=4 * (plan.buffer_floats + n_logits))


def _check_fill(fill: Sequence[float | None] | None, n_features: int, scale: bool) -> np.ndarray | None:
    """(F,) float32 fill values, NaN where a feature is not filled; None without fill."""
    if fill is None or all(v is None for v in fill):
        return None
    if len(fill) != n_features or not scale:
        raise InputError(f"fill has {len(fill)} values: expected one per feature ({n_features}), with mean and std")
    return np.array([np.nan if v is None else v for v in fill], np.float32)


def _fill_doc(p: str, features: Sequence[str], fill: Sequence[float | None] | None) -> str:
    if fill is None or all(v is None for v in fill):
        return ""
    names = ", ".join(f for f, v in zip(features, fill) if v is not None)
    return (f"/* Empty cells: pass NAN (math.h) for {names}; {p}_logits puts the training median there, as the\n"
            " * exported graph does. isnan needs IEEE floats: do not build with -ffast-math. */\n")


def _fill_arrays(p: str, filled: np.ndarray | None) -> str:
    if filled is None:
        return ""
    flags = ", ".join("0" if np.isnan(v) else "1" for v in filled)
    return (f"#define {p}_has_fill 1 /* {p}_fill and {p}_filled exist (`#if {p}_has_fill`: 0 in a header without) */\n"
            f"static const float {p}_fill[{filled.size}] = {_c_vector(np.nan_to_num(filled, nan=0.0))};\n"
            f"static const unsigned char {p}_filled[{filled.size}] = {{{flags}}};\n")


def _category_doc(p: str, features: Sequence[str], cats: list[int] | None) -> str:
    if cats is None:
        return ""
    names = ", ".join(f"{f} (0..{k - 1})" for f, k in zip(features, cats) if k)
    return (f"/* Categories: pass the value's index in its vocabulary (manifest.json, features[].categories) as a\n"
            f" * float for {names}; {p}_logits one-hot encodes it, as the exported graph does (an index outside\n"
            " * the range gives an all-zero code: check it before calling). */\n")


def _category_arrays(p: str, cats: list[int] | None) -> str:
    if cats is None:
        return ""
    return (f"#define {p}_has_categories 1 /* {p}_n_categories exists (0: a number; `#if {p}_has_categories`) */\n"
            f"static const int {p}_n_categories[{len(cats)}] = {{{', '.join(map(str, cats))}}};\n")


def _guard(prefix: str) -> str:
    # the prefix as given: two headers whose prefixes differ only in case must not skip each other silently
    return f"EDGECLF_MODEL_H_{prefix}"


def _preamble(p: str, features: Sequence[str], classes: Sequence[str], n_logits: int) -> str:
    P = p.upper()
    binary = "one logit, of classes[1]: p = 1 / (1 + exp(-z))" if n_logits == 1 else "one logit per class, softmax"
    return f"""/* Generated by edgeclf: an MLP classifier in C99. No malloc, no stdio, no mutable globals.
 * {p}_logits(x, z)         z: {p.upper()}_N_LOGITS floats ({binary})
 * {p}_predict_proba(x, p)  p: {P}_N_CLASSES floats, p[i] = probability of {p}_classes[i]
 * {p}_predict(x)           index into {p}_classes (from the logits, no expf)
 * x: {P}_N_FEATURES floats in the order of {p}_features, raw (any standardisation is applied here).
 * Link with -lm. */
#ifndef {_guard(p)}
#define {_guard(p)}

#include <math.h>

#define {P}_N_FEATURES {len(features)}
#define {P}_N_CLASSES {len(classes)}
#define {P}_N_LOGITS {n_logits}

static const char *const {p}_features[{P}_N_FEATURES] = {{{", ".join(c_string(f) for f in features)}}};
static const char *const {p}_classes[{P}_N_CLASSES] = {{{", ".join(c_string(c) for c in classes)}}};
"""


def _multilabel_preamble(p: str, features: Sequence[str], labels: Sequence[str], thresholds: Sequence[float]) -> str:
    P = p.upper()
    return f"""/* Generated by edgeclf: a multi-label MLP classifier in C99. No malloc, no stdio, no mutable globals.
 * {p}_logits(x, z)         z: {P}_N_LABELS floats, the log-odds of each label
 * {p}_predict_proba(x, p)  p: {P}_N_LABELS floats, p[i] = P({p}_labels[i] is present) (independent sigmoids)
 * {p}_predict(x, y)        y: {P}_N_LABELS ints, y[i] = 1 where p[i] >= {p}_thresholds[i], else 0
 * x: {P}_N_FEATURES floats in the order of {p}_features, raw (any standardisation is applied here).
 * Link with -lm. */
#ifndef {_guard(p)}
#define {_guard(p)}

#include <math.h>

#define {P}_N_FEATURES {len(features)}
#define {P}_N_LABELS {len(labels)}
#define {P}_N_LOGITS {len(labels)}
/* the kind, for code that knows only the symbol prefix: `#if {p}_multilabel` (0 in a single-label header) */
#define {p}_multilabel 1

static const char *const {p}_features[{P}_N_FEATURES] = {{{", ".join(c_string(f) for f in features)}}};
static const char *const {p}_labels[{P}_N_LABELS] = {{{", ".join(c_string(c) for c in labels)}}};
/* per-label decision thresholds, chosen on validation rows (manifest.json "thresholds") */
static const float {p}_thresholds[{P}_N_LABELS] = {{{", ".join(c_float(t) for t in thresholds)}}};
"""


def _multilabel_fns(p: str) -> str:
    P = p.upper()
    # the decision compares the probability, as the runtime does (p >= t in float32), not the logit with
    # logit(t): the two round differently for a row on the threshold
    return f"""static inline void {p}_predict_proba(const float *x, float *proba) {{
    float z[{P}_N_LABELS];
    int c;
    {p}_logits(x, z);
    for (c = 0; c < {P}_N_LABELS; c++) proba[c] = 1.0f / (1.0f + expf(-z[c]));
}}

static inline void {p}_predict(const float *x, int *labels) {{
    float proba[{P}_N_LABELS];
    int c;
    {p}_predict_proba(x, proba);
    for (c = 0; c < {P}_N_LABELS; c++) labels[c] = proba[c] >= {p}_thresholds[c] ? 1 : 0;
}}
"""


def _c_vector(values: np.ndarray, per_line: int = 8) -> str:
    items = [c_float(v) for v in values.reshape(-1)]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "{\n    " + ",\n    ".join(lines) + "\n}"


def _c_row(values: np.ndarray, per_line: int = 8) -> str:
    items = [c_float(v) for v in values]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "    {" + ",\n     ".join(lines) + "}"


def _arrays(p: str, layers: list[Layer], scale: tuple[np.ndarray, np.ndarray] | None) -> str:
    out = []
    if scale is not None:
        out.append(f"static const float {p}_mean[{scale[0].size}] = {_c_vector(scale[0])};")
        out.append("/* a zero std was replaced by 1 */")
        out.append(f"static const float {p}_std[{scale[1].size}] = {_c_vector(scale[1])};")
    for k, (w, b) in enumerate(layers):
        rows = ",\n".join(_c_row(row) for row in w)  # (out, in): row o feeds unit o
        out.append(f"static const float {p}_w{k}[{w.shape[0]}][{w.shape[1]}] = {{\n{rows}\n}};")
        out.append(f"static const float {p}_b{k}[{b.size}] = {_c_vector(b)};")
    return "\n".join(out) + "\n"


class _Plan:
    """Which stack buffer each layer reads and writes: two ping-pong buffers, each as wide as the widest
    activation it ever holds; the last layer writes straight into the caller's logits."""

    def __init__(self, prefix: str, layers: list[Layer], activation: str, standardise: bool, fill: bool = False,
                 categories: list[int] | None = None) -> None:
        self.prefix, self.layers, self.activation, self.standardise = prefix, layers, activation, standardise
        self.fill, self.categories = fill, categories
        self.sizes = [0, 0]  # floats in h0, h1
        self.sources: list[str] = []
        self.targets: list[str] = []
        src = "x"
        if standardise:
            src = self._use(0, layers[0][0].shape[1])
        for k, (w, _) in enumerate(layers):
            self.sources.append(src)
            if k == len(layers) - 1:
                self.targets.append("logits")
            else:
                src = self._use(1 if src == "h0" else 0, w.shape[0])
                self.targets.append(src)

    def _use(self, i: int, n: int) -> str:
        self.sizes[i] = max(self.sizes[i], n)
        return f"h{i}"

    @property
    def buffer_floats(self) -> int:
        return sum(self.sizes)


def _layer_loop(p: str, k: int, w: np.ndarray, src: str, dst: str, act: str) -> str:
    n_out, n_in = w.shape
    value = _C_ACT[act].format(s="s")
    return f"""    /* layer {k}: {n_in} -> {n_out}{'' if dst == 'logits' else ', ' + act} */
    for (o = 0; o < {n_out}; o++) {{
        float s = 0.0f;
        for (i = 0; i < {n_in}; i++) s += {p}_w{k}[o][i] * {src}[i];
        s += {p}_b{k}[o];
        {dst}[o] = {value};
    }}"""


def _logits_fn(plan: _Plan) -> str:
    p = plan.prefix
    body = [f"    float h{i}[{n}];" for i, n in enumerate(plan.sizes) if n]
    body.append("    int o, i;")
    if plan.standardise:
        v = f"({p}_filled[i] && isnan(x[i]) ? {p}_fill[i] : x[i])" if plan.fill else "x[i]"
        if plan.categories:
            body.append(_one_hot_loop(p, v))
        else:
            body.append(f"    for (i = 0; i < {p.upper()}_N_FEATURES; i++) h0[i] = ({v} - {p}_mean[i]) / {p}_std[i];")
    last = len(plan.layers) - 1
    for k, (w, _) in enumerate(plan.layers):
        act = "none" if k == last else plan.activation
        body.append(_layer_loop(p, k, w, plan.sources[k], plan.targets[k], act))
    return f"static inline void {p}_logits(const float *x, float *logits) {{\n" + "\n".join(body) + "\n}\n"


def _one_hot_loop(p: str, v: str) -> str:
    """Standardise each input into h0, a category's index expanded to its one-hot code (mean 0, std 1 there)."""
    return f"""    {{
        int pos = 0, k;
        for (i = 0; i < {p.upper()}_N_FEATURES; i++) {{
            float s = ({v} - {p}_mean[i]) / {p}_std[i];
            if ({p}_n_categories[i] == 0) h0[pos++] = s;
            else for (k = 0; k < {p}_n_categories[i]; k++) h0[pos++] = s == (float)k ? 1.0f : 0.0f;
        }}
    }}"""


def _proba_fn(p: str, n_classes: int) -> str:
    P = p.upper()
    if n_classes == 2:
        # [1-p, p] as the graph computes it: sigmoid(-z) is the accurate form of 1 - sigmoid(z)
        body = (f"    float z[{P}_N_LOGITS];\n    {p}_logits(x, z);\n"
                "    proba[0] = 1.0f / (1.0f + expf(z[0]));\n    proba[1] = 1.0f / (1.0f + expf(-z[0]));")
    else:
        body = f"""    float z[{P}_N_LOGITS], m, sum = 0.0f;
    int c;
    {p}_logits(x, z);
    m = z[0];  /* subtract the max: expf never overflows */
    for (c = 1; c < {P}_N_CLASSES; c++) if (z[c] > m) m = z[c];
    for (c = 0; c < {P}_N_CLASSES; c++) {{ proba[c] = expf(z[c] - m); sum += proba[c]; }}
    for (c = 0; c < {P}_N_CLASSES; c++) proba[c] /= sum;"""
    return f"static inline void {p}_predict_proba(const float *x, float *proba) {{\n{body}\n}}\n"


def _predict_fn(p: str, n_classes: int) -> str:
    P = p.upper()
    if n_classes == 2:
        body = f"    float z[{P}_N_LOGITS];\n    {p}_logits(x, z);\n    return z[0] > 0.0f ? 1 : 0;  /* a tie is class 0 */"
    else:
        body = f"""    float z[{P}_N_LOGITS];
    int c, best = 0;
    {p}_logits(x, z);
    for (c = 1; c < {P}_N_CLASSES; c++) if (z[c] > z[best]) best = c;  /* first of equals, as argmax */
    return best;"""
    return f"static inline int {p}_predict(const float *x) {{\n{body}\n}}\n"


def mlp_layers(module: nn.Module) -> tuple[list[Layer], str]:
    """(layers, activation) of an nn.Sequential Linear, act, Linear, ..., Linear with one activation kind
    (ReLU, Tanh, or none between the Linears). Anything else is refused, naming the layer."""
    from torch import nn

    if not isinstance(module, nn.Sequential):
        raise InputError(f"cannot emit {type(module).__name__} in C: expected an nn.Sequential MLP")
    kinds = {nn.ReLU: "relu", nn.Tanh: "tanh"}
    layers: list[Layer] = []
    acts: set[str] = set()
    previous_linear = False
    for idx, layer in enumerate(module):
        if isinstance(layer, nn.Linear):
            acts |= {"none"} if previous_linear else set()
            w = layer.weight.detach().cpu().numpy().astype(np.float32)  # (out, in)
            b = (layer.bias.detach().cpu().numpy() if layer.bias is not None else np.zeros(w.shape[0])).astype(np.float32)
            layers.append((w, b))
            previous_linear = True
        elif type(layer) in kinds and previous_linear:
            acts.add(kinds[type(layer)])
            previous_linear = False
        else:
            raise InputError(
                f"cannot emit layer {idx} ({type(layer).__name__}) in C: expected Linear layers with ReLU, Tanh "
                "or nothing between them, ending in Linear"
            )
    if not previous_linear:
        raise InputError("the MLP must end in a Linear layer (the logits), not an activation")
    if len(acts) > 1:
        raise InputError(f"cannot emit mixed activations {sorted(acts)} in C: expected one kind between all layers")
    return layers, acts.pop() if acts else "none"


def graph_layers(path: str | Path) -> tuple[list[Layer], str]:
    """(layers, activation) read from an exported ONNX graph, whatever module it came from (a brought-in nn.Module,
    a .pt2 program): the chain from the input to the `logits` output must be Gemm (or MatMul, Add) layers with
    Relu or Tanh between them. Refused otherwise, naming the first node the header cannot express."""
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(path)).graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    users: dict[str, list[Any]] = {}
    for node in g.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    layers: list[Layer] = []
    between: list[str] = []  # what follows each Linear but the last
    current = g.input[0].name
    while current != "logits":
        node = _only_user(users.get(current, []), current)
        if node.op_type in ("Gemm", "MatMul"):
            if len(layers) > len(between):
                between.append("none")
            w, b, current = _linear(node, consts, users)
            layers.append((w, b))
            continue
        if node.op_type not in ("Relu", "Tanh") or len(layers) != len(between) + 1:
            raise InputError(f"cannot emit node {node.name!r} ({node.op_type}) of {Path(path).name} in C: expected "
                             f"Linear layers (Gemm, MatMul+Add) with Relu or Tanh between them, ending in the logits")
        between.append(node.op_type.lower())
        current = node.output[0]
    kinds = set(between)
    if len(kinds) > 1:
        raise InputError(f"cannot emit mixed activations {sorted(kinds)} in C: expected one kind between all layers")
    return layers, kinds.pop() if kinds else "none"


def _only_user(nodes: list[Any], value: str) -> Any:
    chain = [n for n in nodes if n.op_type not in ("Sigmoid", "Softmax")] or nodes  # the probabilities branch aside
    if len(chain) != 1:
        raise InputError(f"cannot emit the graph in C: value {value!r} feeds {len(chain)} nodes, expected a chain")
    return chain[0]


def _linear(node: Any, consts: dict[str, np.ndarray], users: dict[str, list[Any]]) -> tuple[np.ndarray, np.ndarray, str]:
    """A Gemm (x W^T + b), or a MatMul by a constant and an Add of one: (W (out, in), b (out,), output name)."""
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.input[1] not in consts or attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or \
            attrs.get("beta", 1.0) != 1.0:
        raise InputError(f"cannot emit node {node.name!r} ({node.op_type}) in C: expected x times constant weights")
    w = consts[node.input[1]].astype(np.float32)
    w = w if node.op_type == "Gemm" and attrs.get("transB", 0) else w.T  # (out, in)
    out = node.output[0]
    if node.op_type == "Gemm":
        bias = consts.get(node.input[2]) if len(node.input) > 2 else None
        return w, (np.zeros(len(w)) if bias is None else bias).astype(np.float32).reshape(-1), out
    add = users.get(out, [])
    if len(add) == 1 and add[0].op_type == "Add" and add[0].input[1] in consts:
        return w, consts[add[0].input[1]].astype(np.float32).reshape(-1), add[0].output[0]
    return w, np.zeros(len(w), np.float32), out
