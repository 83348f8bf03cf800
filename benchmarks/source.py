"""Where the vigil checkout is, how to import vigil from it where it is not installed, and
how results name paths without the absolute paths of the machine that made them.

Two places run benchmark code without vigil installed: the Optimum virtual environment
(Optimum pins an older transformers, so vigil cannot live there) and the GPU machine, which
receives a bare copy of the working tree. Both only need to import `vigil.*` from this
checkout. Installed, `vigil.runtime` maps to `runtime/` (see pyproject.toml); here the same
mapping is a folder `vigil/` of symbolic links, which Python reads as a namespace package,
so each subpackage is imported lazily and only its own dependencies are needed.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["REPO", "SUBPACKAGES", "vigil_source_path", "ensure_vigil_importable", "portable", "portable_json"]

REPO = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("runtime", "export", "cli")


def vigil_source_path(folder: Path) -> Path:
    """Make FOLDER/vigil/<sub> links to this checkout's subpackages; return FOLDER.

    Put FOLDER on `sys.path` (or PYTHONPATH, for a child process) to import vigil from
    the checkout. The links are rewritten every time, so a moved checkout is followed.
    """
    package = folder / "vigil"
    package.mkdir(parents=True, exist_ok=True)
    for name in SUBPACKAGES:
        link = package / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(REPO / name, target_is_directory=True)
    return folder


def ensure_vigil_importable(scratch: Path) -> bool:
    """Import vigil from the checkout (through links under SCRATCH) if it is not installed.

    Returns True when the checkout had to be put on `sys.path`.
    """
    if importlib.util.find_spec("vigil") is not None:
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
