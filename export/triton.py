"""`vigil export-triton`: an artifact in, a model repository for Triton's ONNX Runtime backend out.

Triton serves the artifact's "fp16" variant (plain ONNX operators, fp32 inputs and outputs)
with its ONNX Runtime backend, which hands the graph to TensorRT in FP16. That variant and
not a fused one, because TensorRT cannot parse ONNX Runtime's contrib ops (notes/GPU.md §4).
Triton sees token ids, not text: clients tokenize, with the files written beside the model.

    REPO/NAME/
        config.pbtxt     built with Triton's own protobuf schema, so it always parses; outputs
                         `logits` and, for artifacts that have it, `pooled` (the sentence
                         embedding before L2 normalisation; clients normalise)
        labels.txt       one label per line, in manifest order (the output's label_filename)
        tokenizer.json   for clients: text -> input_ids, attention_mask [batch, seq_len]
        manifest.json    for clients: labels, thresholds, sequence length, provenance
        1/model.onnx     the fp16 variant, its sha256 checked against the manifest
        warmup/          one sample row (the empty text's ids and mask, raw int64) that
                         `model_warmup` runs at batch 1 and max_batch_size before serving

With TensorRT, the config also gives the engine and timing caches a directory (by default
REPO/NAME/trt-cache, as an absolute path: pass `trt_cache_dir` where the server sees the
repository elsewhere, as in a container), one explicit profile 1..max_batch_size, and a
warm-up that builds the engine at load, so neither a restart nor a batch larger than the
first one rebuilds it (notes/GPU.md). The cache folder is keyed by the model's sha256 and
the profile; empty it after upgrading the server's TensorRT.

REPO/NAME is assembled in a hidden directory inside REPO (the same filesystem, so the final
rename is atomic) and only then renamed into place: an interrupted export leaves no
half-written model for Triton to load, and `force` replaces an old model only once the new
one is complete. Triton does not skip hidden directories, though (tritonserver 2.51 tries
to load one and logs a failure), so export into a repository that no server is starting
on or polling at that moment.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc
from vigil.files.atomic import renamed_on_success
from vigil.runtime.checks import require_int
from vigil.runtime.errors import ArtifactError
from vigil.runtime.manifest import INPUT_NAMES, MANIFEST_FILE, STANDIN_WARNING, Manifest
from vigil.runtime.providers import TRT_WORKSPACE_BYTES, profile_shapes
from vigil.runtime.tokenizer import SharedTokenizer

from .errors import refuse_existing

__all__ = ["TritonRepoConfig", "build_model_config", "export_triton_repository"]

VARIANT = "fp16"
OUTPUT = "logits"
LABELS_FILE = "labels.txt"
CONFIG_FILE = "config.pbtxt"
MODEL_VERSION = "1"
MODEL_FILE = "model.onnx"
WARMUP_DIR = "warmup"  # Triton reads model_warmup's input_data_file from here
TRT_CACHE_DIR = "trt-cache"

# Triton and PyTriton accept these model names; they are also directory names.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class TritonRepoConfig:
    """How Triton should batch and place the model; checked when built.

    Attributes:
        name: Model name, and the directory under REPO.
        max_batch_size: Largest batch Triton's dynamic batcher forms.
        max_queue_delay_us: How long the dynamic batcher may hold a request to fill a batch.
        preferred_batch_sizes: Batch sizes the batcher aims for; empty lets it fill up to
            `max_batch_size`.
        instances: Model instances on each GPU.
        tensorrt: Hand the graph to TensorRT (FP16); False runs it on the CUDA provider.
        trt_cache_dir: Where the server keeps TensorRT engines and timing caches; None
            means REPO/NAME/trt-cache as an absolute path on this machine.
    """

    name: str = "vigil"
    max_batch_size: int = 256
    max_queue_delay_us: int = 2000
    preferred_batch_sizes: tuple[int, ...] = ()
    instances: int = 1
    tensorrt: bool = True
    trt_cache_dir: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {self.name!r}")
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"name must be letters, digits, '.', '_' or '-', not starting with a symbol; got {self.name!r}")
        if self.trt_cache_dir is not None and not Path(self.trt_cache_dir).is_absolute():
            raise ValueError(f"trt_cache_dir must be an absolute path (the server's cwd is unknown), got {self.trt_cache_dir!r}")
        require_int("max_batch_size", self.max_batch_size, 1)
        require_int("max_queue_delay_us", self.max_queue_delay_us, 0)
        require_int("instances", self.instances, 1)
        for size in self.preferred_batch_sizes:
            require_int("each preferred batch size", size, 1)
            if size > self.max_batch_size:
                raise ValueError(
                    f"preferred batch sizes must be <= max_batch_size {self.max_batch_size}, got {size}"
                )


def build_model_config(manifest: Manifest, config: TritonRepoConfig, cache_dir: str) -> mc.ModelConfig:
    """Triton's model configuration for the artifact's fp16 variant; TensorRT caches in CACHE_DIR."""
    model = mc.ModelConfig(
        name=config.name,
        platform="onnxruntime_onnx",
        backend="onnxruntime",
        max_batch_size=config.max_batch_size,
        dynamic_batching=mc.ModelDynamicBatching(
            preferred_batch_size=sorted(set(config.preferred_batch_sizes)),
            max_queue_delay_microseconds=config.max_queue_delay_us,
        ),
        instance_group=[mc.ModelInstanceGroup(kind=mc.ModelInstanceGroup.KIND_GPU, count=config.instances)],
    )
    for name in INPUT_NAMES:  # dims leave out the batch axis: Triton adds it for max_batch_size > 0
        model.input.add(name=name, data_type=mc.TYPE_INT64, dims=[manifest.sequence_length])
    model.output.add(name=OUTPUT, data_type=mc.TYPE_FP32, dims=[len(manifest.labels)], label_filename=LABELS_FILE)
    if manifest.pooled_output is not None:  # Triton computes it anyway; clients that want it fetch it
        model.output.add(name=manifest.pooled_output, data_type=mc.TYPE_FP32, dims=[manifest.pooled_width])
    if config.tensorrt:
        model.optimization.execution_accelerators.gpu_execution_accelerator.add(
            name="tensorrt", parameters=_tensorrt_parameters(manifest, config, cache_dir)
        )
    for batch in sorted({1, config.max_batch_size}):
        model.model_warmup.add(
            name=f"batch-{batch}",
            batch_size=batch,
            inputs={
                name: mc.ModelWarmup.Input(data_type=mc.TYPE_INT64, dims=[manifest.sequence_length], input_data_file=name)
                for name in INPUT_NAMES
            },
        )
    return model


def _tensorrt_parameters(manifest: Manifest, config: TritonRepoConfig, cache_dir: str) -> dict[str, str]:
    """The TensorRT accelerator's parameters: caches in a folder per model and profile, and
    the profile itself, the same for every load, so that a cached engine is reused."""
    sequence_length = manifest.sequence_length
    profile = f"{manifest.variant(VARIANT).sha256[:16]}-b{config.max_batch_size}x{sequence_length}"
    cache = str(Path(cache_dir) / profile)
    return {
        "precision_mode": "FP16",
        "max_workspace_size_bytes": str(TRT_WORKSPACE_BYTES),
        "trt_engine_cache_enable": "true",
        "trt_engine_cache_path": cache,
        "trt_timing_cache_enable": "true",
        "trt_timing_cache_path": cache,
        "trt_profile_min_shapes": profile_shapes(1, sequence_length),
        "trt_profile_opt_shapes": profile_shapes(config.max_batch_size, sequence_length),
        "trt_profile_max_shapes": profile_shapes(config.max_batch_size, sequence_length),
    }


def export_triton_repository(
    artifact: str | Path, repo: str | Path, config: TritonRepoConfig = TritonRepoConfig(), *, force: bool = False
) -> Path:
    """Write the model REPO/<config.name> for Triton from the artifact directory ARTIFACT.

    Returns:
        The model directory.

    Raises:
        ArtifactError: The artifact is unusable, lacks the fp16 standard-ops variant, or
            that file does not match its sha256.
        ExportError: The model directory exists and `force` is not set.
    """
    manifest = Manifest.load(artifact)
    model_file = _fp16_model(manifest)
    repo = Path(repo)
    target = repo / config.name
    refuse_existing(target, force)
    cache_dir = config.trt_cache_dir or str(target.resolve() / TRT_CACHE_DIR)
    with renamed_on_success(target, directory=True) as work:
        _write_model_dir(work, manifest, model_file, build_model_config(manifest, config, cache_dir))
    return target


def _fp16_model(manifest: Manifest) -> Path:
    """The verified fp16 file; a fused fp16 graph would leave TensorRT most of the model unparsed."""
    variant = manifest.variant(VARIANT)
    if variant.form != "standard":
        raise ArtifactError(
            f"variant {VARIANT!r} of {manifest.directory} must use standard ONNX operators for TensorRT, "
            f"got form {variant.form!r}"
        )
    return manifest.verified_path(variant)


def _write_model_dir(work: Path, manifest: Manifest, model_file: Path, model: mc.ModelConfig) -> None:
    version = work / MODEL_VERSION
    version.mkdir()
    shutil.copyfile(model_file, version / MODEL_FILE)
    (work / CONFIG_FILE).write_text(_config_header(manifest) + text_format.MessageToString(model), encoding="utf-8")
    (work / LABELS_FILE).write_text("".join(f"{label}\n" for label in manifest.labels), encoding="utf-8")
    shutil.copyfile(manifest.directory / manifest.tokenizer_file, work / manifest.tokenizer_file)
    shutil.copyfile(manifest.directory / MANIFEST_FILE, work / MANIFEST_FILE)
    _write_warmup_sample(work / WARMUP_DIR, manifest)


def _write_warmup_sample(folder: Path, manifest: Manifest) -> None:
    """One row per input, raw little-endian int64 as Triton reads it (it repeats the row up
    to each warm-up's batch size): the empty text, a real encoding, since a fully masked
    row can turn an fp16 attention into NaN."""
    folder.mkdir()
    tokenizer = SharedTokenizer(manifest.directory / manifest.tokenizer_file, manifest.sequence_length, manifest.pad_id)
    for name, row in zip(INPUT_NAMES, tokenizer.encode([""])):
        (folder / name).write_bytes(row[0].astype("<i8").tobytes())


def _config_header(manifest: Manifest) -> str:
    """Comment lines naming the source, so a config found on a server can be traced back."""
    variant = manifest.variant(VARIANT)
    lines = [
        "Written by `vigil export-triton`; edit the command's options rather than this file.",
        f"Source: {manifest.source.get('id', 'unknown')}; variant {VARIANT}, sha256 {variant.sha256}.",
    ]
    if manifest.random_weights:
        lines.append(f"{STANDIN_WARNING}.")
    return "".join(f"# {line}\n" for line in lines)
