"""vigil: fast, exact inference for the m2im/smaller_labse_finetuned_twitter tweet classifier.

The face of the library, for users who want one import:

    from vigil import Classifier, Service, BatcherConfig, aggregate

Everything here comes from `vigil.runtime` (the lean engine: onnxruntime, numpy,
tokenizers), imported on first use: `import vigil` alone loads nothing. The packages: `vigil.runtime`, `vigil.export`,
`vigil.files`, `vigil.cli`, `vigil.serve`, `vigil.evaluate`, `vigil.distributed`.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Classifier", "Service", "BatcherConfig", "aggregate", "GroupScores", "clean_tweet", "VigilError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("vigil.runtime"), name)
    raise AttributeError(f"module 'vigil' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
