"""`vigil triton-serve`: vigil's own engine behind a real Triton server, through PyTriton.

Where `export-triton` hands Triton bare token ids for its ONNX Runtime backend, this serves
text. PyTriton starts `tritonserver` as a child process; its dynamic batcher groups
requests, and PyTriton calls the infer function below in this process with each batch,
which `Classifier.predict` cleans, tokenizes and scores exactly as `vigil classify` would.
Triton brings the HTTP and gRPC endpoints and the Prometheus metrics.

    input   text    BYTES [1]   one UTF-8 tweet per request ([n, 1] once batched)
    output  scores  FP32  [L]   probabilities, in the manifest's label order
    output  labels  BOOL  [L]   each score >= its label's threshold in the artifact

Two consequences of batching to know about:
- PyTriton answers a whole batch with one result or one error (HTTP 500, the message ending
  in the InputError), so a request that is not valid UTF-8 also fails the requests Triton
  batched it with.
- int8 (the CPU's default where the artifact has it) is calibrated at export, so a tweet
  scores the same whatever Triton batches it with.

PyTriton pins numpy below 2, so it lives in a virtual environment of its own; vigil.runtime
runs on either numpy, and vigil.serve's own imports (FastAPI) must be there too:

    python3 -m venv .venv-triton
    .venv-triton/bin/pip install nvidia-pytriton "tritonclient[grpc,http]" onnxruntime \
        tokenizers click tqdm fastapi uvicorn prometheus-client
    .venv-triton/bin/pip install --no-deps -e .
    .venv-triton/bin/vigil triton-serve ARTIFACT
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

from vigil.runtime import Classifier
from vigil.runtime.checks import require_int
from vigil.runtime.errors import InputError

__all__ = ["MODEL_NAME", "PyTritonSettings", "make_infer", "serve"]

MODEL_NAME = "vigil"


@dataclass(frozen=True)
class PyTritonSettings:
    """Where Triton listens and how it batches; checked when built.

    Attributes:
        host: Address of all three endpoints; loopback unless told otherwise.
        http_port, grpc_port, metrics_port: Distinct TCP ports.
        max_batch_size: Largest batch Triton hands the infer function.
        max_queue_delay_us: How long Triton may hold a request to fill a batch.
    """

    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    max_batch_size: int = 64
    max_queue_delay_us: int = 2000

    def __post_init__(self) -> None:
        ports = {"http_port": self.http_port, "grpc_port": self.grpc_port, "metrics_port": self.metrics_port}
        for name, port in ports.items():
            require_int(name, port, 1, 65535)
        if len(set(ports.values())) != len(ports):
            raise ValueError(f"the three ports must differ, got {ports}")
        require_int("max_batch_size", self.max_batch_size, 1)
        require_int("max_queue_delay_us", self.max_queue_delay_us, 0)


def make_infer(clf: Classifier) -> Callable[..., dict[str, np.ndarray]]:
    """The infer function PyTriton calls with each batch Triton formed."""

    @batch  # hands over the requests' inputs stacked into one [n, 1] array and splits the result
    def infer(text: np.ndarray) -> dict[str, np.ndarray]:
        scores = clf.predict(_decode(text))
        return {"scores": scores, "labels": clf.decide(scores)}

    return infer


def _decode(text: np.ndarray) -> list[str]:
    """The batch's texts as str; Triton passes BYTES through without checking the encoding."""
    try:
        return [item.decode("utf-8") for item in text[:, 0]]
    except UnicodeDecodeError as exc:
        raise InputError(f"input 'text' must be UTF-8; a request in this batch is not ({exc})") from None


def serve(artifact: str | Path, settings: PyTritonSettings, *, variant: str | None = None) -> None:
    """Serve ARTIFACT until Triton stops or the process gets SIGINT; blocks.

    Args:
        variant: The manifest variant, or None for the provider's natural one (see
            `Classifier.open`).

    Raises:
        ArtifactError, ProviderError: The artifact or the variant cannot be opened.
    """
    _let_python_backend_find_libpython()
    with Classifier.open(artifact, variant=variant, max_batch_size=settings.max_batch_size) as clf:
        with Triton(config=_triton_config(settings)) as triton:
            triton.bind(
                model_name=MODEL_NAME,
                infer_func=make_infer(clf),
                inputs=[Tensor(name="text", dtype=bytes, shape=(1,))],
                outputs=[
                    Tensor(name="scores", dtype=np.float32, shape=(len(clf.labels),)),
                    Tensor(name="labels", dtype=np.bool_, shape=(len(clf.labels),)),
                ],
                config=ModelConfig(
                    max_batch_size=settings.max_batch_size,
                    batcher=DynamicBatcher(max_queue_delay_microseconds=settings.max_queue_delay_us),
                ),
                strict=True,  # check each answer against the outputs declared above
            )
            triton.serve()


def _let_python_backend_find_libpython() -> None:
    """Put this interpreter's lib directory on LD_LIBRARY_PATH for Triton's children.

    Triton's Python backend stub embeds libpython; without this directory it finds another
    build and fails with "'_thread.RLock' object has no attribute '_recursion_count'".
    PyTriton starts tritonserver with a copy of os.environ, so setting it here, before
    Triton starts, reaches the stub; this process's own loader never needs it.
    """
    libdir = sysconfig.get_config_var("LIBDIR")
    paths = os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)
    if libdir and libdir not in paths:
        os.environ["LD_LIBRARY_PATH"] = os.pathsep.join([libdir, *filter(None, paths)])


def _triton_config(settings: PyTritonSettings) -> TritonConfig:
    return TritonConfig(
        http_address=settings.host,
        http_port=settings.http_port,
        grpc_address=settings.host,
        grpc_port=settings.grpc_port,
        metrics_address=settings.host,
        metrics_port=settings.metrics_port,
    )
