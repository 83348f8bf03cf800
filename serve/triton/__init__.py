"""vigil behind NVIDIA Triton Inference Server through PyTriton.

(The other way, a standard model repository for Triton's ONNX Runtime backend, is written
offline by `vigil.export.triton`.)

- `pytriton_app`: runs vigil's own engine inside a real `tritonserver` through PyTriton,
  text in and scores out, with Triton's batcher, endpoints and metrics in front. Needs
  `nvidia-pytriton`, which pins numpy<2, so it lives in its own venv (.venv-triton).

Nothing is re-exported here: import `pytriton_app` by name, inside .venv-triton.
"""

__all__: list[str] = []
