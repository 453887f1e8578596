"""Classifier: batched predictions from an artifact folder with onnxruntime and numpy only. Loading and checking
the files is runtime.sessions; turning a call into runs of the fixed-batch files is runtime.schedule."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import onnxruntime as ort

from edgeclf.runtime.categories import encode
from edgeclf.runtime.errors import ArtifactError
from edgeclf.runtime.formats import ONNX, named
from edgeclf.runtime.inputs import KEEP_NONFINITE, as_matrix, out_of_range
from edgeclf.runtime.manifest import Manifest
from edgeclf.runtime.schedule import Scheduler, plan_chunks, uses_intra_op
from edgeclf.runtime.sessions import check_providers, file_format, open_session

__all__ = ["Classifier", "plan_chunks"]


class Classifier:
    """An exported edgeclf model, loaded from its artifact folder.

    >>> clf = Classifier.load("artifacts/circles")
    >>> clf.predict([[0.0, 0.1], [1.0, 0.0]])
    array(['inner', 'outer'], dtype='<U5')
    """

    def __init__(self, manifest: Manifest, sessions: dict[int, ort.InferenceSession], threads: int,
                 intra_op: Mapping[int, Callable[[], ort.InferenceSession]] | None = None) -> None:
        """sessions: one-thread session per batch size; intra_op: factories of intra-op-threaded sessions (load)."""
        self.manifest = manifest
        schedule = self._schedule = Scheduler(sessions, manifest.signature.input, threads, manifest.origin.parameters,
                                              intra_op)
        self.batch_sizes = schedule.batch_sizes
        self.threads = schedule.threads
        self.device = schedule.device  # where the graphs run
        self.classes_ = np.array(manifest.classes)
        self.multilabel = manifest.multilabel
        self.labels_ = np.array(manifest.labels)  # multilabel: the label names, one per column; else empty
        self.thresholds_ = np.array(manifest.thresholds, np.float32)  # multilabel: one per label; else empty
        # what the one decision rule (decisions) takes: the thresholds of a multi-label model, None for argmax
        self.decision_thresholds: np.ndarray | None = self.thresholds_ if self.multilabel else None
        self.features: tuple[str, ...] = manifest.feature_names
        self.n_features_in_ = len(self.features)
        self.imputed: tuple[bool, ...] = manifest.imputed()  # per feature: NaN is an empty cell the graph fills
        # per feature: its categories (text or index in, index to the graph) or None for a number
        self.vocabularies: tuple[tuple[str, ...] | None, ...] = manifest.vocabularies()
        self.has_categories = any(v is not None for v in self.vocabularies)
        low, high = manifest.training_range()
        # (low, high) (F,) float64 each: the range training saw per feature (manifest min/max; inf where unsaid)
        self.training_range = np.asarray(low), np.asarray(high)
        sig = manifest.signature
        # output key -> (graph output name, columns), resolved once: predict calls stay cheap
        self._outputs = {k: (sig.output(k).name, sig.output(k).columns) for k in ("logits", "probabilities")}

    @property
    def sessions(self) -> dict[int, ort.InferenceSession]:
        """The onnxruntime session of each exported batch size (for callers that want the raw graphs)."""
        return dict(self._schedule.sessions)

    @property
    def providers(self) -> list[str]:
        """The execution providers actually in use."""
        return list(next(iter(self._schedule.sessions.values())).get_providers())

    @property
    def parallel_min_rows(self) -> int:
        """The smallest call that is split over this Classifier's own threads."""
        return self._schedule.parallel_min_rows

    @classmethod
    def load(cls, path: str | os.PathLike[str], providers: Sequence[str] | None = None,
             threads: int | None = None, format: str = "onnx", precision: str = "float32",
             intra_op: bool = True) -> Classifier:
        """Open an artifact folder (or its manifest.json); every model file is checked against its sha256.

        format: "onnx" or "ort" (onnxruntime's format for minimal and mobile builds); precision: "float32" or
        "int8" (the statically quantised ONNX files). intra_op: whether heavy serial calls may run on sessions with
        onnxruntime's intra-op threads (faster for an app that calls predict and waits; but those threads spin
        between nodes, and in a pipeline whose other threads need the cores, e.g. a file reader and writer, they
        starve them: pass False there, as `edgeclf predict`'s streaming path does, and big calls are split over
        one-thread sessions instead)."""
        manifest, folder = Manifest.read(Path(path))
        kind = file_format(format, precision)
        entries = manifest.files_of(kind)
        if not entries:
            raise ArtifactError(f"{folder}: the manifest lists no {kind} file; re-export with `edgeclf export`"
                                + ("" if kind == ONNX.name else f" --format {_option(kind)}"))
        wanted = check_providers(providers)
        n_threads = max(1, threads if threads is not None else min(os.cpu_count() or 1, 8))
        parameters = manifest.origin.parameters
        sessions, threaded = {}, {}
        for e in entries:
            data = manifest.read_checked(folder, e)[1]  # hash-checked once; every session is built from these bytes
            sessions[e.batch_size] = open_session(manifest, e, data, wanted)
            if intra_op and n_threads > 1 and wanted[0] == "CPUExecutionProvider" and \
                    uses_intra_op(e.batch_size, parameters):
                threaded[e.batch_size] = functools.partial(open_session, manifest, e, data, wanted, n_threads)
        return cls(manifest, sessions, n_threads, threaded)

    def predict_proba(self, x: Any, allow_nonfinite: bool = False) -> np.ndarray:
        """(N, C) float32 class probabilities; column i is classes_[i]. Multilabel: (N, L) independent
        probabilities, column i is P(labels_[i]); rows need not sum to 1."""
        return self._run(x, "probabilities", allow_nonfinite)

    def predict_logits(self, x: Any, allow_nonfinite: bool = False) -> np.ndarray:
        """(N, 1) logits for binary tasks, (N, C) for multiclass ones, (N, L) for multilabel ones."""
        return self._run(x, "logits", allow_nonfinite)

    def predict_proba_logits(self, x: Any, allow_nonfinite: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """predict_proba and predict_logits from one run of the graph (the same bits as the two calls); on a GPU
        device past the largest exported batch, one run per output (Scheduler.run_many)."""
        mat = self._matrix(x, allow_nonfinite)
        p, z = self._schedule.run_many(mat, (self._outputs["probabilities"], self._outputs["logits"]))
        return p, z

    def predict(self, x: Any, allow_nonfinite: bool = False) -> np.ndarray:
        """(N,) class labels (strings from classes_). Multilabel: (N, L) bool, column i true where
        P(labels_[i]) >= thresholds_[i]; a row may have no label at all."""
        p = self.predict_proba(x, allow_nonfinite)
        return decide(p, self.classes_, self.decision_thresholds)

    def out_of_range(self, x: Any) -> np.ndarray:
        """(N,) bool: the rows with a feature outside the range training saw (manifest features' min/max).
        The model still answers for them, but nothing was checked there: callers may want to flag them."""
        x = encode(x, self.features, self.vocabularies) if self.has_categories else x
        return out_of_range(as_matrix(x, self.features, allow_nonfinite=True), *self.training_range)

    def check(self, x: Any) -> np.ndarray:
        """x as the predict methods check it (category indices, NaN only where the model fills it, shape, float32
        range): (N, F), not yet float32; InputError naming the row of x otherwise. For callers that pool inputs
        (edgeclf serve) and must refuse one caller's rows before they join the others'."""
        return self._matrix(x, False, way_out="")  # a pooling caller's user cannot pass allow_nonfinite

    def _run(self, x: Any, output: str, allow_nonfinite: bool) -> np.ndarray:
        return self._schedule.run(self._matrix(x, allow_nonfinite), *self._outputs[output])

    def _matrix(self, x: Any, allow_nonfinite: bool, way_out: str = KEEP_NONFINITE) -> np.ndarray:
        """(N, F), checked, not yet float32."""
        if self.has_categories:
            x = encode(x, self.features, self.vocabularies)
        return as_matrix(x, self.features, allow_nonfinite, self.imputed, way_out)

    def __repr__(self) -> str:
        return (f"Classifier(task={self.manifest.task!r}, classes={list(self.manifest.classes)}, "
                f"batch_sizes={list(self.batch_sizes)}, providers={self.providers})")


def decide(p: np.ndarray, classes: np.ndarray, thresholds: np.ndarray | None) -> np.ndarray:
    """The decision from probabilities: (N,) class names (argmax), or with thresholds (N, L) bool (p >= t)."""
    d = decisions(p, thresholds)
    return d if thresholds is not None else classes[d]


def decisions(p: np.ndarray, thresholds: np.ndarray | None = None) -> np.ndarray:
    """The one decision rule: (N,) int32 index of each row's largest probability (the first on ties, as argmax),
    or with a multi-label model's thresholds (N, L) bool, true where p >= the label's threshold."""
    if thresholds is not None:
        return p >= thresholds[None, :]
    return winners(p)


def column_decisions(p: np.ndarray, thresholds: np.ndarray | None) -> np.ndarray:
    """The runtime's decisions as the output columns hold them: (B,) int32 class indices, or a multi-label model's
    (B, L) 0/1 as int8."""
    d = decisions(p, thresholds)
    return d.view(np.int8) if d.dtype == np.bool_ else d


def winners(p: np.ndarray) -> np.ndarray:
    """(N,) int32 index of each row's largest probability, the first on ties (= p.argmax(axis=1)). Two classes:
    one comparison of columns, as argmax along a short axis 1 loops over rows (~1 ms vs ~0.1 ms for 65,536 rows)."""
    if p.shape[1] == 2:
        return (p[:, 1] > p[:, 0]).astype(np.int32)  # strictly: a tie keeps class 0, as argmax does
    return p.argmax(axis=1).astype(np.int32)  # type: ignore[no-any-return]


def _option(name: str) -> str:
    """The --format option that writes files of this manifest format."""
    fmt = named(name)
    return fmt.option if fmt and fmt.option else name
