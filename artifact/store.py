"""Artifact folders on disk: the file names, the one JSON encoding, and folders written atomically.

A folder is never edited in place: the new version is built in a hidden sibling and swapped in with one
rename (Linux renameat2 RENAME_EXCHANGE), under a lock so that concurrent writers take turns. A crash at
any point leaves either the previous folder or the new one, never a mix. Standard library only: train, export,
report and the CLI share it, and none of them needs torch to write a file.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from edgeclf.runtime.errors import ArtifactError, InputError, OutputExists
from edgeclf.runtime.manifest import MANIFEST

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
CARD = "MODEL_CARD.md"
# the model files are named by their format's entry in edgeclf.runtime.formats
CHECK_DATA = "check_data.npy"  # a brought-in model's check rows, kept so `edgeclf verify` can re-run parity
# what `edgeclf plot` draws (check_data.png: a brought-in model's), in the order the card shows them
PICTURES = ("boundary.png", "confusion.png", "check_data.png", "calibration.png", "training.png", "parity.png",
            "reliability.png", "errors.png")  # the last two: multi-label models (report/multilabel.py)
_RENAME_EXCHANGE = 2

__all__ = ["CARD", "CHECKPOINT", "CHECK_DATA", "MANIFEST", "METRICS", "PICTURES", "json_bytes", "staged_folder",
           "writable_parent", "write_bytes", "write_json"]


def json_bytes(obj: Any) -> bytes:
    """The one JSON encoding of every file edgeclf commits: stable keys order, 2-space indent, final newline."""
    return (json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


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
                elif (dest / name).is_dir():  # a user's own folder inside the artifact
                    shutil.copytree(dest / name, tmp / name, symlinks=True)
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


def temp_beside(target: Path, folder: bool = False) -> Path:
    """A hidden temp file (or folder) in the target's folder: the same file system, so the final rename is atomic."""
    try:
        if folder:
            return Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as e:
        raise InputError(f"cannot write {target}: {e.strerror}") from None
    os.close(fd)
    return Path(name)


def publish(tmp: Path, target: Path, overwrite: bool = True) -> None:
    """Move a finished temp file into place; without overwrite, a target that appeared meanwhile is not clobbered."""
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target) if tmp.is_file() else os.rename(tmp, target)
    except FileExistsError:
        raise OutputExists(str(target), "appeared while it was written (left untouched)") from None
    except OSError as e:  # a non-empty folder in the way (rename of a folder), or no hard links here
        if target.exists():
            raise OutputExists(str(target)) from None
        raise e
    if tmp.exists():
        tmp.unlink()


@contextlib.contextmanager
def published(target: Path, overwrite: bool = True) -> Iterator[Path]:
    """The one write-to-temp-then-publish: yields a temp path beside target; when the block ends it is moved into
    place (publish), and after an error or an interrupt it is removed: a reader never sees half a file."""
    tmp = temp_beside(target)
    try:
        yield tmp
        publish(tmp, target, overwrite)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(target: Path, text: str) -> None:
    """A file written whole or not at all."""
    with published(target) as tmp:
        tmp.write_text(text)


def write_json(path: Path, obj: Any) -> None:
    write_bytes(path, json_bytes(obj))


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ArtifactError(f"cannot read {path}: {e}") from None
