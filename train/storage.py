"""Artifact folders written atomically, and checkpoints saved and loaded safely.

A folder is never edited in place: the new version is built in a hidden sibling and swapped in with one
rename (Linux renameat2 RENAME_EXCHANGE), under a lock so that concurrent writers take turns. A crash at
any point leaves either the previous folder or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch

from edgeclf.runtime.errors import ArtifactError, InputError
from edgeclf.runtime.manifest import json_bytes
from edgeclf.train.loop import TrainResult
from edgeclf.train.model import ModelConfig, build_mlp

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
CHECKPOINT_FORMAT = "edgeclf.checkpoint/1"
_RENAME_EXCHANGE = 2


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # no flock on this platform: writers are not serialised
        yield
        return
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths; False where the platform cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _pause_point(name: str) -> None:
    """Test hook: when EDGECLF_TEST_PAUSE == name, touch EDGECLF_TEST_PAUSE_FILE and sleep, so a crash test
    can SIGKILL the writer exactly in this window. A no-op unless both variables are set."""
    if os.environ.get("EDGECLF_TEST_PAUSE") != name or not os.environ.get("EDGECLF_TEST_PAUSE_FILE"):
        return
    with open(os.environ["EDGECLF_TEST_PAUSE_FILE"], "w") as fh:
        fh.write(f"{os.getpid()} {name}\n")
    time.sleep(600)  # the test kills it long before; a leftover process still ends


def _fsync_path(path: Path) -> None:
    if os.name != "posix" and path.is_dir():  # Windows cannot open a folder to fsync it
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Every file of a (flat) folder, then the folder's own entries: durable before the swap publishes them."""
    for p in folder.iterdir():
        if p.is_file():
            _fsync_path(p)
    _fsync_path(folder)


def _swap_in(new: Path, dest: Path) -> None:
    """Put new at dest; afterwards new holds the previous dest (if any), to be deleted."""
    if not dest.exists():
        os.rename(new, dest)
    elif not _exchange(new, dest):
        old = new.with_name(new.name + ".old")
        os.rename(dest, old)
        os.rename(new, dest)
        os.rename(old, new)


def _can_write(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def writable_parent(dest: Path) -> Path:
    parent = dest.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create output folder {parent}: {e.strerror}") from None
    if not _can_write(parent):
        raise InputError(f"output folder {parent} is not writable: choose another with --out")
    return parent


@contextlib.contextmanager
def staged_folder(dest: Path, keep: Iterable[str] = ()) -> Iterator[Path]:
    """Yield an empty staging folder (holding copies of `keep` from dest); on success it replaces dest."""
    dest = Path(dest)
    parent = writable_parent(dest)
    with _locked(parent / f".{dest.name}.lock"):
        for stale in parent.glob(f".{dest.name}.new-*"):  # left by a killed writer
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.new-", dir=parent))
        try:
            os.chmod(tmp, 0o755)
            for name in keep:
                if (dest / name).is_file():
                    shutil.copy2(dest / name, tmp / name)
            yield tmp
            _pause_point("staged")
            _fsync_folder(tmp)
            _pause_point("before_swap")
            _swap_in(tmp, dest)
            _fsync_path(parent)  # the rename itself, durable
            _pause_point("after_swap")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def save_training(result: TrainResult, out: Path) -> None:
    """Write checkpoint.pt and metrics.json as a new version of folder out (stale exports dropped)."""
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "model_config": result.model_config.to_dict(),
        "train_config": result.metrics["train_config"],
        "state_dict": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
    }
    with staged_folder(out) as tmp:
        torch.save(ckpt, tmp / CHECKPOINT)  # written under its final name: the archive embeds it
        write_bytes(tmp / METRICS, json_bytes(result.metrics))


def checkpoint_path(folder: Path, task: str | None = None) -> Path:
    path = Path(folder) / CHECKPOINT
    if not path.is_file():
        raise ArtifactError(f"no checkpoint at {path}: run `edgeclf train {task or 'TASK'}` first")
    return path


def load_checkpoint(folder: Path, task: str | None = None) -> tuple[torch.nn.Sequential, ModelConfig, dict[str, Any]]:
    """Rebuild the model from the checkpoint's own config (never code defaults); weights_only=True."""
    path = checkpoint_path(folder, task)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            raise KeyError("format")
        cfg = ModelConfig.from_dict(ckpt["model_config"])
        model = build_mlp(cfg)
        model.load_state_dict(ckpt["state_dict"])
    except Exception as e:  # a corrupt zip, a hostile pickle, a foreign dict: all refused alike
        raise ArtifactError(
            f"{path} is not a readable edgeclf checkpoint ({type(e).__name__}): retrain with `edgeclf train`"
        ) from None
    if task is not None and cfg.task != task:
        raise ArtifactError(f"{path} is a checkpoint of task {cfg.task!r}, expected {task!r}")
    metrics_path = Path(folder) / METRICS
    metrics = _read_metrics(metrics_path)
    return model.eval(), cfg, metrics


def _read_metrics(path: Path) -> dict[str, Any]:
    import json

    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as e:
        raise ArtifactError(f"cannot read {path}: {e}") from None
