"""Load the CUDA and TensorRT libraries ONNX Runtime's GPU providers link, before a GPU session.

onnxruntime-gpu's providers set no library search path, and its `__init__` preloads nothing:
a provider whose libraries are missing is only logged, then left out of the session. So a
pip-only install would quietly run on the CPU (notes/GPU.md, "Libraries"). Before planning
a GPU session vigil loads them itself, once per process:

- CUDA: `onnxruntime.preload_dlls()` (onnxruntime-gpu >= 1.21) finds the nvidia-* pip
  packages (cuBLAS, cudart, cuRAND, cuDNN); then each library the CUDA provider links must
  be loadable.
- TensorRT: also libnvinfer and libnvonnxparser, from the `tensorrt_libs` pip package
  where installed, else the system's search path, loaded globally so that the provider's
  own dlopen finds them.

A missing library is a ProviderError naming the library and the extra that brings it.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.util
import io
import logging
from pathlib import Path

import onnxruntime as ort
from onnxruntime.capi import build_and_package_info

from .errors import ProviderError

__all__ = [
    "EXTRAS",
    "TENSORRT_MAJOR",
    "cuda_libraries",
    "onnxruntime_version",
    "require_gpu_libraries",
    "tensorrt_libraries",
]

_log = logging.getLogger(__name__)

# The TensorRT major the onnxruntime-gpu wheel's TensorRT provider links: `readelf -d
# onnxruntime/capi/libonnxruntime_providers_tensorrt.so` of onnxruntime-gpu 1.31.1 (what
# `pip download --no-deps onnxruntime-gpu` resolves to) lists NEEDED libnvinfer.so.10 and
# libnvonnxparser.so.10. The `tensorrt` extra's pin must stay on this major (a test checks).
TENSORRT_MAJOR = 10
# The extra that brings each provider's libraries, for the error's install hint.
EXTRAS = {"cuda": "gpu", "tensorrt": "tensorrt"}
_DEFAULT_CUDA_MAJOR = "13"  # onnxruntime-gpu 1.31's build; older wheels record their own


def cuda_libraries() -> tuple[str, ...]:
    """The libraries the CUDA provider links, for the CUDA major this onnxruntime was built with."""
    built = getattr(build_and_package_info, "cuda_version", None)  # absent from CPU builds
    major = str(built).split(".")[0] if built else _DEFAULT_CUDA_MAJOR
    return (f"libcudart.so.{major}", f"libcublasLt.so.{major}", f"libcublas.so.{major}", "libcurand.so.10")


def tensorrt_libraries() -> tuple[str, ...]:
    """The libraries the TensorRT provider links besides CUDA's; libnvinfer first."""
    return (f"libnvinfer.so.{TENSORRT_MAJOR}", f"libnvonnxparser.so.{TENSORRT_MAJOR}", "libcudnn.so.9")


def onnxruntime_version() -> str:
    """The running onnxruntime's version (its distribution may be onnxruntime or onnxruntime-gpu)."""
    return ort.__version__


def require_gpu_libraries(provider: str) -> str | None:
    """Load PROVIDER's ("cuda" or "tensorrt") libraries, once per process.

    Returns:
        For "tensorrt", the loaded TensorRT's version (`getInferLibVersion`, e.g. "101302"),
        which keys its engine cache; None for "cuda".

    Raises:
        ProviderError: A library cannot be loaded; the same message on every later call.
    """
    outcome = _load(provider)
    if isinstance(outcome, ProviderError):
        raise ProviderError(str(outcome))
    return outcome


@functools.cache
def _load(provider: str) -> str | ProviderError | None:
    """The outcome of loading PROVIDER's libraries, kept so that the loading runs once."""
    _preload()
    wanted = cuda_libraries() + (tensorrt_libraries() if provider == "tensorrt" else ())
    loaded = {}
    for name in wanted:
        try:
            loaded[name] = ctypes.CDLL(_tensorrt_path(name), mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            return ProviderError(
                f"provider {provider!r} needs {name}, which cannot be loaded ({exc}): "
                f"pip install 'vigil[{EXTRAS[provider]}]'"
            )
    _log.info("%s: loaded %s", provider, ", ".join(wanted))
    if provider != "tensorrt":
        return None
    return str(loaded[tensorrt_libraries()[0]].getInferLibVersion())


def _preload() -> None:
    """`onnxruntime.preload_dlls()` where it exists; it prints what it cannot load, so its
    output goes to the log instead of stdout (which may carry a command's results)."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        _log.info("onnxruntime %s has no preload_dlls (added in 1.21)", ort.__version__)
        return
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        preload()
    if printed.getvalue().strip():
        _log.debug("onnxruntime.preload_dlls: %s", printed.getvalue().strip())


def _tensorrt_path(name: str) -> str:
    """NAME inside the `tensorrt_libs` pip package when it is there, else NAME for dlopen to search."""
    spec = importlib.util.find_spec("tensorrt_libs")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / name).exists():
            return str(Path(folder) / name)
    return name
