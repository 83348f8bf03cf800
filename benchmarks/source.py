"""Where the vigil checkout is, how to import vigil from it where it is not installed, and
how results name paths without the absolute paths of the machine that made them.

Two places run benchmark code without vigil installed: the Optimum virtual environment
(Optimum pins an older transformers, so vigil cannot live there) and the GPU machine, which
receives a bare copy of the working tree. Both only need to import `vigil.*` from this
checkout. Installed, `vigil.runtime` maps to `runtime/` (see pyproject.toml); here the same
mapping is a folder `vigil/` of symbolic links (the package's `__init__.py` and each
subpackage), so each subpackage is imported lazily and only its own dependencies are needed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["REPO", "SUBPACKAGES", "vigil_source_path", "ensure_vigil_importable", "portable", "portable_json"]

REPO = Path(__file__).resolve().parents[1]
# Every package pyproject.toml maps under `vigil` (export imports vigil.files, for one).
SUBPACKAGES = ("runtime", "export", "files", "cli", "serve", "evaluate", "distributed")


def vigil_source_path(folder: Path) -> Path:
    """Make FOLDER/vigil a package of links into this checkout, laid out as installed;
    return FOLDER.

    Put FOLDER on `sys.path` (or PYTHONPATH, for a child process) ahead of the checkout
    itself, whose own `vigil/` holds only the package's `__init__.py`. The links are
    rewritten every time, so a moved checkout is followed.
    """
    package = folder / "vigil"
    package.mkdir(parents=True, exist_ok=True)
    targets = {"__init__.py": REPO / "vigil" / "__init__.py", **{name: REPO / name for name in SUBPACKAGES}}
    for name, target in targets.items():
        link = package / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target, target_is_directory=target.is_dir())
    return folder


def ensure_vigil_importable(scratch: Path) -> bool:
    """Import vigil from this checkout, through links under SCRATCH, ahead of anything else.

    A script run from the checkout has the checkout on `sys.path` (for `benchmarks`), whose
    own `vigil/` folder would shadow an installed vigil and hold no subpackages; the links
    make `vigil.*` this checkout's code whether or not, and however, vigil is installed.
    Returns False when vigil was already imported (nothing to do), else True.
    """
    if "vigil.runtime" in sys.modules:
        return False
    sys.path.insert(0, str(vigil_source_path(scratch)))
    return True


def portable(path: str | Path) -> str:
    """PATH as results record it: relative to the checkout or to "~", else only its name.

    Results are committed and shared; the checkout's location, the user's home and other
    machine-specific folders say nothing about the figures.
    """
    path = Path(path).expanduser()
    if not path.is_absolute():
        return str(path)
    for base, shown in ((REPO, ""), (Path.home(), "~/")):
        if path.is_relative_to(base):
            return shown + str(path.relative_to(base)) if path != base else shown.rstrip("/") or "."
    return f".../{path.name}"


def portable_json(value: Any) -> Any:
    """VALUE (dataclass dicts and the like) made JSON-ready, with every Path made `portable`."""
    return json.loads(json.dumps(value, default=lambda item: portable(item) if isinstance(item, Path) else str(item)))
