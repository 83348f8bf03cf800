"""Importing vigil from a bare checkout, as the GPU machine and the Optimum environment do."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from benchmarks.source import REPO, SUBPACKAGES, vigil_source_path


def test_every_package_of_pyproject_is_linked() -> None:
    mapping = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-dir"]
    assert {name.removeprefix("vigil.") for name in mapping if name != "vigil"} == set(SUBPACKAGES)


def test_the_links_import_vigil_from_the_checkout_ahead_of_its_own_vigil_folder(tmp_path: Path) -> None:
    """The checkout is on sys.path too (for `benchmarks`), and its `vigil/` holds only
    `__init__.py`: the links must win, with every subpackage export needs."""
    links = vigil_source_path(tmp_path)
    script = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
        "import vigil, vigil.runtime.manifest, vigil.files.atomic, vigil.export.buckets\n"
        "print(vigil.__file__); print(vigil.runtime.manifest.__file__); print(vigil.files.atomic.__file__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(links), str(REPO)], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == [
        str(links / "vigil" / "__init__.py"),
        str(links / "vigil" / "runtime" / "manifest.py"),
        str(links / "vigil" / "files" / "atomic.py"),
    ]
