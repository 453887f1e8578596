"""What an export takes over from the folder it replaces: nothing a user made disappears silently.

An export builds the new folder from scratch (artifact.store.staged_folder), so everything the old one held is
either made again (the files of every format, the edge formats its manifest lists), carried over (the pictures,
when they were drawn from the same weights; any file edgeclf does not write), rewritten (MODEL_CARD.md, which
lists the new files' hashes), or dropped with a warning that names the file, the reason and the command that
keeps it.
"""

from __future__ import annotations

import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from edgeclf.artifact.store import CARD, CHECK_DATA, MANIFEST, PICTURES
from edgeclf.export.ort_format import CONFIG_NAME
from edgeclf.runtime.errors import ArtifactError, InputError
from edgeclf.runtime.formats import C_HEADER, FORMATS, OPT_IN, PT2, TORCHSCRIPT, by_option, installed, named
from edgeclf.runtime.manifest import Manifest

EDGE_OF_FORMAT = {f.name: f.option for f in OPT_IN}  # manifest format -> the --format that makes it
# the files of every per-batch format ("{batch}" in its registry file name): model.b64.onnx, model.b64.ort, ...
_BATCH_FILES = tuple(re.compile(re.escape(f.file).replace(re.escape("{batch}"), r"(\d+)"))
                     for f in FORMATS if "{batch}" in f.file)
CardWriter = Callable[[Path], None]  # writes MODEL_CARD.md into a folder that holds its manifest (report.build)


class DroppedWarning(UserWarning):
    """A file of the folder an export replaced is not in the new one."""


@dataclass(frozen=True)
class Previous:
    """The folder an export replaces, as far as the export needs to know it."""

    folder: Path
    names: tuple[str, ...]  # its entries
    edge: tuple[str, ...]  # the --format values its manifest lists
    c_prefix: str | None  # its C header's prefix
    weights: str | None  # the state_dict sha256 its files were made from (None: no readable manifest)
    lossy_int8_allowed: bool = False  # its int8 files were written with --allow-lossy-int8
    formats: tuple[tuple[str, str], ...] = ()  # (file, manifest format) of every file its manifest lists


def previous(folder: Path) -> Previous:
    folder = Path(folder)
    if not folder.is_dir():
        return Previous(folder, (), (), None, None)
    names = tuple(sorted(p.name for p in folder.iterdir()))
    try:
        m, _ = Manifest.read(folder)
    except (ArtifactError, InputError):
        return Previous(folder, names, (), None, None)
    edge = tuple(dict.fromkeys(EDGE_OF_FORMAT[f.format] for f in m.files if f.format in EDGE_OF_FORMAT))
    prefix = next((str(f.details["prefix"]) for f in m.files if f.format == C_HEADER.name and "prefix" in f.details), None)
    allowed = any("lossy_allowed" in f.details for f in m.files)
    files = tuple((f.path, f.format) for f in m.files)
    return Previous(folder, names, edge, prefix, m.origin.state_dict_sha256, allowed, files)


def edge_formats(asked: Sequence[str], before: Previous) -> tuple[str, ...]:
    """The edge formats to write: those asked for, and those the folder had that this Python can write (one
    whose extra is missing is dropped with a warning naming the extra, not a failed export)."""
    kept = [o for o in before.edge if (f := by_option(o)) is not None and installed(f)]
    return tuple(dict.fromkeys([*asked, *kept]))


def carry_over(before: Previous, staged: Path, weights: str, card: CardWriter | None) -> list[str]:
    """Copy into the staged folder what the previous one held and this export did not make, rewrite its card,
    warn (DroppedWarning) about the rest. Returns the names carried over."""
    kept = []
    dropped: dict[str, list[str]] = {}  # reason -> names
    for name in before.names:
        if (staged / name).exists() or name == CARD:
            continue
        reason = _why_dropped(name, before, weights)
        if reason is None:
            src = before.folder / name
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, staged / name)
            kept.append(name)
        else:
            dropped.setdefault(reason, []).append(name)
    for reason, names in dropped.items():
        warnings.warn(f"{', '.join(names)} dropped from {before.folder}: {reason}", DroppedWarning, stacklevel=2)
    if CARD in before.names:
        if card is None:
            warnings.warn(f"{CARD} dropped from {before.folder}: it listed the previous files; `edgeclf plot "
                          f"{before.folder}` writes a new one", DroppedWarning, stacklevel=2)
        else:
            card(staged)
            kept.append(CARD)
    return kept


def _sizes_advice(before: Previous) -> str:
    sizes = sorted({b for n in before.names if (b := _batch_of(n)) is not None})
    return "to keep them, export with " + " ".join(f"--batch-size {b}" for b in sizes)


def _batch_of(name: str) -> int | None:
    """The batch size of a per-batch format's file, or None for any other name."""
    return next((int(m.group(1)) for p in _BATCH_FILES if (m := p.fullmatch(name))), None)


def _why_dropped(name: str, before: Previous, weights: str) -> str | None:
    """None: carry it over as it is."""
    fmt = named(dict(before.formats).get(name, ""))
    if fmt is not None and not installed(fmt):
        return (f"their format ({fmt.label}) needs the {fmt.extra} extra, which is not installed here: "
                f"pip install 'edgeclf[{fmt.extra}]' and export again to make them")
    if name in PICTURES:
        if before.weights == weights:
            return None
        return f"drawn from other weights than this export's; `edgeclf plot {before.folder}` draws them again"
    if _batch_of(name) is not None:
        return f"their batch sizes are not among this export's; {_sizes_advice(before)}"
    if name in (MANIFEST, TORCHSCRIPT.file, PT2.file, C_HEADER.file, CONFIG_NAME, CHECK_DATA):
        return "made by the previous export from a manifest that cannot be read any more, not by this one"
    return None  # not a file edgeclf writes: the user's own
