"""Scoring on a Dask cluster (extra `edgeclf[scale]`): the artifact's folder path travels to the workers, never a
session (onnxruntime sessions cannot be pickled); each worker process loads it once and keeps it.

    from edgeclf.scale.dask import score_dask
    score_dask("artifacts/circles", "in/*.parquet", "out/", proba=True, keep=["id"], workers=2)
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from edgeclf.artifact.store import temp_beside
from edgeclf.runtime import Classifier, Manifest
from edgeclf.runtime.classifier import column_decisions
from edgeclf.runtime.errors import InputError, OutputExists, UnseenCategory
from edgeclf.runtime.manifest import MANIFEST
from edgeclf.scale.core import LABEL, ScoreReport, checked_outputs
from edgeclf.tables.kinds import kind_of
from edgeclf.tables.messages import check_columns

CONNECT_TIMEOUT_S = 5  # an unreachable scheduler fails within this, not distributed's 30 s default
_LOADED: dict[tuple[str, str], Classifier] = {}  # per worker process: (folder, manifest sha256) -> Classifier


def need_dask() -> Any:
    """dask.dataframe, or an InputError naming the extra to install."""
    try:
        import dask.dataframe as dd
        import distributed  # noqa: F401
    except ImportError as e:
        raise InputError(f"the dask engine needs the scale extra ({e.name} is missing): "
                         f"pip install 'edgeclf[scale]'") from None
    return dd


def cached_classifier(folder: str) -> Classifier:
    """The worker's Classifier for this artifact, loaded on first use; a re-exported artifact (new manifest
    hash) is loaded afresh. One intra-op thread: the cluster's processes are the parallelism."""
    root = Path(folder).resolve()
    digest = hashlib.sha256((root / MANIFEST).read_bytes()).hexdigest()
    key = (str(root), digest)
    clf = _LOADED.get(key)
    if clf is None:
        clf = _LOADED[key] = Classifier.load(root, threads=1)
    return clf


def _frame(kept: Any, idx: np.ndarray, p: np.ndarray, classes: Sequence[str], proba: bool) -> Any:
    """The output partition (also the meta, built from empty inputs, so dtypes agree by construction). Built from a
    dict of whole columns without copies: assigning column after column into a frame costs several times more, most
    of it the int64 -> int32 conversion of the indices and strided probability columns."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    cols: dict[str, Any] = {str(k): kept[k].array for k in kept.columns}
    if idx.ndim == 2:  # a multi-label model's (N, L) 0/1 decisions: one int8 column per label
        it = np.ascontiguousarray(idx.T)
        cols.update({str(c): it[j] for j, c in enumerate(classes)})
    else:
        # labels gathered by arrow from the class names (no Python string per row: half the partition's time)
        labels = pc.take(pa.array(list(classes), pa.string()), pa.array(idx.astype(np.int32, copy=False)))
        cols[LABEL] = pd.arrays.ArrowExtensionArray(labels)
    if proba:
        pt = np.ascontiguousarray(p.T)  # (C, N): each column contiguous
        for j, c in enumerate(classes):
            cols[f"proba_{c}"] = pt[j]
    return pd.DataFrame(cols, index=kept.index, copy=False)


def score_partition(pdf: Any, folder: str, proba: bool, keep: Sequence[str]) -> Any:
    clf = cached_classifier(folder)
    frame = pdf[list(clf.features)]
    # category columns hold text: the Classifier maps them with the manifest's vocabularies
    x = frame if clf.has_categories else np.ascontiguousarray(frame.to_numpy(np.float32))  # (N, F)
    try:
        p = clf.predict_proba(x)  # (N, C)
    except UnseenCategory as e:
        if e.row is None:
            raise
        raise e.at(f"row with index {pdf.index[e.row]!r}") from None
    except InputError as e:
        if e.row is None:
            raise
        raise InputError(f"row with index {pdf.index[e.row]!r}: NaN, inf or a missing value in the features: expected "
                         "finite numbers", row=e.row, column=e.column) from None
    return _frame(pdf[list(keep)], column_decisions(p, clf.decision_thresholds), p, clf.manifest.classes, proba)


def predict_dask(ddf: Any, artifact: str | os.PathLike[str], *, proba: bool = False, keep: Sequence[str] = ()) -> Any:
    """A lazy Dask DataFrame of predictions for ddf's rows: kept columns, `label`, and with proba one
    `proba_<class>` float32 column per class; features are matched by name."""
    need_dask()
    folder = str(Path(artifact).resolve())
    clf = Classifier.load(folder, threads=1)  # here only to check the artifact and the columns before any work
    check_columns("the input", [str(c) for c in ddf.columns], clf.features, keep, header=False)
    checked_outputs([str(c) for c in clf.classes_], clf.multilabel, proba, keep)  # a kept column is never overwritten
    empty = ddf._meta
    p0 = np.zeros((0, len(clf.classes_)), np.float32)
    meta = _frame(empty[list(keep)], column_decisions(p0, clf.decision_thresholds), p0, clf.manifest.classes, proba)
    return ddf.map_partitions(score_partition, folder, proba, tuple(keep), meta=meta)


def read_inputs(dd: Any, inputs_glob: str, text: Sequence[str] = ()) -> Any:
    """A Dask DataFrame over a glob of Parquet or CSV files (local, or any fsspec URL such as s3://...). Every
    column is declared; dask's optimizer reads only those the scoring uses. CSV columns named in `text` (the kept
    ones that are not features) are read as text, as the local engine reads them: pandas would turn an id "007"
    into 7, and a column with one empty cell into float64 (9007199254740993 -> 9007199254740992.0)."""
    if "://" not in inputs_glob and not glob.glob(inputs_glob):
        raise InputError(f"{inputs_glob!r} matches no file: expected a path or glob of .parquet or .csv files")
    kind = kind_of(inputs_glob)
    if kind == "parquet":
        return dd.read_parquet(inputs_glob)
    if kind == "csv":
        return dd.read_csv(inputs_glob, blocksize="64MB", dtype={c: "string" for c in text})
    suffix = Path(inputs_glob).suffix
    raise InputError(f"{inputs_glob!r}: unknown extension {suffix or '(none)'!r}: the dask engine reads .parquet "
                     f"or .csv")


@contextmanager
def client_for(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    """A distributed Client: to the scheduler at ADDRESS, or to a LocalCluster of one-thread worker processes
    started here and closed after."""
    from distributed import Client, LocalCluster

    if scheduler is None:
        n = workers or os.cpu_count() or 1
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,  # type: ignore[no-untyped-call]
                          dashboard_address=None) as cluster:
            with Client(cluster) as client:  # type: ignore[no-untyped-call]
                yield client
        return
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)  # type: ignore[no-untyped-call]
    except (OSError, ValueError, TypeError) as e:  # refused, timed out (TimeoutError is an OSError), malformed
        raise InputError(f"cannot reach the Dask scheduler at {scheduler!r} within {CONNECT_TIMEOUT_S} s "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else 'no detail'}): "
                         f"expected an address like tcp://HOST:8786 of a running `dask scheduler`") from None
    with client:
        yield client


def score_dask(artifact: str | os.PathLike[str], inputs_glob: str, output_dir: str, *, proba: bool = False,
               keep: Sequence[str] = (), scheduler: str | None = None, workers: int | None = None,
               overwrite: bool = False) -> ScoreReport:
    """Score a glob of Parquet/CSV files on a Dask cluster into OUTPUT_DIR: one Parquet part per input partition,
    written into a temp folder beside it and renamed when every part is done."""
    t0 = time.perf_counter()
    dd = need_dask()
    target = Path(output_dir)
    _check_output_dir(target, overwrite)
    features = {f.name for f in Manifest.read(Path(artifact))[0].features}
    ddf = read_inputs(dd, inputs_glob, [k for k in keep if k not in features])
    scored = predict_dask(ddf, artifact, proba=proba, keep=keep)
    with client_for(scheduler, workers):
        tmp = temp_beside(target, folder=True)
        try:
            scored.to_parquet(str(tmp), write_index=False, use_dictionary=[*dictionary_columns_of(scored)])
            rows = _count_rows(tmp)
            _publish_dir(tmp, target, overwrite)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # after an error: no partial folder
    return ScoreReport(rows, None, time.perf_counter() - t0, ddf.npartitions, str(target))


def dictionary_columns_of(ddf: Any) -> list[str]:
    """The text columns of the output (labels, kept ids): the only ones worth Parquet dictionary encoding."""
    return [str(c) for c, t in ddf.dtypes.items() if t.kind not in "fiub"]


def _check_output_dir(target: Path, overwrite: bool) -> None:
    if target.exists() and not target.is_dir():
        raise InputError(f"output {str(target)!r} is a file: the dask engine writes a folder of Parquet parts")
    if target.exists() and not overwrite:
        raise OutputExists(str(target))
    if not target.parent.is_dir():
        raise InputError(f"output {str(target)!r}: folder {str(target.parent)!r} does not exist")


def _count_rows(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(p).num_rows for p in folder.glob("*.parquet"))


def _publish_dir(tmp: Path, target: Path, overwrite: bool) -> None:
    """Rename the finished folder into place; an old one (overwrite) is moved aside first and removed after."""
    old = None
    if target.exists():
        if not overwrite:
            raise InputError(f"output {str(target)!r} appeared while scoring: left untouched; pass --overwrite")
        old = temp_beside(target, folder=True)
        os.replace(target, old / "old")
    os.rename(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
