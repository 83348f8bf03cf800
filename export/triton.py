"""`vigil export-triton`: an artifact in, a model repository for Triton's ONNX Runtime backend out.

Triton serves the artifact's "fp16" variant (plain ONNX operators, fp32 inputs and outputs)
with its ONNX Runtime backend, which hands the graph to TensorRT in FP16. That variant and
not a fused one, because TensorRT cannot parse ONNX Runtime's contrib ops (notes/GPU.md §4).
Triton sees token ids, not text: clients tokenize, with the files written beside the model.

    REPO/NAME/
        config.pbtxt     built with Triton's own protobuf schema, so it always parses
        labels.txt       one label per line, in manifest order (the output's label_filename)
        tokenizer.json   for clients: text -> input_ids, attention_mask [batch, seq_len]
        manifest.json    for clients: labels, thresholds, sequence length, provenance
        1/model.onnx     the fp16 variant, its sha256 checked against the manifest

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
from vigil.runtime.providers import TRT_WORKSPACE_BYTES

from .errors import refuse_existing

__all__ = ["TritonRepoConfig", "build_model_config", "export_triton_repository"]

VARIANT = "fp16"
OUTPUT = "logits"
LABELS_FILE = "labels.txt"
CONFIG_FILE = "config.pbtxt"
MODEL_VERSION = "1"
MODEL_FILE = "model.onnx"

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
    """

    name: str = "vigil"
    max_batch_size: int = 256
    max_queue_delay_us: int = 2000
    preferred_batch_sizes: tuple[int, ...] = ()
    instances: int = 1
    tensorrt: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {self.name!r}")
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"name must be letters, digits, '.', '_' or '-', not starting with a symbol; got {self.name!r}")
        require_int("max_batch_size", self.max_batch_size, 1)
        require_int("max_queue_delay_us", self.max_queue_delay_us, 0)
        require_int("instances", self.instances, 1)
        for size in self.preferred_batch_sizes:
            require_int("each preferred batch size", size, 1)
            if size > self.max_batch_size:
                raise ValueError(
                    f"preferred batch sizes must be <= max_batch_size {self.max_batch_size}, got {size}"
                )


def build_model_config(manifest: Manifest, config: TritonRepoConfig) -> mc.ModelConfig:
    """Triton's model configuration for the artifact's fp16 variant."""
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
    if config.tensorrt:
        model.optimization.execution_accelerators.gpu_execution_accelerator.add(
            name="tensorrt",
            parameters={"precision_mode": "FP16", "max_workspace_size_bytes": str(TRT_WORKSPACE_BYTES)},
        )
    return model


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
    with renamed_on_success(target, directory=True) as work:
        _write_model_dir(work, manifest, model_file, build_model_config(manifest, config))
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
