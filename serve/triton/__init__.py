"""vigil behind NVIDIA Triton Inference Server, two ways.

- `repository`: writes a standard model repository for Triton's ONNX Runtime backend (the
  fp16 graph, TensorRT FP16 on a GPU). Triton gets token ids; clients tokenize. Needs
  `tritonclient[grpc]` for Triton's config schema.
- `pytriton_app`: runs vigil's own engine inside a real `tritonserver` through PyTriton,
  text in and scores out, with Triton's batcher, endpoints and metrics in front. Needs
  `nvidia-pytriton`, which pins numpy<2, so it lives in its own venv (.venv-triton).

Nothing is re-exported here: each submodule needs its own optional dependency, and
importing one must not require the other's. Import them by name.
"""

__all__: list[str] = []
