"""`vigil export`: checkpoint in, validated artifact directory out, or nothing at all.

The artifact is built in a hidden temporary directory beside OUT and renamed into place
only once every variant has passed validation, so a failed or interrupted export never
leaves a half-written artifact (and `--force` never destroys a good one before the new one
is complete).
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from vigil.files.atomic import renamed_on_success, write_json_atomic
from vigil.runtime.manifest import INPUT_NAMES, MANIFEST_FILE, SCHEMA_VERSION, sha256_file
from vigil.runtime.tokenizer import encode, load_tokenizer

from . import graphs, validate
from .checkpoint import DEFAULT_SOURCE, Checkpoint, load_checkpoint
from .errors import ExportError, ValidationError, refuse_existing

__all__ = ["VARIANTS", "VariantSpec", "export_artifact"]

log = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True)
class VariantSpec:
    """How one variant is made and where it is meant to run."""

    name: str
    file: str
    precision: str
    form: str
    providers: tuple[str, ...]


VARIANTS = {
    spec.name: spec
    for spec in (
        VariantSpec("fp16", "model-fp16.onnx", "fp16", "standard", ("TensorrtExecutionProvider",)),
        VariantSpec("fp16-fused", "model-fp16-fused.onnx", "fp16", "fused", ("CUDAExecutionProvider",)),
        VariantSpec("fp32", "model-fp32.onnx", "fp32", "fused", ("CPUExecutionProvider", "CUDAExecutionProvider")),
        VariantSpec("int8", "model-int8.onnx", "int8", "fused", ("CPUExecutionProvider",)),
    )
}


def export_artifact(
    out: str | Path,
    source: str = DEFAULT_SOURCE,
    *,
    revision: str | None = None,
    force: bool = False,
    sequence_length: int = 32,
    sample_file: str | Path | None = None,
) -> dict[str, Any]:
    """Export SOURCE to the artifact directory OUT and return its manifest."""
    out = Path(out)
    refuse_existing(out, force)
    started = time.perf_counter()
    checkpoint = load_checkpoint(source, revision)
    with renamed_on_success(out, directory=True) as work:
        manifest = _build(checkpoint, work, sequence_length, sample_file)
        manifest["export_seconds"] = round(time.perf_counter() - started, 1)
        write_json_atomic(work / MANIFEST_FILE, manifest)
    return manifest


def _build(checkpoint: Checkpoint, work: Path, sequence_length: int, sample_file) -> dict[str, Any]:
    """Write tokenizer and variants into WORK, validate them, return the manifest."""
    config = checkpoint.model.config
    pad_id = int(config.pad_token_id or 0)
    tokenizer_path = work / TOKENIZER_FILE
    _save_tokenizer(checkpoint, tokenizer_path, sequence_length, pad_id)
    texts = validate.load_sample(sample_file)
    ids, mask = encode(load_tokenizer(tokenizer_path, sequence_length, pad_id), texts)
    _check_tokenizer_parity(checkpoint, texts, ids, sequence_length)

    raw = work / "_plain-fp32.onnx"
    with _step(f"PyTorch reference on {len(texts)} tweets, TorchScript export (opset {graphs.OPSET})"):
        reference = validate.reference_logits(checkpoint.model, ids, mask)
        graphs.export_fp32(checkpoint.model, raw, sequence_length)
    checkpoint.model = None  # frees ~1 GB (full size) before the memory-hungry ONNX passes
    with _step("BERT fusions, fp32 and fp16"):
        fusions = graphs.fuse(
            raw,
            work / VARIANTS["fp32"].file,
            work / VARIANTS["fp16-fused"].file,
            num_heads=config.num_attention_heads,
            hidden_size=config.hidden_size,
        )
    with _step("int8 dynamic quantization"):
        graphs.quantize_int8(work / VARIANTS["fp32"].file, work / VARIANTS["int8"].file)
    with _step("fp16 with standard operators"):
        graphs.to_fp16_standard(raw, work / VARIANTS["fp16"].file)
    raw.unlink()

    with _step("validation of every variant on ONNX Runtime (CPU)"):
        variants = {spec.name: _variant_entry(spec, work, reference, ids, mask, fusions) for spec in VARIANTS.values()}
    failed = {name: v["validation"] for name, v in variants.items() if not v["validation"]["passed"]}
    if failed:
        raise ValidationError("export refused: " + "; ".join(_describe_failure(n, r) for n, r in failed.items()))

    return {
        "schema_version": SCHEMA_VERSION,
        "source": {
            "id": checkpoint.source,
            "revision": checkpoint.revision,
            "architecture": "BertForSequenceClassification",
            "random_weights": checkpoint.random_weights is not None,
            **({"random_seed": checkpoint.random_weights.get("seed")} if checkpoint.random_weights else {}),
        },
        "labels": list(checkpoint.labels),
        "problem_type": "multi_label_classification",
        "sequence_length": sequence_length,
        "pad_id": pad_id,
        "inputs": list(INPUT_NAMES),
        "output": graphs.OUTPUT_NAME,
        "preprocessing": "model card clean_tweet",
        "tokenizer": {"file": TOKENIZER_FILE, "sha256": sha256_file(tokenizer_path)},
        "opset": graphs.OPSET,
        "variants": variants,
        "validation": {
            "reference": "PyTorch fp32, transformers eager attention, CPU",
            "sample": str(sample_file) if sample_file else "vigil.export/data/validation-tweets.txt",
            "samples": len(texts),
            "threshold": validate.THRESHOLD,
        },
        "versions": _versions(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


@contextmanager
def _step(what: str) -> Iterator[None]:
    """Log a step and how long it took: the full-size export runs for a minute or two."""
    log.info("%s ...", what)
    started = time.perf_counter()
    yield
    log.info("%s: done in %.1f s", what, time.perf_counter() - started)


def _save_tokenizer(checkpoint: Checkpoint, path: Path, sequence_length: int, pad_id: int) -> None:
    """Save the fast tokenizer as tokenizer.json, already set to truncate and pad to the graph."""
    tokenizer = Tokenizer.from_str(checkpoint.tokenizer.backend_tokenizer.to_str())
    tokenizer.enable_truncation(max_length=sequence_length)
    tokenizer.enable_padding(length=sequence_length, pad_id=pad_id, pad_token=tokenizer.id_to_token(pad_id))
    tokenizer.save(str(path))


def _check_tokenizer_parity(checkpoint: Checkpoint, texts: list[str], ids, sequence_length: int) -> None:
    """The saved tokenizer.json must give exactly the ids the transformers tokenizer gives."""
    expected = checkpoint.tokenizer(
        texts, truncation=True, max_length=sequence_length, padding="max_length", return_tensors="np"
    )["input_ids"]
    if expected.shape != ids.shape or (expected != ids).any():
        raise ExportError("the saved tokenizer.json does not reproduce the checkpoint tokenizer's ids")


def _variant_entry(spec: VariantSpec, work: Path, reference, ids, mask, fusions) -> dict[str, Any]:
    path = work / spec.file
    result = validate.compare(reference, validate.onnx_logits(path, ids, mask), validate.TOLERANCES[spec.precision])
    log.info(
        "%-10s max |dp| %.2e, label agreement %.4f: %s",
        spec.name,
        result["max_abs_prob_diff"],
        result["label_agreement"],
        "ok" if result["passed"] else "REFUSED",
    )
    entry: dict[str, Any] = {
        "file": spec.file,
        "precision": spec.precision,
        "form": spec.form,
        "providers": list(spec.providers),
        "size_bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "validation": result,
    }
    if spec.form == "fused":
        entry["fusions"] = fusions
    return entry


def _describe_failure(name: str, result: dict[str, Any]) -> str:
    tol = result["tolerance"]
    return (
        f"{name} has max |prob diff| {result['max_abs_prob_diff']:.3g} (tolerance {tol['max_prob_diff']:g}) "
        f"and {result['label_flips']} label flips of {result['decisions']} "
        f"({result['borderline_flips']} borderline)"
    )


def _versions() -> dict[str, str]:
    names = ("vigil", "torch", "transformers", "onnx", "onnxruntime", "onnxruntime-gpu", "tokenizers")
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found
