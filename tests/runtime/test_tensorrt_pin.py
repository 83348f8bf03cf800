"""The `tensorrt` extra installs the TensorRT major that onnxruntime-gpu's TensorRT provider links.

`TENSORRT_MAJOR` records what `readelf -d` of onnxruntime-gpu 1.31.1's
libonnxruntime_providers_tensorrt.so says it needs (libnvinfer.so.10); a pin on another
major installs a TensorRT the provider cannot load.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from vigil.runtime.gpu_libraries import TENSORRT_MAJOR

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11")
Requirement = pytest.importorskip("packaging.requirements", reason="needs packaging").Requirement

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def tensorrt_extra() -> dict:
    extras = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    return {(r := Requirement(line)).name: r for line in extras["tensorrt"]}


def test_the_tensorrt_pin_allows_only_the_linked_major() -> None:
    (name,) = [n for n in tensorrt_extra() if n.startswith("tensorrt")]
    pin = tensorrt_extra()[name].specifier
    assert pin.contains(f"{TENSORRT_MAJOR}.99.0")
    assert not pin.contains(f"{TENSORRT_MAJOR + 1}.0.0") and not pin.contains(f"{TENSORRT_MAJOR - 1}.99.0")


def test_onnxruntime_gpu_stays_below_the_releases_whose_linked_major_was_not_read() -> None:
    pin = tensorrt_extra()["onnxruntime-gpu"].specifier
    assert pin.contains("1.31.1") and not pin.contains("1.32.0")
