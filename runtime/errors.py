"""The exceptions vigil raises, as one small tree.

    VigilError
    ├── ArtifactError          the artifact directory or its manifest is unusable
    ├── ProviderError          a requested execution provider or precision is unavailable
    ├── InputError             a text or an input file is not acceptable
    ├── MissingDependencyError an optional dependency (a vigil extra) is not installed
    ├── BatcherError           the dynamic batcher cannot take or finish a request
    │   ├── OverloadedError    its queue stayed full for the whole submit timeout
    │   └── BatcherClosedError it was closed before the request was submitted (a ClosedError too)
    └── ClosedError            a closed Classifier or batcher was asked for work (a RuntimeError too)

vigil.export adds ExportError (and its ValidationError) under VigilError, in
`vigil.export.errors`, so that the lean runtime carries nothing of export's.

Every message names the offending thing (a path, a label, a line) so that the command
line can print it as the one line a user sees.
"""

from __future__ import annotations

__all__ = [
    "VigilError",
    "ArtifactError",
    "ProviderError",
    "InputError",
    "MissingDependencyError",
    "BatcherError",
    "OverloadedError",
    "BatcherClosedError",
    "ClosedError",
]


class VigilError(Exception):
    """Base of every error vigil raises on purpose."""


class ArtifactError(VigilError):
    """The artifact directory, its manifest or one of its files is missing or corrupt."""


class ProviderError(VigilError):
    """An explicitly requested execution provider or precision cannot be used."""


class InputError(VigilError, ValueError):
    """A text, or a row of an input file, cannot be scored."""


class MissingDependencyError(VigilError):
    """An optional dependency is not installed; the message names the extra that brings it.

    The one spelling of the install hint, whoever finds the package missing.
    """

    def __init__(self, package: str, extra: str, purpose: str | None = None) -> None:
        needs = f"{purpose} needs {package}, which is" if purpose else f"{package} is"
        super().__init__(f"{needs} not installed: pip install 'vigil[{extra}]'")
        self.package = package
        self.extra = extra


class ClosedError(VigilError, RuntimeError):
    """Work was asked of a Classifier or batcher after it was closed.

    Also a RuntimeError, which closed objects raised before this class existed, so that
    callers catching RuntimeError keep working.
    """


class BatcherError(VigilError):
    """The dynamic batcher cannot accept or complete a request."""


class OverloadedError(BatcherError):
    """The request queue stayed full for the whole submit timeout."""


class BatcherClosedError(BatcherError, ClosedError):
    """A request was submitted after the batcher was closed."""
