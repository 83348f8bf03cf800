"""Tests for vigil.runtime.providers and vigil.runtime.model: provider plans, session creation and the bound model.

There is no GPU here. Plans are pure, so every GPU plan is checked by faking the list of
available providers; the bucketed IO-binding model runs on CPU buffers, where ONNX Runtime
accepts and ignores the `gpu_graph_id` run option.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from helpers import wait_for

from vigil.runtime import model as model_module
from vigil.runtime import providers as providers_module
from vigil.runtime.errors import ArtifactError, ProviderError
from vigil.runtime.manifest import Manifest
from vigil.runtime.model import BoundModel, Model, Replicas, create_session, open_model
from vigil.runtime.providers import SessionPlan, buckets, plan_sessions
from vigil.runtime.tokenizer import SharedTokenizer

TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
ALL = [TRT, CUDA, CPU]

# Every option name the providers accept, copied from microsoft/onnxruntime
# onnxruntime/core/providers/tensorrt/tensorrt_execution_provider_info.cc and
# onnxruntime/core/providers/cuda/cuda_execution_provider_info.cc (provider_option_names);
# an option ONNX Runtime does not know fails session creation ("Invalid TensorRT EP option").
TRT_OPTION_NAMES = {
    "device_id", "trt_max_partition_iterations", "trt_min_subgraph_size", "trt_max_workspace_size",
    "trt_fp16_enable", "trt_int8_enable", "trt_int8_calibration_table_name",
    "trt_int8_use_native_calibration_table", "trt_dla_enable", "trt_dla_core", "trt_dump_subgraphs",
    "trt_engine_cache_enable", "trt_engine_cache_path", "trt_weight_stripped_engine_enable",
    "trt_onnx_model_folder_path", "trt_engine_cache_prefix", "trt_engine_decryption_enable",
    "trt_engine_decryption_lib_path", "trt_force_sequential_engine_build",
    "trt_context_memory_sharing_enable", "trt_layer_norm_fp32_fallback", "trt_timing_cache_enable",
    "trt_timing_cache_path", "trt_force_timing_cache", "trt_detailed_build_log",
    "trt_build_heuristics_enable", "trt_sparsity_enable", "trt_builder_optimization_level",
    "trt_auxiliary_streams", "trt_tactic_sources", "trt_extra_plugin_lib_paths",
    "trt_profile_min_shapes", "trt_profile_max_shapes", "trt_profile_opt_shapes",
    "trt_cuda_graph_enable", "trt_ep_context_embed_mode", "trt_ep_context_file_path",
    "trt_dump_ep_context_model",
}  # fmt: skip
CUDA_OPTION_NAMES = {
    "device_id", "has_user_compute_stream", "user_compute_stream", "gpu_mem_limit",
    "arena_extend_strategy", "cudnn_conv_algo_search", "do_copy_in_default_stream",
    "gpu_external_alloc", "gpu_external_free", "gpu_external_empty_cache",
    "cudnn_conv_use_max_workspace", "enable_cuda_graph", "cudnn_conv1d_pad_to_nc1d",
    "tunable_op_enable", "tunable_op_tuning_enable", "tunable_op_max_tuning_duration_ms",
    "enable_skip_layer_norm_strict_mode", "prefer_nhwc", "use_ep_level_unified_stream", "use_tf32",
}  # fmt: skip
# The TensorRT provider's Python binding parses booleans itself and takes only these.
TRT_BOOLEANS = {"True", "False", "true", "false"}


@pytest.fixture(autouse=True)
def gpu_libraries_load(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """There are no GPU libraries here: planning a GPU session records the provider instead,
    and TensorRT reports version 10.13.2 (`getInferLibVersion`'s 101302)."""
    loaded: list[str] = []

    def fake(provider: str) -> str | None:
        loaded.append(provider)
        return "101302" if provider == "tensorrt" else None

    monkeypatch.setattr(providers_module, "require_gpu_libraries", fake)
    return loaded


@pytest.fixture(scope="module")
def manifest(int8_artifact: Path) -> Manifest:
    """An artifact with every variant (the tiny stand-in has no int8)."""
    return Manifest.load(int8_artifact)


@pytest.fixture(scope="module")
def filler(manifest: Manifest) -> tuple[np.ndarray, np.ndarray]:
    tokenizer = SharedTokenizer(manifest.directory / manifest.tokenizer_file, 32, manifest.pad_id)
    return tokenizer.encode([""])


@pytest.fixture(scope="module")
def encoded(manifest: Manifest) -> tuple[np.ndarray, np.ndarray]:
    tokenizer = SharedTokenizer(manifest.directory / manifest.tokenizer_file, 32, manifest.pad_id)
    return tokenizer.encode([f"tweet number {i} about the weather" for i in range(11)])


def without_variant(manifest: Manifest, name: str) -> Manifest:
    variants = {k: v for k, v in manifest.variants.items() if k != name}
    return dataclasses.replace(manifest, variants=variants)


def cpu_plan(variant: str = "fp32", **changes: object) -> SessionPlan:
    return dataclasses.replace(SessionPlan(CPU, variant, ((CPU, {}),)), **changes)


# --- plan_sessions -------------------------------------------------------------------


def test_auto_prefers_tensorrt_then_cuda_graphs_then_cuda_then_cpu(manifest: Manifest, tmp_path: Path) -> None:
    plans = plan_sessions(manifest, "auto", None, ALL, cache_dir=tmp_path)
    assert [(p.provider, p.variant, p.cuda_graphs) for p in plans] == [
        (TRT, "fp16", False),
        (CUDA, "fp16-fused", True),
        (CUDA, "fp16-fused", False),
        (CPU, "int8", False),
    ]
    assert [p.providers[0][0] for p in plans] == [TRT, CUDA, CUDA, CPU]
    assert plans[0].providers[1][0] == CUDA  # TensorRT hands what it cannot run to CUDA
    assert all(p.buckets == buckets(256) and p.device == "cuda" for p in plans[:3])
    assert plans[3].buckets == ()


def test_auto_on_a_cpu_build_logs_why_it_skipped_the_gpus(manifest: Manifest, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=providers_module.__name__):
        plans = plan_sessions(manifest, "auto", None, ["AzureExecutionProvider", CPU])
    assert [(p.provider, p.variant) for p in plans] == [(CPU, "int8")]
    assert "tensorrt" in caplog.text and "cuda" in caplog.text and "not in this onnxruntime build" in caplog.text


def test_auto_with_a_variant_keeps_only_providers_that_can_run_it(manifest: Manifest) -> None:
    fp32 = plan_sessions(manifest, "auto", "fp32", ALL)
    assert [(p.provider, p.variant) for p in fp32] == [(CUDA, "fp32"), (CUDA, "fp32"), (CPU, "fp32")]
    int8 = plan_sessions(manifest, "auto", "int8", ALL)
    assert [(p.provider, p.variant) for p in int8] == [(CPU, "int8")]


def test_auto_skips_a_provider_whose_variant_the_artifact_lacks(manifest: Manifest) -> None:
    plans = plan_sessions(without_variant(manifest, "fp16"), "auto", None, ALL)
    assert [p.provider for p in plans] == [CUDA, CUDA, CPU]


@pytest.mark.parametrize("provider", ["tensorrt", "cuda"])
def test_explicit_provider_not_in_the_build_lists_what_is(manifest: Manifest, provider: str) -> None:
    with pytest.raises(ProviderError, match="not in this onnxruntime build") as info:
        plan_sessions(manifest, provider, None, ["AzureExecutionProvider", CPU])
    assert CPU in str(info.value) and "AzureExecutionProvider" in str(info.value)


@pytest.mark.parametrize(
    ("provider", "variant"),
    [("tensorrt", "int8"), ("tensorrt", "fp32"), ("tensorrt", "fp16-fused"), ("cuda", "int8")],
)
def test_explicit_provider_variant_mismatch_is_refused(manifest: Manifest, provider: str, variant: str) -> None:
    with pytest.raises(ProviderError, match=f"cannot run variant '{variant}'"):
        plan_sessions(manifest, provider, variant, ALL)


def test_explicit_provider_whose_natural_variant_is_missing_lists_the_variants(manifest: Manifest) -> None:
    with pytest.raises(ProviderError, match="has no variant 'fp16'") as info:
        plan_sessions(without_variant(manifest, "fp16"), "tensorrt", None, ALL)
    assert "fp16-fused" in str(info.value)


def test_the_cpu_runs_every_variant(manifest: Manifest) -> None:
    for name in manifest.variants:
        assert [(p.provider, p.variant) for p in plan_sessions(manifest, "cpu", name, [CPU])] == [(CPU, name)]


def test_unknown_variant_and_unknown_provider_are_refused(manifest: Manifest) -> None:
    with pytest.raises(ProviderError, match="no variant 'fp8'.*'fp16'"):
        plan_sessions(manifest, "auto", "fp8", ALL)
    with pytest.raises(ProviderError, match="unknown provider 'gpu'"):
        plan_sessions(manifest, "gpu", None, ALL)


def test_tensorrt_options_are_real_option_names_with_the_documented_values(manifest: Manifest, tmp_path: Path) -> None:
    plan = plan_sessions(manifest, "tensorrt", None, ALL, max_batch_size=128, cache_dir=tmp_path)[0]
    (name, options), (fallback, fallback_options) = plan.providers
    assert (name, fallback) == (TRT, CUDA)
    assert set(options) <= TRT_OPTION_NAMES and set(fallback_options) <= CUDA_OPTION_NAMES
    assert all(isinstance(v, str) for v in options.values())
    cache = tmp_path / f"{manifest.variants['fp16'].sha256[:16]}-b128x32-trt101302-ort{onnxruntime.__version__}"
    assert plan.cache_dir == cache
    assert options == {
        "device_id": "0",
        "trt_fp16_enable": "True",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache),
        "trt_profile_min_shapes": "input_ids:1x32,attention_mask:1x32",
        "trt_profile_opt_shapes": "input_ids:128x32,attention_mask:128x32",
        "trt_profile_max_shapes": "input_ids:128x32,attention_mask:128x32",
        "trt_max_workspace_size": str(4 << 30),
    }
    assert {options[k] for k in options if k.endswith("_enable")} <= TRT_BOOLEANS


def test_cuda_options_are_real_option_names(manifest: Manifest) -> None:
    graphs, plain = plan_sessions(manifest, "cuda", None, ALL)
    for plan, flag in ((graphs, "1"), (plain, "0")):
        ((name, options),) = plan.providers
        assert name == CUDA and set(options) <= CUDA_OPTION_NAMES
        assert options == {"device_id": "0", "enable_cuda_graph": flag}
    assert graphs.cuda_graphs and not plain.cuda_graphs


def test_tensorrt_cache_defaults_inside_the_artifact_else_the_user_cache(
    manifest: Manifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = f"{manifest.variants['fp16'].sha256[:16]}-b256x32-trt101302-ort{onnxruntime.__version__}"
    plan = plan_sessions(manifest, "tensorrt", None, ALL)[0]
    assert plan.cache_dir == manifest.directory / ".trt-cache" / key
    monkeypatch.setattr(providers_module.os, "access", lambda path, mode: False)
    plan = plan_sessions(manifest, "tensorrt", None, ALL)[0]
    assert plan.cache_dir == Path.home() / ".cache" / "vigil" / "trt" / key


def test_tensorrt_engine_cache_is_one_folder_per_profile_and_version(
    manifest: Manifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cache(max_batch_size: int = 256) -> Path:
        (plan,) = plan_sessions(manifest, "tensorrt", None, ALL, max_batch_size=max_batch_size, cache_dir=tmp_path)
        options = plan.providers[0][1]
        assert options["trt_engine_cache_path"] == options["trt_timing_cache_path"] == str(plan.cache_dir)
        return plan.cache_dir

    serve, classify = cache(64), cache(256)
    assert serve != classify and "-b64x32-" in serve.name and "-b256x32-" in classify.name
    assert cache(64) == serve  # the same request finds the same engine
    monkeypatch.setattr(providers_module, "require_gpu_libraries", lambda provider: "101601")
    assert cache() != classify and "-trt101601-" in cache().name  # a TensorRT upgrade
    monkeypatch.setattr(providers_module, "onnxruntime_version", lambda: "1.99.0")
    assert cache().name.endswith("-trt101601-ort1.99.0")  # an onnxruntime upgrade
    other = dataclasses.replace(manifest.variants["fp16"], sha256="f" * 64)
    assert providers_module.engine_cache_key(other, 256, 32, "101601").startswith("f" * 16 + "-")


def test_gpu_plans_load_their_libraries_first(manifest: Manifest, gpu_libraries_load: list[str]) -> None:
    plan_sessions(manifest, "auto", None, ALL)
    assert gpu_libraries_load == ["tensorrt", "cuda"]
    gpu_libraries_load.clear()
    plan_sessions(manifest, "cpu", None, ALL)
    assert gpu_libraries_load == []


def missing_library(provider: str) -> str | None:
    raise ProviderError(f"provider {provider!r} needs libnvinfer.so.10, which cannot be loaded: pip install 'vigil[tensorrt]'")


def test_a_missing_gpu_library_is_an_error_when_the_provider_is_named(manifest: Manifest, monkeypatch) -> None:
    monkeypatch.setattr(providers_module, "require_gpu_libraries", missing_library)
    with pytest.raises(ProviderError, match=r"libnvinfer\.so\.10.*vigil\[tensorrt\]"):
        plan_sessions(manifest, "tensorrt", None, ALL)


def test_auto_warns_of_a_missing_gpu_library_and_moves_on(
    manifest: Manifest, monkeypatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(providers_module, "require_gpu_libraries", missing_library)
    with caplog.at_level(logging.INFO, logger=providers_module.__name__):
        plans = plan_sessions(manifest, "auto", None, ALL)
    assert [p.provider for p in plans] == [CPU]
    skipped = [r for r in caplog.records if "libnvinfer.so.10" in r.getMessage()]
    assert [r.levelno for r in skipped] == [logging.WARNING, logging.WARNING]  # tensorrt, cuda


def test_buckets_are_powers_of_two_up_to_the_maximum() -> None:
    assert buckets(1) == (1,)
    assert buckets(256) == (1, 2, 4, 8, 16, 32, 64, 128, 256)
    assert buckets(100) == (1, 2, 4, 8, 16, 32, 64, 100)


# --- create_session and open_model ----------------------------------------------------


def test_cpu_session_attaches_the_cpu_with_the_requested_threads(manifest: Manifest) -> None:
    path = manifest.verified_path(manifest.variants["int8"])
    session = create_session(path, cpu_plan("int8"), threads=1)
    assert session.get_providers() == [CPU]
    assert session.get_session_options().intra_op_num_threads == 1


def _config(options: onnxruntime.SessionOptions, key: str) -> str | None:
    try:
        return options.get_session_config_entry(key)
    except RuntimeError:  # "does not have configuration with key"
        return None


@pytest.mark.parametrize("spin, stop", [(True, None), (False, "1")])
def test_a_server_session_stops_spinning_when_a_run_returns(manifest: Manifest, spin: bool, stop: str | None) -> None:
    """spin=False keeps spinning within a run (fast operator hand-offs) and stops it after."""
    session = create_session(manifest.verified_path(manifest.variants["fp32"]), cpu_plan(), spin=spin)
    options = session.get_session_options()
    assert _config(options, "session.force_spinning_stop") == stop
    assert _config(options, "session.intra_op.allow_spinning") is None  # never turned off altogether


def test_a_provider_that_does_not_attach_is_an_error_not_a_silent_cpu_run(manifest: Manifest) -> None:
    # This build has no CUDA: ONNX Runtime warns and runs on the CPU; we must refuse.
    plan = SessionPlan(CUDA, "fp32", ((CUDA, {"device_id": "0"}),))
    with warnings.catch_warnings(), pytest.raises(ProviderError, match="attached"):
        warnings.simplefilter("ignore")
        create_session(manifest.verified_path(manifest.variants["fp32"]), plan)


def test_open_model_falls_through_to_the_next_plan(manifest: Manifest, filler, caplog: pytest.LogCaptureFixture) -> None:
    broken = SessionPlan(CUDA, "fp16-fused", ((CUDA, {"device_id": "0"}),))
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING, logger=model_module.__name__):
        warnings.simplefilter("ignore")
        model = open_model(manifest, [broken, cpu_plan("int8")], filler=filler)
    assert model.plan.provider == CPU and model.plan.variant == "int8"
    assert "trying the next plan" in caplog.text
    with warnings.catch_warnings(), pytest.raises(ProviderError):
        warnings.simplefilter("ignore")
        open_model(manifest, [broken, broken], filler=filler)  # the last failure is raised


def test_open_model_checks_the_sha256_of_the_model_file(int8_artifact: Path, tmp_path: Path, filler) -> None:
    copy = tmp_path / "artifact"
    shutil.copytree(int8_artifact, copy)
    manifest = Manifest.load(copy)
    path = copy / manifest.variants["int8"].file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        open_model(manifest, [cpu_plan("int8")], filler=filler)


# --- BoundModel: the GPU code path, on CPU buffers -------------------------------------


@pytest.fixture(scope="module")
def reference(manifest: Manifest, filler) -> Model:
    return open_model(manifest, [cpu_plan()], filler=filler)


@pytest.fixture
def bound(manifest: Manifest, filler) -> Iterator[BoundModel]:
    model = open_model(manifest, [cpu_plan(buckets=(1, 2, 4), cuda_graphs=True)], filler=filler)
    assert isinstance(model, BoundModel)
    yield model
    model.close()


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 11])
def test_bound_model_pads_to_its_bucket_and_slices(bound: BoundModel, reference: Model, encoded, n: int) -> None:
    ids, mask = encoded[0][:n], encoded[1][:n]
    logits = bound.run(ids, mask)
    assert logits.shape == (n, 6) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, reference.run(ids, mask), rtol=0, atol=1e-5)


def test_bound_model_results_do_not_alias_its_buffers(bound: BoundModel, encoded) -> None:
    first = bound.run(encoded[0][:2], encoded[1][:2])
    kept = first.copy()
    bound.run(encoded[0][2:4], encoded[1][2:4])
    np.testing.assert_array_equal(first, kept)


def test_bound_model_never_captures_again_and_runs_every_caller_on_its_graph_thread(
    bound: BoundModel, reference: Model, encoded, monkeypatch
) -> None:
    # Graphs are per thread and never released: capturing per caller would leak a set per
    # thread (and a reused thread id would replay another thread's graphs).
    warmed_on: list[str] = []
    ran_on: list[threading.Thread] = []
    original_warm_up, original_run = BoundModel._warm_up, BoundModel._run_bucket

    def recording_warm_up(self: BoundModel) -> None:
        warmed_on.append(threading.current_thread().name)
        original_warm_up(self)

    def recording_run(self: BoundModel, *args: object) -> tuple[np.ndarray, ...]:
        ran_on.append(threading.current_thread())
        return original_run(self, *args)

    monkeypatch.setattr(BoundModel, "_warm_up", recording_warm_up)
    monkeypatch.setattr(BoundModel, "_run_bucket", recording_run)
    bound.run(encoded[0][:1], encoded[1][:1])
    ids, mask = encoded[0][:3], encoded[1][:3]
    with ThreadPoolExecutor(1, thread_name_prefix="other") as other:
        worker = other.submit(threading.current_thread).result()
        logits = other.submit(bound.run, ids, mask).result()  # re-raises what failed in the worker
    np.testing.assert_allclose(logits, reference.run(ids, mask), rtol=0, atol=1e-5)
    assert warmed_on == []
    assert ran_on == [bound.graph_thread, bound.graph_thread]
    assert bound.graph_thread is not threading.current_thread() and bound.graph_thread is not worker


def test_bound_model_without_graphs_warms_up_once(manifest: Manifest, reference: Model, filler, encoded, monkeypatch) -> None:
    model = open_model(manifest, [cpu_plan(buckets=(1, 2))], filler=filler)
    warmed_on: list[str] = []
    monkeypatch.setattr(BoundModel, "_warm_up", lambda self: warmed_on.append(threading.current_thread().name))
    ids, mask = encoded[0][:2], encoded[1][:2]
    with ThreadPoolExecutor(1, thread_name_prefix="other") as other:
        logits = other.submit(model.run, ids, mask).result()  # re-raises what failed in the worker
    assert warmed_on == []  # checked here, in the test's thread: no graphs, nothing to capture
    np.testing.assert_allclose(logits, reference.run(ids, mask), rtol=0, atol=1e-5)


# --- BoundModel at sequence buckets: one slot (and CUDA graph) per batch x sequence bucket ---


def test_bound_model_binds_a_slot_per_batch_and_sequence_bucket(bound: BoundModel, manifest: Manifest) -> None:
    assert manifest.sequence_buckets == (16, 24, 32)  # fp32's axis is symbolic
    assert bound.sequence_buckets == manifest.sequence_buckets
    assert [(slot.size, slot.width) for slot in bound._slots] == [
        (size, width) for width in (16, 24, 32) for size in (1, 2, 4)
    ]


def test_a_bound_model_on_a_fixed_axis_binds_the_full_length_only(manifest: Manifest, filler) -> None:
    model = open_model(manifest, [cpu_plan("fp16", buckets=(1, 2))], filler=filler)
    assert model.sequence_buckets == ()
    assert [(slot.size, slot.width) for slot in model._slots] == [(1, 32), (2, 32)]


@pytest.mark.parametrize("rows, width, slot", [(1, 16, (1, 16)), (3, 16, (4, 16)), (3, 20, (4, 24)), (2, 32, (2, 32)), (4, 17, (4, 24))])
def test_bound_model_runs_the_smallest_slot_and_matches_the_full_length(
    bound: BoundModel, reference: Model, manifest: Manifest, rows: int, width: int, slot: tuple[int, int], monkeypatch
) -> None:
    tokenizer = SharedTokenizer(manifest.directory / manifest.tokenizer_file, 32, manifest.pad_id)
    ids, mask = tokenizer.encode(["a short tweet", "rain", "the weather today is fine", "ok"][:rows])
    assert mask[:, width:].sum() == 0  # only right padding is cut
    used: list[tuple[int, int]] = []
    original = model_module._Slot.run

    def recording(self, session, ids, mask):
        used.append((self.size, self.width))
        assert ids.shape == mask.shape == (self.size, self.width)
        return original(self, session, ids, mask)

    monkeypatch.setattr(model_module._Slot, "run", recording)
    logits = bound.run(ids[:, :width].copy(), mask[:, :width].copy())
    assert used == [slot]
    np.testing.assert_allclose(logits, reference.run(ids, mask), rtol=0, atol=1e-5)


def test_bound_model_refuses_a_batch_longer_than_its_longest_bucket(bound: BoundModel, encoded) -> None:
    ids, mask = (np.concatenate([part[:1], part[:1, :8]], axis=1) for part in encoded)
    with pytest.raises(ValueError, match="sequence length 40 is longer than the model's 32"):
        bound.run(ids, mask)



# --- Replicas: several batches in flight ------------------------------------------------


def test_open_model_with_replicas_opens_a_session_and_graph_thread_each(
    manifest: Manifest, reference: Model, filler, encoded
) -> None:
    model = open_model(manifest, [cpu_plan(buckets=(1, 2, 4), cuda_graphs=True)], filler=filler, replicas=2)
    try:
        assert isinstance(model, Replicas) and model.concurrency == 2
        first, second = model.replicas
        assert isinstance(first, BoundModel) and isinstance(second, BoundModel)
        assert first.session is not second.session
        assert first.graph_thread is not second.graph_thread  # each captured its own graphs
        assert model.sequence_buckets == first.sequence_buckets and model.plan == first.plan
        ids, mask = encoded
        np.testing.assert_allclose(model.run(ids, mask), reference.run(ids, mask), rtol=0, atol=1e-5)
    finally:
        model.close()
    assert not first.graph_thread.is_alive() and not second.graph_thread.is_alive()


def test_one_replica_is_the_model_itself(manifest: Manifest, filler) -> None:
    model = open_model(manifest, [cpu_plan("int8")], filler=filler, replicas=1)
    assert not isinstance(model, Replicas) and model.concurrency == 1


def test_a_replica_that_fails_to_open_closes_those_opened(manifest: Manifest, filler, monkeypatch) -> None:
    opened: list[Model] = []
    real_open = model_module._open

    def second_fails(*args: object, **kwargs: object) -> Model:
        if opened:
            raise ProviderError("out of GPU memory (injected)")
        opened.append(real_open(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(model_module, "_open", second_fails)
    with pytest.raises(ProviderError, match="injected"):
        open_model(manifest, [cpu_plan(buckets=(1, 2), cuda_graphs=True)], filler=filler, replicas=2)
    assert isinstance(opened[0], BoundModel) and not opened[0].graph_thread.is_alive()


class HeldModel(Model):
    """A stand-in replica whose runs block until released, recording who ran."""

    def __init__(self, session: onnxruntime.InferenceSession, name: str, log: list[str], release: threading.Event) -> None:
        super().__init__(session, cpu_plan())
        self.name, self.log, self.release = name, log, release

    def run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self.log.append(self.name)
        assert self.release.wait(10), "never released"
        return ids


def test_replicas_run_one_batch_each_at_once_and_further_runs_wait(reference: Model, encoded) -> None:
    log: list[str] = []
    release = threading.Event()
    model = Replicas([HeldModel(reference.session, name, log, release) for name in "ab"])
    ids, mask = encoded
    with ThreadPoolExecutor(3) as callers:
        runs = [callers.submit(model.run, ids[i : i + 1], mask[i : i + 1]) for i in range(2)]
        wait_for(lambda: sorted(log) == ["a", "b"], "both replicas to run a batch")
        third = callers.submit(model.run, ids[2:3], mask[2:3])
        with pytest.raises(TimeoutError):
            third.result(timeout=0.2)  # both replicas are busy: it waits its turn
        release.set()
        results = [f.result(10) for f in (*runs, third)]
    assert len(log) == 3
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result, ids[i : i + 1])  # each caller got its own batch back


@pytest.mark.parametrize("threads, expected", [(None, 1), (2, 2)])
def test_several_replicas_get_one_thread_each_unless_told(manifest: Manifest, filler, threads, expected) -> None:
    # N sessions of a thread per core each would fight over the cores.
    model = open_model(manifest, [cpu_plan("int8")], filler=filler, replicas=2, threads=threads)
    assert isinstance(model, Replicas)
    assert [r.session.get_session_options().intra_op_num_threads for r in model.replicas] == [expected] * 2


def test_every_replica_has_run_once_when_it_opens(manifest: Manifest, filler, monkeypatch) -> None:
    # A server warms up with one text, which reaches one replica; none may meet its first
    # request cold.
    ran: list[onnxruntime.InferenceSession] = []
    run = Model.run
    monkeypatch.setattr(Model, "run", lambda self, ids, mask: ran.append(self.session) or run(self, ids, mask))
    model = open_model(manifest, [cpu_plan("int8")], filler=filler, replicas=2)
    assert isinstance(model, Replicas)
    assert ran == [replica.session for replica in model.replicas]
