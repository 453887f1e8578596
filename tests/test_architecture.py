"""docs/architecture.md names every module of every package and its job, and names no module that is gone (no line
counts: they went stale the round they were written)."""

from __future__ import annotations

import re

from helpers import ROOT


def _packages() -> dict[str, str]:
    """edgeclf.<name> -> its folder, from pyproject.toml (the one place the mapping lives)."""
    section = (ROOT / "pyproject.toml").read_text().split("[tool.setuptools.package-dir]", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^"(edgeclf\.\w+)" = "(\w+)"', section, re.MULTILINE))


def _listed() -> set[str]:
    table = (ROOT / "docs" / "architecture.md").read_text().split("## Modules", 1)[1].split("\n## ", 1)[0]
    return {m.replace("\\_", "_") for m in re.findall(r"^\| ([\w\\]+/[\w\\]+\.py) \|", table, re.MULTILINE)}


def test_every_module_is_named_in_the_architecture_doc() -> None:
    modules = {f"{folder}/{p.name}" for folder in _packages().values() for p in (ROOT / folder).glob("*.py")
               if p.name != "__init__.py" or len(p.read_text().splitlines()) > 3}  # an __init__ with code counts
    listed = _listed()
    assert not sorted(modules - listed), "modules missing from docs/architecture.md's table"
    assert not sorted(listed - modules), "docs/architecture.md names modules that do not exist"
