"""vigil.runtime: the lean engine that scores tweets with an exported artifact.

Imports only onnxruntime, numpy, tokenizers and the standard library.
"""

from .aggregate import GroupAccumulator, GroupScores, GroupTotals, aggregate
from .batcher import BatcherConfig, BatchRecord
from .engine import Classifier, EmbeddedBatch, Predictions, ScoredBatch
from .errors import *  # noqa: F403
from .errors import __all__ as _errors_all
from .manifest import Manifest, Variant
from .preprocess import clean_tweet
from .service import Service

__all__ = [
    *_errors_all,
    "Manifest",
    "Variant",
    "clean_tweet",
    "Classifier",
    "ScoredBatch",
    "EmbeddedBatch",
    "Predictions",
    "Service",
    "BatcherConfig",
    "BatchRecord",
    "aggregate",
    "GroupScores",
    "GroupAccumulator",
    "GroupTotals",
]
