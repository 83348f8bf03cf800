"""Installed versions of distributions, for the records that say what made them.

Artifacts' manifests and benchmark results both record them, so that a figure or an
export can be traced to the software that produced it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from importlib import metadata

__all__ = ["installed_versions"]


def installed_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of the distributions NAMES; missing ones are left out.

    "onnxruntime" is the version of the module this process imported, when it did: the
    onnxruntime-gpu distribution installs the same module, and a stale `onnxruntime`
    distribution beside it would otherwise be reported for code it never ran.
    """
    found = {}
    for name in names:
        module = sys.modules.get(name) if name == "onnxruntime" else None
        try:
            found[name] = getattr(module, "__version__", None) or metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found
