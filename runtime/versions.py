"""Installed versions of distributions, for the records that say what made them.

Artifacts' manifests and benchmark results both record them, so that a figure or an
export can be traced to the software that produced it.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata

__all__ = ["installed_versions"]


def installed_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of the distributions NAMES; missing ones are left out."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found
