"""What every exported file and every reader of it agree on: names, output meanings, the padding rule.

The exporter writes these into the graphs and the manifest; the runtime, the web page and the C header read them
from there. They are defined here, once.
"""

from __future__ import annotations

from typing import Sequence

INPUT_NAME = "input"
LOGITS = "logits"
PROBABILITIES = "probabilities"
OUTPUT_NAMES = (LOGITS, PROBABILITIES)  # also their index in a TorchScript / .pt2 output tuple
INPUT_DTYPE = "float32"
PADDING_RULE = (
    "rows are independent: pad a batch of n < B rows to the file's fixed batch size B with any finite values "
    "(zeros) and keep the first n rows of each output"
)


MULTILABEL = "multilabel"
KINDS = ("binary", "multiclass", MULTILABEL)


def kind_of(n_classes: int, multilabel: bool = False) -> str:
    """multilabel: one independent yes/no per label (classes are then the labels), else one class per row."""
    if multilabel:
        return MULTILABEL
    return "binary" if n_classes == 2 else "multiclass"


def n_logits(n_classes: int, kind: str = "") -> int:
    """Binary models have one logit (the logit of classes[1]); multiclass ones one per class; multi-label ones
    one per label."""
    return 1 if n_classes == 2 and kind != MULTILABEL else n_classes


def logits_meaning(classes: Sequence[str], kind: str = "") -> str:
    if kind == MULTILABEL:
        return (f"(B, {len(classes)}): log-odds of each label, labels in order {list(classes)}; "
                f"P(label i) = sigmoid(logit i)")
    if len(classes) == 2:
        return (f"(B, 1): log-odds of class {classes[1]!r} against {classes[0]!r}; "
                f"P({classes[1]}) = sigmoid(logit)")
    return f"(B, {len(classes)}): unnormalised class scores in class order; probabilities = softmax(logits)"


def probabilities_meaning(classes: Sequence[str], kind: str = "") -> str:
    if kind == MULTILABEL:
        return (f"(B, {len(classes)}) float32: column i is P(label i is present), labels in order {list(classes)}; "
                f"independent, rows need not sum to 1; label i is predicted where P >= its threshold")
    return f"(B, {len(classes)}) float32: column i is P(class i), classes in order {list(classes)}; rows sum to 1"
