"""Which execution provider runs the artifact, and with which options.

`plan_sessions` is a pure function from a manifest, a request ("auto", "tensorrt", "cuda",
"cpu", optionally a variant) and the providers this onnxruntime build offers to the ordered
list of `SessionPlan`s worth trying (`vigil.runtime.model` opens them):

- **TensorRT** runs the "fp16" variant (standard operators: its parser has no ONNX Runtime
  contrib ops) with fp16 kernels, an engine and timing cache, and one optimisation profile
  covering batch sizes 1..max_batch_size.
- **CUDA** runs "fp16-fused" with one CUDA graph per batch-size bucket, then without graphs.
- **CPU** runs "int8" (or an explicitly chosen variant, including "fp32"), or "fp32" where
  export left int8 out, or, for a caller that will embed, where int8's embeddings missed
  their tolerance at export.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from .checks import require_int
from .errors import ProviderError
from .gpu_libraries import onnxruntime_version, require_gpu_libraries
from .manifest import INPUT_NAMES, Manifest, Variant

__all__ = [
    "GPU_DEVICE",
    "NATURAL_VARIANTS",
    "PROVIDERS",
    "PROVIDER_CHOICES",
    "TRT_WORKSPACE_BYTES",
    "SessionPlan",
    "buckets",
    "cuda_options",
    "engine_cache_key",
    "plan_sessions",
    "profile_shapes",
    "tensorrt_options",
]

_log = logging.getLogger(__name__)

PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
# What each provider runs best; `auto` tries the providers in this order.
NATURAL_VARIANTS = {"tensorrt": "fp16", "cuda": "fp16-fused", "cpu": "int8"}
# What a user may ask for, everywhere a provider is chosen (CLI, benchmarks, settings).
PROVIDER_CHOICES = ("auto", *PROVIDERS)
# GPU scratch memory TensorRT may use while it builds an engine (notes/GPU.md: 4 GiB),
# for the runtime's sessions and Triton's model config alike.
TRT_WORKSPACE_BYTES = 4 << 30
GPU_DEVICE = "cuda"


@dataclass(frozen=True)
class SessionPlan:
    """One way to run the artifact.

    Attributes:
        provider: The ONNX Runtime provider that must run the graph.
        variant: The manifest variant it runs.
        providers: Exactly what `InferenceSession(providers=...)` receives.
        buckets: Batch sizes with fixed, bound buffers; empty to run any batch as it is.
        device: Where bound buffers live ("cuda", or "cpu" to exercise binding on a CPU).
        cuda_graphs: Capture one CUDA graph per bucket (`gpu_graph_id` 1, 2, ...).
        cache_dir: Directory the provider caches into (TensorRT engines), created on open.
    """

    provider: str
    variant: str
    providers: tuple[tuple[str, Mapping[str, str]], ...]
    buckets: tuple[int, ...] = ()
    device: str = "cpu"
    cuda_graphs: bool = False
    cache_dir: Path | None = None

    def describe(self) -> str:
        graphs = " with CUDA graphs" if self.cuda_graphs else ""
        return f"{self.provider} running variant {self.variant!r}{graphs}"


def plan_sessions(
    manifest: Manifest,
    provider: str = "auto",
    variant: str | None = None,
    available_providers: Sequence[str] = (),
    *,
    max_batch_size: int = 256,
    cache_dir: str | os.PathLike[str] | None = None,
    embeddings: bool = False,
) -> list[SessionPlan]:
    """The sessions worth trying, best first, for PROVIDER and VARIANT on this build.

    Args:
        manifest: The artifact.
        provider: "auto", or one of `PROVIDERS` to insist on it.
        variant: A manifest variant name, or None for each provider's natural variant.
        available_providers: What `onnxruntime.get_available_providers()` reports.
        max_batch_size: Largest batch a GPU session is built and bucketed for.
        cache_dir: Where TensorRT caches engines, one folder per `engine_cache_key`; None
            means `<artifact>/.trt-cache` when the artifact directory is writable, else
            `~/.cache/vigil/trt`.
        embeddings: The caller will embed: where VARIANT is None, pass over a natural
            variant whose embeddings missed their tolerance at export (int8: the CPU runs fp32).

    A GPU provider's libraries are loaded here, once per process (`gpu_libraries`): one
    that cannot load rules its provider out, as an error when it was asked for by name.

    Raises:
        ProviderError: An explicit provider or variant cannot be used here; the message
            lists what can, or names the missing library and the extra that brings it.
    """
    require_int("max_batch_size", max_batch_size, 1)
    if provider != "auto" and provider not in PROVIDERS:
        raise ProviderError(f"unknown provider {provider!r}; choose auto or one of {sorted(PROVIDERS)}")
    if variant is not None and variant not in manifest.variants:
        raise ProviderError(
            f"artifact {manifest.directory} has no variant {variant!r}; it has {sorted(manifest.variants)}"
        )
    plans_for = partial(
        _plans_for, manifest, variant=variant, available=available_providers, max_batch_size=max_batch_size,
        cache_dir=cache_dir, embeddings=embeddings,
    )
    if provider != "auto":
        return plans_for(provider)
    found = []
    for name in PROVIDERS:
        try:
            found += plans_for(name)
        except ProviderError as exc:  # in the build but unusable (a missing library) is worth a warning
            level = logging.WARNING if PROVIDERS[name] in available_providers else logging.INFO
            _log.log(level, "auto: skipping %s: %s", name, exc)
    if not found:
        raise ProviderError(
            f"no provider can run artifact {manifest.directory}; available: {list(available_providers)}"
        )
    return found


def _plans_for(
    manifest: Manifest,
    provider: str,
    variant: str | None,
    available: Sequence[str],
    max_batch_size: int,
    cache_dir: str | os.PathLike[str] | None,
    embeddings: bool,
) -> list[SessionPlan]:
    """The plans for one provider; ProviderError says why it cannot run here."""
    ort_name = PROVIDERS[provider]
    if ort_name not in available:
        raise ProviderError(
            f"provider {provider!r} ({ort_name}) is not in this onnxruntime build; "
            f"available: {list(available)}"
        )
    name = variant or NATURAL_VARIANTS[provider]
    if variant is None and provider == "cpu" and not _usable(manifest.variants.get(name), embeddings):
        name = "fp32"  # export omits int8 when its scores miss their tolerance; its embeddings may too
    if name not in manifest.variants:
        raise ProviderError(
            f"artifact {manifest.directory} has no variant {name!r} for {provider}; "
            f"it has {sorted(manifest.variants)}"
        )
    reason = _incompatibility(provider, manifest.variants[name])
    if reason:
        raise ProviderError(f"provider {provider!r} cannot run variant {name!r}: {reason}")
    sizes = buckets(max_batch_size)
    if provider in ("cuda", "tensorrt"):
        trt_version = require_gpu_libraries(provider)
    if provider == "tensorrt":
        key = engine_cache_key(manifest.variants[name], max_batch_size, manifest.sequence_length, trt_version)
        cache = _trt_cache_base(manifest, cache_dir) / key
        options = tensorrt_options(cache, max_batch_size, manifest.sequence_length)
        gpu = (("TensorrtExecutionProvider", options), ("CUDAExecutionProvider", {"device_id": "0"}))
        return [SessionPlan(ort_name, name, gpu, sizes, GPU_DEVICE, cache_dir=cache)]
    if provider == "cuda":
        graphs = (("CUDAExecutionProvider", cuda_options(cuda_graphs=True)),)
        plain = (("CUDAExecutionProvider", cuda_options(cuda_graphs=False)),)
        return [
            SessionPlan(ort_name, name, graphs, sizes, GPU_DEVICE, cuda_graphs=True),
            SessionPlan(ort_name, name, plain, sizes, GPU_DEVICE),
        ]
    return [SessionPlan(ort_name, name, (("CPUExecutionProvider", {}),))]


def _usable(variant: Variant | None, embeddings: bool) -> bool:
    """Whether VARIANT exists and, for a caller that will EMBED, its embeddings passed export's check."""
    return variant is not None and (not embeddings or variant.embeddings_validated)


def _incompatibility(provider: str, variant: Variant) -> str | None:
    """Why PROVIDER cannot usefully run VARIANT, or None. The CPU runs every variant."""
    if provider == "tensorrt" and variant.form != "standard":
        return "TensorRT cannot parse the ONNX Runtime contrib operators of a fused graph; use 'fp16'"
    if provider in ("cuda", "tensorrt") and variant.precision == "int8":
        return "int8 is calibrated and quantized for CPUs; a GPU runs fp16"
    return None


def buckets(max_batch_size: int) -> tuple[int, ...]:
    """Batch sizes a GPU model is bound for: powers of two below MAX_BATCH_SIZE, then it."""
    sizes = [1 << i for i in range(max_batch_size.bit_length()) if 1 << i < max_batch_size]
    return (*sizes, max_batch_size)


def tensorrt_options(cache_dir: Path, max_batch_size: int, sequence_length: int) -> dict[str, str]:
    """TensorRT provider options; booleans are the strings "True"/"False" its parser wants.

    The profile covers every batch from 1 to MAX_BATCH_SIZE at the static sequence length,
    so one engine serves every bucket; it must be passed identically each time or the
    cached engine is rebuilt.
    """
    return {
        "device_id": "0",
        "trt_fp16_enable": "True",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache_dir),
        "trt_profile_min_shapes": profile_shapes(1, sequence_length),
        "trt_profile_opt_shapes": profile_shapes(max_batch_size, sequence_length),
        "trt_profile_max_shapes": profile_shapes(max_batch_size, sequence_length),
        "trt_max_workspace_size": str(TRT_WORKSPACE_BYTES),
    }


def profile_shapes(batch: int, sequence_length: int) -> str:
    """Both inputs at BATCH x SEQUENCE_LENGTH, as TensorRT's `trt_profile_*_shapes` want them."""
    return ",".join(f"{name}:{batch}x{sequence_length}" for name in INPUT_NAMES)


def cuda_options(*, cuda_graphs: bool) -> dict[str, str]:
    """CUDA provider options."""
    return {"device_id": "0", "enable_cuda_graph": "1" if cuda_graphs else "0"}


def engine_cache_key(variant: Variant, max_batch_size: int, sequence_length: int, trt_version: str) -> str:
    """The folder name of one TensorRT engine cache: what makes its engine valid.

    - The model file's sha256: TensorRT's own cache key ignores the weights, so a
      re-exported artifact must never find the old engine.
    - The profile (max_batch_size x sequence_length): ORT rebuilds, for minutes, whenever
      the saved profile differs, so `vigil serve` (64) and classify (256) keep one each
      instead of thrashing a shared one.
    - TensorRT's and ONNX Runtime's versions: an engine from another TensorRT fails to
      deserialize, and must be rebuilt, never be a reason to change provider.
    """
    profile = f"b{max_batch_size}x{sequence_length}"
    return f"{variant.sha256[:16]}-{profile}-trt{trt_version}-ort{onnxruntime_version()}"


def _trt_cache_base(manifest: Manifest, cache_dir: str | os.PathLike[str] | None) -> Path:
    """CACHE_DIR, else inside the artifact when writable, else the user's cache."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.access(manifest.directory, os.W_OK):
        return manifest.directory / ".trt-cache"
    return Path.home() / ".cache" / "vigil" / "trt"
