"""What export raises: a checkpoint it cannot export, a variant outside its tolerance.

Both are `VigilError`s, so the command line prints them as one line like any other.
"""

from __future__ import annotations

from pathlib import Path

from vigil.runtime.errors import VigilError

__all__ = ["ExportError", "ValidationError", "refuse_existing"]


class ExportError(VigilError):
    """A checkpoint cannot be loaded or exported."""


class ValidationError(ExportError):
    """An exported variant disagrees with the PyTorch reference beyond its tolerance."""


def refuse_existing(path: Path, force: bool) -> None:
    """Never replace PATH unless asked: an artifact or repository may be in use."""
    if path.exists() and not force:
        raise ExportError(f"{path} already exists; pass --force to replace it")
