"""vigil.runtime.gpu_libraries: what is loaded before a GPU session, from where, and how often.

There is no GPU here: onnxruntime's `preload_dlls` and ctypes' `CDLL` are replaced by fakes
that record their calls, and the `tensorrt_libs` package by a folder of empty files.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from vigil.runtime import gpu_libraries
from vigil.runtime.errors import ProviderError


class FakeLibrary:
    def __init__(self, path: str) -> None:
        self.path = path

    def getInferLibVersion(self) -> int:  # TensorRT's C function name
        return 101302


class FakeLoader:
    """ctypes.CDLL stand-in: records each (path, mode); names in MISSING fail as dlopen does."""

    def __init__(self, missing: frozenset[str] = frozenset()) -> None:
        self.missing = missing
        self.calls: list[tuple[str, int]] = []

    def __call__(self, path: str, mode: int = 0) -> FakeLibrary:
        self.calls.append((path, mode))
        if Path(path).name in self.missing:
            raise OSError(f"{Path(path).name}: cannot open shared object file: No such file or directory")
        return FakeLibrary(path)


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A process that has loaded nothing yet, with a recording preload_dlls that prints as ORT's does."""
    preloads: list[str] = []

    def preload_dlls() -> None:
        preloads.append("called")
        print("Failed to load libcufft.so.12")

    monkeypatch.setattr(gpu_libraries.ort, "preload_dlls", preload_dlls, raising=False)
    monkeypatch.setattr(gpu_libraries.importlib.util, "find_spec", lambda name: None)
    gpu_libraries._load.cache_clear()
    yield preloads
    gpu_libraries._load.cache_clear()


def use(monkeypatch: pytest.MonkeyPatch, loader: FakeLoader) -> FakeLoader:
    monkeypatch.setattr(gpu_libraries.ctypes, "CDLL", loader)
    return loader


def test_cuda_preloads_then_loads_each_linked_library_globally(monkeypatch, fresh, capsys) -> None:
    loader = use(monkeypatch, FakeLoader())
    assert gpu_libraries.require_gpu_libraries("cuda") is None
    assert fresh == ["called"]
    assert [path for path, _ in loader.calls] == list(gpu_libraries.cuda_libraries())
    assert {mode for _, mode in loader.calls} == {gpu_libraries.ctypes.RTLD_GLOBAL}
    assert capsys.readouterr().out == ""  # preload_dlls' prints never reach a command's stdout


def test_tensorrt_loads_cuda_then_tensorrt_and_reports_its_version(monkeypatch) -> None:
    loader = use(monkeypatch, FakeLoader())
    assert gpu_libraries.require_gpu_libraries("tensorrt") == "101302"
    names = [path for path, _ in loader.calls]
    assert names == [*gpu_libraries.cuda_libraries(), "libnvinfer.so.10", "libnvonnxparser.so.10", "libcudnn.so.9"]


def test_tensorrt_comes_from_the_tensorrt_libs_package_when_installed(monkeypatch, tmp_path: Path) -> None:
    package = tmp_path / "tensorrt_libs"
    package.mkdir()
    (package / "libnvinfer.so.10").touch()
    (package / "libnvonnxparser.so.10").touch()
    spec = importlib.machinery.ModuleSpec("tensorrt_libs", None, is_package=True)
    spec.submodule_search_locations = [str(package)]
    monkeypatch.setattr(gpu_libraries.importlib.util, "find_spec", lambda name: spec if name == "tensorrt_libs" else None)
    loader = use(monkeypatch, FakeLoader())
    gpu_libraries.require_gpu_libraries("tensorrt")
    paths = {Path(p).name: p for p, _ in loader.calls}
    assert paths["libnvinfer.so.10"] == str(package / "libnvinfer.so.10")
    assert paths["libnvonnxparser.so.10"] == str(package / "libnvonnxparser.so.10")
    assert paths["libcudnn.so.9"] == "libcudnn.so.9"  # not in the package: dlopen searches


@pytest.mark.parametrize(
    ("provider", "missing", "extra"),
    [("cuda", "libcublasLt.so.13", "gpu"), ("tensorrt", "libnvinfer.so.10", "tensorrt"), ("tensorrt", "libcudnn.so.9", "tensorrt")],
)
def test_a_missing_library_is_named_with_its_extra(monkeypatch, provider: str, missing: str, extra: str) -> None:
    use(monkeypatch, FakeLoader(frozenset({missing})))
    with pytest.raises(ProviderError) as info:
        gpu_libraries.require_gpu_libraries(provider)
    message = str(info.value)
    assert f"provider {provider!r} needs {missing}" in message
    assert f"pip install 'vigil[{extra}]'" in message and "No such file" in message


def test_loading_runs_once_per_process_and_a_failure_repeats_itself(monkeypatch, fresh) -> None:
    loader = use(monkeypatch, FakeLoader(frozenset({"libnvinfer.so.10"})))
    for _ in range(3):
        with pytest.raises(ProviderError, match="libnvinfer.so.10"):
            gpu_libraries.require_gpu_libraries("tensorrt")
    gpu_libraries.require_gpu_libraries("cuda")
    gpu_libraries.require_gpu_libraries("cuda")
    tried = [Path(p).name for p, _ in loader.calls]
    assert tried.count("libnvinfer.so.10") == 1 and tried.count("libcudart.so.13") == 2  # once per provider
    assert fresh == ["called", "called"]


def test_an_onnxruntime_without_preload_dlls_still_checks_the_libraries(monkeypatch, caplog) -> None:
    monkeypatch.delattr(gpu_libraries.ort, "preload_dlls")
    loader = use(monkeypatch, FakeLoader())
    with caplog.at_level(logging.INFO, logger=gpu_libraries.__name__):
        gpu_libraries.require_gpu_libraries("cuda")
    assert "no preload_dlls" in caplog.text and len(loader.calls) == 4


@pytest.mark.parametrize(("built", "major"), [("12.8", "12"), ("13.0", "13"), (None, "13")])
def test_cuda_sonames_follow_the_cuda_major_onnxruntime_was_built_with(monkeypatch, built, major) -> None:
    info = gpu_libraries.build_and_package_info
    if built is None:
        monkeypatch.delattr(info, "cuda_version", raising=False)
    else:
        monkeypatch.setattr(info, "cuda_version", built, raising=False)
    assert gpu_libraries.cuda_libraries() == (
        f"libcudart.so.{major}", f"libcublasLt.so.{major}", f"libcublas.so.{major}", "libcurand.so.10",
    )
