"""The format registry (edgeclf.runtime.formats) is the one list every part derives from, and the public API's
import paths: `from edgeclf.export import export_model, export_artifact, verify_artifact` and `from edgeclf.train
import train_task, train_data`, lazily (importing the packages loads no torch)."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from helpers import ARTIFACTS

from edgeclf.export.registry import load, selected
from edgeclf.runtime import Manifest, formats
from edgeclf.runtime.errors import InputError


def test_public_api_import_paths() -> None:
    from edgeclf.export import export_artifact, export_model, verify_artifact
    from edgeclf.export.own_model import export_model as own
    from edgeclf.export.pipeline import export_artifact as exp
    from edgeclf.export.pipeline import verify_artifact as ver
    from edgeclf.train import train_data, train_task
    from edgeclf.train.api import train_data as data
    from edgeclf.train.api import train_task as task

    assert (export_model, export_artifact, verify_artifact, train_task, train_data) == (own, exp, ver, task, data)
    with pytest.raises(ImportError):
        from edgeclf.export import export_everything  # noqa: F401


def test_importing_the_packages_loads_no_torch() -> None:
    code = ("import sys, edgeclf.export, edgeclf.train; from edgeclf.export import EDGE_FORMATS, DEFAULT_OPSET; "
            "print(sorted(m for m in ('torch', 'onnx', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_every_name_the_registry_gives_resolves() -> None:
    for f in formats.FORMATS:
        assert callable(load(f.write)), f.name
        assert not f.runner or callable(load(f.runner)), f.name
        assert all(callable(load(ref)) for _, ref in f.cards), f.name
    names = [f.name for f in formats.FORMATS]
    files = [f.file for f in formats.FORMATS]
    assert len(set(names)) == len(names) and len(set(files)) == len(files)


def test_the_manifest_cli_and_export_derive_from_the_registry() -> None:
    from edgeclf.cli.main import export
    from edgeclf.export import EDGE_FORMATS
    from edgeclf.runtime.manifest import FORMATS

    assert FORMATS == tuple(f.name for f in formats.FORMATS)
    assert EDGE_FORMATS == ("c", "ort", "int8", "pte")
    option = next(p for p in export.params if p.name == "edge")
    assert isinstance(option.type, click.Choice) and tuple(option.type.choices) == EDGE_FORMATS
    assert option.help == ("Also write: c (a C99 header, model.h), ort (onnxruntime mobile format), int8 (quantised "
                           "ONNX), pte (ExecuTorch programs: XNNPACK model.pte, portable model.portable.pte). Repeat "
                           "for several.")
    assert [f.name for f in selected(())] == ["onnx", "torchscript", "torch.export"]
    assert [f.name for f in selected(("int8", "c"))] == ["onnx", "torchscript", "torch.export", "c", "onnx-int8"]
    with pytest.raises(InputError, match="unknown format 'tflite': expected one of c, ort, int8, pte"):
        selected(("tflite",))


def test_an_empty_verify_report_is_falsy() -> None:
    from edgeclf.export.pipeline import VerifyReport

    manifest = Manifest.read(ARTIFACTS / "circles")[0]
    assert not VerifyReport(manifest, [])


def test_formats_by_option_or_manifest_name() -> None:
    """export_model(formats=[...]) / export_artifact(formats=[...]) take the names a user writes: the defaults are
    accepted and need nothing, an opt-in format by its option or its manifest name, an unknown one is kept for the
    one check that refuses it with the choices."""
    from edgeclf.runtime.formats import options_of

    assert options_of(["onnx", "torchscript", "torch.export", "pt2"]) == ()
    assert options_of(["onnx", "pte", "onnx-int8", "c", "int8"]) == ("pte", "int8", "c")
    assert options_of(["tflite"]) == ("tflite",)


def test_export_model_refuses_an_unknown_format_in_one_line(tmp_path) -> None:
    import numpy as np
    import pytest
    import torch

    from edgeclf.export import export_model
    from edgeclf.runtime.errors import InputError

    with pytest.raises(InputError, match=r"^unknown format 'tflite': expected one of c, ort, int8, pte$"):
        export_model(torch.nn.Linear(2, 1), tmp_path, features=["a", "b"], classes=["n", "y"],
                     check_data=np.zeros((4, 2), np.float32), formats=["onnx", "tflite"])
    assert not any(tmp_path.iterdir())  # nothing written
