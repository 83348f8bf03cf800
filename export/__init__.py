"""vigil.export: from a Hugging Face checkpoint to a validated ONNX artifact directory.

Heavy by design (torch, transformers, onnx, onnxruntime's transformer tools); the runtime
never imports it. Its one output is the artifact directory described by
`vigil.runtime.manifest`.
"""

from .artifact import VARIANTS, export_artifact
from .checkpoint import DEFAULT_SOURCE, load_checkpoint
from .standin import FULL, TINY, StandinSize, write_standin

__all__ = [
    "DEFAULT_SOURCE",
    "FULL",
    "TINY",
    "VARIANTS",
    "StandinSize",
    "export_artifact",
    "load_checkpoint",
    "write_standin",
]
