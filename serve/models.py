"""The served models: one per artifact folder, named by the folder, versioned by the weights' hash.

`edgeclf export`/`train` replace a folder by one atomic rename (edgeclf.artifact.store), so the manifest's
inode changes with every new version. The watcher polls each manifest's stat; on a change it loads the new
folder beside the old one and swaps the reference. Requests already holding the old version finish on it; its
worker stops when the last of them is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgeclf.runtime import Classifier
from edgeclf.runtime.errors import ArtifactError, EdgeclfError, InputError, first_line
from edgeclf.runtime.manifest import MANIFEST, Manifest
from edgeclf.serve import DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_QUEUE
from edgeclf.serve.batcher import Batcher

WATCH_SECONDS = 0.5
StatKey = tuple[int, int, int, int] | None


@dataclass(frozen=True)
class Settings:
    max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS
    max_delay_s: float = 0.0
    max_queue: int = DEFAULT_MAX_QUEUE


def weights_version(m: Manifest) -> str:
    """The model's version: the trained weights' sha256 from the manifest (the smallest ONNX file's for a
    brought-in model without one)."""
    if m.origin.state_dict_sha256:
        return m.origin.state_dict_sha256
    onnx = m.files_of("onnx")
    if not onnx:
        raise ArtifactError("the manifest lists no onnx file: re-export with `edgeclf export`")
    return onnx[0].sha256


def stat_key(folder: Path) -> StatKey:
    try:
        s = os.stat(folder / MANIFEST)
    except OSError:
        return None
    return (s.st_dev, s.st_ino, s.st_mtime_ns, s.st_size)


@dataclass
class Loaded:
    """One version of one model, with its own batcher; `users` counts the requests holding it."""

    name: str
    clf: Classifier
    version: str
    batcher: Batcher
    stat: StatKey
    users: int = 0
    retired: bool = False

    def release(self) -> None:
        self.users -= 1
        if self.retired and self.users == 0:
            self.batcher.close()


@dataclass
class Models:
    folders: dict[str, Path]
    settings: Settings
    on_batch: Callable[[str, int], None] = lambda name, rows: None
    current: dict[str, Loaded] = field(default_factory=dict)

    @classmethod
    def open(cls, paths: list[str], settings: Settings, on_batch: Callable[[str, int], None]) -> Models:
        folders: dict[str, Path] = {}
        for p in paths:
            folder = Path(p).resolve()
            if folder.name in folders:
                raise InputError(f"two artifact folders are named {folder.name!r} ({folders[folder.name]} and "
                                 f"{folder}): each model is named by its folder, so the names must differ")
            folders[folder.name] = folder
        models = cls(folders, settings, on_batch)
        for name in folders:
            models.current[name] = models._load(name)
        return models

    def _load(self, name: str) -> Loaded:
        folder = self.folders[name]
        key = stat_key(folder)
        # intra_op=False: onnxruntime's spinning intra-op threads would starve the event loop of its core
        clf = Classifier.load(folder, intra_op=False)
        batcher = Batcher(clf, self.settings.max_batch_rows, self.settings.max_delay_s, self.settings.max_queue,
                          lambda rows: self.on_batch(name, rows))
        return Loaded(name, clf, weights_version(clf.manifest), batcher, key)

    def acquire(self, name: str) -> Loaded | None:
        loaded = self.current.get(name)
        if loaded is not None:
            loaded.users += 1
        return loaded

    async def watch(self) -> None:
        """Poll the manifests; load a replaced folder and swap it in (runs until cancelled)."""
        failed: dict[str, StatKey] = {}
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            with contextlib.suppress(OSError):  # a closed stdout must not end the watcher
                sys.stdout.flush()  # the access log is block-buffered: written out twice a second
            for name, old in list(self.current.items()):
                key = stat_key(self.folders[name])
                if key is None or key == old.stat or key == failed.get(name):
                    continue
                try:
                    new = await asyncio.to_thread(self._load, name)
                except (EdgeclfError, OSError) as e:  # a broken folder: keep serving the old version
                    failed[name] = key
                    print(f"edgeclf serve: {name}: kept version {old.version[:12]}; the new folder does not load: "
                          f"{first_line(e)}", file=sys.stderr, flush=True)
                    continue
                self._swap(old, new)

    def _swap(self, old: Loaded, new: Loaded) -> None:
        self.current[old.name] = new
        old.retired = True
        if old.users == 0:
            old.batcher.close()
        print(f"edgeclf serve: {old.name}: now version {new.version[:12]} (was {old.version[:12]})",
              file=sys.stderr, flush=True)

    def close(self) -> None:
        """(On the event loop.) Stop every current worker once its jobs are done; join() waits for them."""
        for loaded in self.current.values():
            loaded.batcher.close()

    def join(self) -> None:
        for loaded in self.current.values():
            loaded.batcher.join()
