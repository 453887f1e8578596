"""Scoring on a real Dask cluster (edgeclf.scale.dask): a LocalCluster of 2 worker processes started here."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import skip_or_fail

from edgeclf.runtime import Classifier, InputError

try:
    import dask.dataframe as dd
    import distributed
except ImportError:
    skip_or_fail("dask[dataframe] and distributed are not installed (the scale extra has them)", module=True)

from edgeclf.scale.dask import predict_dask, score_dask  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ART = ROOT / "artifacts" / "circles"
PARTS, ROWS = 6, 2000


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as c:
        yield c


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier.load(ART)


@pytest.fixture
def inputs(tmp_path) -> tuple[str, np.ndarray]:
    """PARTS Parquet files of ROWS rows each; an id column to join the (unordered) parts back on."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-1.2, 1.2, (PARTS * ROWS, 2)).astype(np.float32)  # (N, 2)
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(PARTS):
        s = slice(i * ROWS, (i + 1) * ROWS)
        pq.write_table(pa.table({"id": np.arange(s.start, s.stop), "x2": x[s, 1], "x1": x[s, 0]}),
                       folder / f"part{i}.parquet")
    return str(folder / "*.parquet"), x


def assert_scored(out_dir: Path, x: np.ndarray, clf: Classifier) -> None:
    parts = sorted(out_dir.glob("*.parquet"))
    assert len(parts) == PARTS
    t = pq.read_table(out_dir).sort_by("id")
    assert t["id"].to_pylist() == list(range(len(x)))
    assert t["label"].to_pylist() == clf.predict(x).tolist()
    p = clf.predict_proba(x)  # (N, 2)
    assert np.array_equal(t["proba_outer"].to_numpy(), p[:, 0])  # the same sessions: identical, not close
    assert np.array_equal(t["proba_inner"].to_numpy(), p[:, 1])


def test_predict_dask_matches_the_classifier(cluster, clf):
    import pandas as pd

    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, (5000, 2)).astype(np.float32)
    pdf = pd.DataFrame({"x2": x[:, 1], "key": [f"k{i}" for i in range(5000)], "x1": x[:, 0]})
    ddf = dd.from_pandas(pdf, npartitions=4)
    with distributed.Client(cluster):
        out = predict_dask(ddf, ART, proba=True, keep=["key"]).compute()
    assert list(out.columns) == ["key", "label", "proba_outer", "proba_inner"]
    assert out["key"].tolist() == pdf["key"].tolist()
    assert out["label"].tolist() == clf.predict(x).tolist()
    assert np.array_equal(out["proba_inner"].to_numpy(np.float32), clf.predict_proba(x)[:, 1])


@pytest.mark.parametrize("kept", ["label", "proba_inner"])
def test_a_kept_column_named_like_an_output_is_refused_as_locally(kept):
    """The local engine refuses --keep label (it would be overwritten by the prediction); Dask says the same line
    before any work instead of silently replacing the user's column (the true label, typically)."""
    import pandas as pd

    pdf = pd.DataFrame({"x1": [0.0, 0.5], "x2": [0.1, 0.2], kept: ["a", "b"]})
    with pytest.raises(InputError, match=rf"^--keep column '{kept}' clashes with an output column"):
        predict_dask(dd.from_pandas(pdf, npartitions=1), ART, proba=True, keep=[kept])


def test_score_dask_writes_one_part_per_partition(cluster, clf, inputs, tmp_path):
    glob, x = inputs
    report = score_dask(ART, glob, str(tmp_path / "out"), proba=True, keep=["id"], scheduler=cluster.scheduler_address)
    assert report.rows == len(x) and report.parts == PARTS
    assert_scored(tmp_path / "out", x, clf)
    assert sorted(os.listdir(tmp_path)) == ["in", "out"]  # the temp folder was renamed, nothing else left


class KillOnce(distributed.WorkerPlugin):
    """Kills its worker process (os._exit: no clean-up, like a lost machine) when the second task of the job
    starts on it; a flag file makes that happen once in the whole cluster, not again after the restart."""

    def __init__(self, flag: str) -> None:
        self.flag, self.started = flag, 0

    def setup(self, worker) -> None:
        self.worker = worker

    def transition(self, key, start, finish, **kwargs) -> None:
        if finish == "executing":
            self.started += 1
            if self.started == 2:
                try:
                    os.close(os.open(self.flag, os.O_CREAT | os.O_EXCL))
                except FileExistsError:
                    return
                os._exit(1)


def test_a_worker_killed_mid_job_still_gives_the_complete_output(cluster, clf, inputs, tmp_path):
    glob, x = inputs
    flag = tmp_path / "killed"
    with distributed.Client(cluster) as client:
        client.register_plugin(KillOnce(str(flag)), name="kill-once")
        try:
            score_dask(ART, glob, str(tmp_path / "out"), proba=True, keep=["id"],
                       scheduler=cluster.scheduler_address)
        finally:
            client.unregister_worker_plugin("kill-once")
    assert flag.exists(), "no worker was killed: the test proved nothing"
    assert_scored(tmp_path / "out", x, clf)
    assert sorted(os.listdir(tmp_path)) == ["in", "killed", "out"]


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:1", "not-an-address"])
def test_an_unreachable_or_malformed_scheduler_is_a_clear_error(inputs, tmp_path, address):
    glob, _ = inputs
    t0 = time.perf_counter()
    with pytest.raises(InputError, match="cannot reach the Dask scheduler"):
        score_dask(ART, glob, str(tmp_path / "out"), scheduler=address)
    assert time.perf_counter() - t0 < 30, "a hang guard, not a speed claim: the connect timeout is 5 s"
    assert not (tmp_path / "out").exists()


def test_bad_outputs_and_inputs(inputs, tmp_path):
    glob, _ = inputs
    (tmp_path / "out").mkdir()
    with pytest.raises(InputError, match="already exists"):
        score_dask(ART, glob, str(tmp_path / "out"))
    with pytest.raises(InputError, match="matches no file"):
        score_dask(ART, str(tmp_path / "none*.parquet"), str(tmp_path / "new"))
    with pytest.raises(InputError, match="--keep column 'nope'"):
        score_dask(ART, glob, str(tmp_path / "new"), keep=["nope"])


def test_without_the_scale_extra_the_error_names_it():
    code = ("import sys; sys.modules['dask'] = sys.modules['distributed'] = None\n"  # as without [scale]
            "from edgeclf.scale.dask import need_dask\n"
            "need_dask()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1
    assert "pip install 'edgeclf[scale]'" in done.stderr.strip().splitlines()[-1]
