"""The exceptions vigil raises, as one small tree.

    VigilError
    ├── ArtifactError          the artifact directory or its manifest is unusable
    ├── ExportError            a checkpoint cannot be exported (vigil.export)
    │   └── ValidationError    a variant is outside its documented tolerance
    ├── ProviderError          a requested execution provider or precision is unavailable
    ├── InputError             a text or an input file is not acceptable
    └── BatcherError           the dynamic batcher cannot take or finish a request
        ├── OverloadedError    its queue stayed full for the whole submit timeout
        └── BatcherClosedError it was closed before the request was submitted

Every message names the offending thing (a path, a label, a line) so that the command
line can print it as the one line a user sees.
"""

from __future__ import annotations

__all__ = [
    "VigilError",
    "ArtifactError",
    "ExportError",
    "ValidationError",
    "ProviderError",
    "InputError",
    "BatcherError",
    "OverloadedError",
    "BatcherClosedError",
]


class VigilError(Exception):
    """Base of every error vigil raises on purpose."""


class ArtifactError(VigilError):
    """The artifact directory, its manifest or one of its files is missing or corrupt."""


class ExportError(VigilError):
    """A checkpoint cannot be loaded or exported."""


class ValidationError(ExportError):
    """An exported variant disagrees with the PyTorch reference beyond its tolerance."""


class ProviderError(VigilError):
    """An explicitly requested execution provider or precision cannot be used."""


class InputError(VigilError, ValueError):
    """A text, or a row of an input file, cannot be scored."""


class BatcherError(VigilError):
    """The dynamic batcher cannot accept or complete a request."""


class OverloadedError(BatcherError):
    """The request queue stayed full for the whole submit timeout."""


class BatcherClosedError(BatcherError):
    """A request was submitted after the batcher was closed."""
