"""vigil.runtime: the lean engine that scores tweets with an exported artifact.

Imports only onnxruntime, numpy, tokenizers and the standard library.
"""

from .errors import *  # noqa: F403
from .errors import __all__ as _errors_all
from .manifest import Manifest, Variant
from .preprocess import clean_tweet

__all__ = [*_errors_all, "Manifest", "Variant", "clean_tweet"]
