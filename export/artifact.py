"""`vigil export`: checkpoint in, validated artifact directory out, or nothing at all.

The artifact is built in a hidden temporary directory beside OUT and renamed into place
only once every variant has passed validation, so a failed or interrupted export never
leaves a half-written artifact (and `--force` never destroys a good one before the new one
is complete).
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import multiprocessing
import platform
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer
from vigil.files.atomic import renamed_on_success, write_json_atomic
from vigil.runtime.gpu_libraries import onnxruntime_version
from vigil.runtime.manifest import (
    INPUT_NAMES,
    MANIFEST_FILE,
    SCHEMA_VERSION,
    sha256_file,
)
from vigil.runtime.tokenizer import encode, load_tokenizer
from vigil.runtime.versions import installed_versions

from . import graphs, int8, validate
from .buckets import sequence_buckets
from .checkpoint import DEFAULT_SOURCE, Checkpoint, load_checkpoint
from .errors import ExportError, ValidationError, refuse_existing
from .first_token import first_token_last_layer
from .table import light_table, put_back, table_name

__all__ = ["VARIANTS", "VariantSpec", "export_artifact", "parse_variants"]

log = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"
MIN_ONNXRUNTIME = (1, 31)


@dataclass(frozen=True)
class VariantSpec:
    """How one variant is made and where it is meant to run."""

    name: str
    file: str
    precision: str
    form: str
    providers: tuple[str, ...]
    # Symbolic sequence axis, run at the manifest's sequence buckets by the runtime; the
    # standard fp16 graph, for TensorRT and Triton, stays fixed at sequence_length.
    bucketed: bool = False


VARIANTS = {
    spec.name: spec
    for spec in (
        VariantSpec("fp16", "model-fp16.onnx", "fp16", "standard", ("TensorrtExecutionProvider",)),
        VariantSpec("fp16-fused", "model-fp16-fused.onnx", "fp16", "fused", ("CUDAExecutionProvider",), True),
        VariantSpec("fp32", "model-fp32.onnx", "fp32", "fused", ("CPUExecutionProvider", "CUDAExecutionProvider"), True),
        VariantSpec("int8", "model-int8.onnx", "int8", "standard", ("CPUExecutionProvider",), True),
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
    variants: tuple[str, ...] = tuple(VARIANTS),
    calibration_file: str | Path | None = None,
) -> dict[str, Any]:
    """Export SOURCE to the artifact directory OUT and return its manifest."""
    out = Path(out)
    refuse_existing(out, force)
    _require_onnxruntime()
    texts = validate.load_sample(sample_file)
    calibration = validate.load_calibration(calibration_file, texts) if "int8" in variants else []
    started = time.perf_counter()
    with _child() as pytorch:
        pytorch.submit(_import_pytorch)  # while this process reads the config and tokenizer
        checkpoint = load_checkpoint(source, revision, weights=False)
        with renamed_on_success(out, directory=True) as work:
            manifest = _build(pytorch, checkpoint, work, sequence_length, sample_file, texts, calibration, variants)
            manifest["export_seconds"] = round(time.perf_counter() - started, 1)
            write_json_atomic(work / MANIFEST_FILE, manifest)
    return manifest


def parse_variants(text: str) -> tuple[str, ...]:
    """The comma-separated variant names of `--variants`; fp16 (the GPU default) is required."""
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        raise ExportError(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
    if "fp16" not in names:
        raise ExportError("--variants must include fp16 (the variant every GPU runs by default)")
    return names


def _require_onnxruntime() -> None:
    """Fusions and static quantization are promised only from onnxruntime 1.31 on.

    The version is the imported module's: onnxruntime-gpu installs under another
    distribution name, and a stale `onnxruntime` distribution may sit beside it.
    """
    version = onnxruntime_version()
    if tuple(int(part) for part in version.split(".")[:2] if part.isdigit()) < MIN_ONNXRUNTIME:
        raise ExportError(f"vigil export needs onnxruntime >= {'.'.join(map(str, MIN_ONNXRUNTIME))}, found {version}")


def _build(
    pytorch: concurrent.futures.Executor,
    checkpoint: Checkpoint,
    work: Path,
    sequence_length: int,
    sample_file,
    texts,
    calibration,
    wanted,
) -> dict[str, Any]:
    """Write tokenizer and variants into WORK, validate them, return the manifest. PYTORCH is
    the child process (`_child`) the PyTorch step runs in; it ends after that step."""
    config = checkpoint.config
    pad_id = int(config.pad_token_id or 0)
    tokenizer_path = work / TOKENIZER_FILE
    _save_tokenizer(checkpoint, tokenizer_path, sequence_length, pad_id)
    tokenizer = load_tokenizer(tokenizer_path, sequence_length, pad_id)
    ids, mask = encode(tokenizer, texts)
    _check_tokenizer_parity(checkpoint, texts, ids, sequence_length)
    buckets = sequence_buckets(sequence_length)

    light, table_file = work / "_light-fp32.onnx", work / "_word-embeddings.npy"
    with _step(f"PyTorch reference on {len(texts)} tweets, TorchScript export (opset {graphs.OPSET})"):
        found = (checkpoint.source, checkpoint.revision, checkpoint.cached_only)
        traced = pytorch.submit(_trace, *found, ids, mask, light, table_file, sequence_length)
        reference, table = traced.result()
        pytorch.shutdown()  # its memory is gone before the passes below start
    quantize = None
    if "int8" in wanted:
        int8_file, calibrated = work / VARIANTS["int8"].file, encode(tokenizer, calibration)
        quantize = functools.partial(
            _in_child, int8.quantize_accurately, light, table, int8_file, calibrated, reference, ids, mask
        )
    also = f" and int8 static quantization calibrated on {len(calibration)} tweets" if quantize else ""
    with _step(f"BERT fusions, fp16 conversions{also}, each variant given the full word-embedding table"):
        fusions, quantized = _made_from_light(light, work, table, sequence_length, config, quantize)
    int8_report, int8_outputs = quantized or (None, None)
    for scratch in (light, graphs.weights_file(light), table_file):
        scratch.unlink()
    for name in set(VARIANTS) - set(wanted) - {"fp16-fused"}:
        (work / VARIANTS[name].file).unlink(missing_ok=True)
    kept = [spec for spec in VARIANTS.values() if (work / spec.file).exists()]

    with _step(f"validation of every variant on ONNX Runtime (CPU), buckets {list(buckets)}"):
        scored = {"int8": int8_outputs} if int8_outputs is not None else {}
        variants = {
            spec.name: _variant_entry(spec, work, reference, ids, mask, fusions, buckets, scored.get(spec.name))
            for spec in kept
        }
    if int8_report is not None and "int8" in variants:
        variants["int8"]["quantization"] = int8_report
    failures = [_describe_failure(name, v) for name, v in variants.items()]
    if any(failures):
        raise ValidationError("export refused: " + "; ".join(filter(None, failures)))

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
        "sequence_buckets": list(buckets),
        "pad_id": pad_id,
        "inputs": list(INPUT_NAMES),
        "output": graphs.OUTPUT_NAME,
        # The sentence embedding: BERT's pooler output, before L2 normalisation.
        "pooled": {"name": graphs.POOLED_NAME, "width": int(reference.pooled.shape[1])},
        "preprocessing": "model card clean_tweet",
        "tokenizer": {"file": TOKENIZER_FILE, "sha256": sha256_file(tokenizer_path)},
        "opset": graphs.OPSET,
        "variants": variants,
        **({"int8_omitted": int8_report} if int8_report is not None and "int8" not in variants else {}),
        "validation": {
            "reference": "PyTorch fp32, transformers eager attention, CPU",
            "sample": str(sample_file) if sample_file else "vigil.export/data/validation-tweets.txt",
            "samples": len(texts),
            "threshold": validate.THRESHOLD,
        },
        "versions": _versions(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _trace(
    source: str,
    revision: str | None,
    cached_only: bool,
    ids,
    mask,
    light: Path,
    table_file: Path,
    sequence_length: int,
) -> tuple[validate.Outputs, tuple[str, Path]]:
    """The PyTorch step: reference outputs on IDS/MASK, and the light graph (its word-embedding
    table cut, the full table saved to TABLE_FILE: see `vigil.export.table`; its last layer
    computed at the first position only: see `vigil.export.first_token`; its weights in
    LIGHT.data beside it, for `graphs.fuse`) with the name and file of its table. The
    checkpoint is loaded as the export's own process found it (CACHED_ONLY: see
    `load_checkpoint`), without asking the Hub again.

    Run in a child like the ONNX passes, so that the model and torch's allocations are gone
    before they start: the export's parent only keeps the tokenizer and a few arrays.
    """
    model = load_checkpoint(source, revision, cached_only=cached_only).model
    reference = validate.reference_outputs(model, ids, mask)
    with light_table(model) as full_table, first_token_last_layer(model):
        graphs.export_fp32(model, light, sequence_length)
        np.save(table_file, full_table)
    graphs.set_weights_apart(light)
    return reference, (table_name(light), table_file)


def _import_pytorch() -> None:
    """The PyTorch child's imports (about 4 s), run before its step is submitted, while the
    export's own process reads the checkpoint's config and tokenizer. Nothing here reads the
    checkpoint, so a bad one is still reported by that process, first and alone."""
    import onnx  # noqa: F401
    import torch.onnx  # noqa: F401
    from transformers import BertForSequenceClassification  # noqa: F401


def _in_child(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one memory-heavy ONNX pass in a fresh process, so its peak memory ends with it.

    The fusion, conversion and quantization passes each hold several copies of the graph;
    run in one process their peaks pile up (11.6 GB for the full-size model, before the
    word-embedding table was set aside as well).
    """
    with _child() as pool:
        return pool.submit(function, *args, **kwargs).result()


def _child() -> concurrent.futures.ProcessPoolExecutor:
    """A pool of one fresh process (spawned: nothing of this process's memory is copied)."""
    return concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))


def _made_from_light(
    light: Path, work: Path, table: tuple[str, Path], sequence_length: int, config, quantize: Callable[[], Any] | None
) -> tuple[dict[str, int], Any]:
    """The fp32, fused fp16 and standard fp16 variants made from LIGHT (each pass in a child of
    its own, `_in_child`), with the fusion counts, and what QUANTIZE (the int8 pass, when
    asked for) returns.

    Every pass runs on one core, so that two run side by side on a small machine without
    fighting over it (ONNX Runtime's threads beside a busy core made the pair slower than
    one after the other): int8 (its calibration on one thread, see `graphs.calibrate`) on
    one core, and on the other the standard fp16 conversion, the fp32 put-back and the
    fused fp16 conversion in turn. The fusions (2.5 s), which the last two wait for, run
    from the start beside both. int8 scores its trials on both cores, by when the
    conversions are done. On the full-size model the fusions take 0.5 GiB (see
    `graphs.fuse`), the conversions and put-backs 1.5 to 1.8 GiB each, int8 1.9 GiB.
    """
    fused = work / "_fused-fp32.onnx"
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pair:
        quantized = pair.submit(quantize) if quantize else None
        standard = pair.submit(
            _in_child, _converted_and_filled, graphs.to_fp16_standard, light, work / VARIANTS["fp16"].file, table, sequence_length
        )
        fusions = _in_child(graphs.fuse, light, fused, num_heads=config.num_attention_heads, hidden_size=config.hidden_size)
        _require_fusions(fusions)
        from_fused = [
            pair.submit(_in_child, put_back, fused, work / VARIANTS["fp32"].file, *table),
            pair.submit(_in_child, _converted_and_filled, graphs.fused_to_fp16, fused, work / VARIANTS["fp16-fused"].file, table),
        ]
        for future in (standard, *from_fused):
            future.result()
    for scratch in (fused, graphs.weights_file(fused)):
        scratch.unlink()
    return fusions, quantized.result() if quantized else None


def _converted_and_filled(convert: Callable[..., None], src: Path, dst: Path, table: tuple[str, Path], *args: Any) -> None:
    """One child's work: CONVERT SRC into DST (with ARGS), then put the full TABLE into DST."""
    convert(src, dst, *args)
    put_back(dst, dst, *table)


def _require_fusions(fusions: dict[str, int]) -> None:
    """The fused variants are only worth shipping with the attention and embedding fusions."""
    missing = [op for op in ("Attention", "EmbedLayerNormalization") if not fusions.get(op)]
    if missing:
        raise ExportError(f"ONNX Runtime did not fuse {' and '.join(missing)} in the fused variants; refusing the export")


@contextmanager
def _step(what: str) -> Iterator[None]:
    """Log a step and how long it took: the full-size export runs for a minute or two."""
    log.info("%s ...", what)
    started = time.perf_counter()
    yield
    log.info("%s: done in %.1f s (%s)", what, time.perf_counter() - started, _peak_memory())


def _peak_memory() -> str:
    """Peak resident memory so far of this process and of the largest child pass (Linux: KiB)."""
    gib = [resource.getrusage(who).ru_maxrss / 2**20 for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return f"peak RSS {gib[0]:.1f} GiB here, {gib[1]:.1f} GiB in a child pass"


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


def _variant_entry(spec: VariantSpec, work: Path, reference, ids, mask, fusions, buckets, outputs=None) -> dict[str, Any]:
    """The manifest entry of one variant, with its validation; OUTPUTS are its outputs on IDS
    and MASK when a step before has scored it (int8's search for a passing int8 does)."""
    path = work / spec.file
    session = validate.cpu_session(path)
    if outputs is None:
        outputs = validate.onnx_outputs(session, ids, mask)
    figures = validate.check(reference, outputs, spec.precision)
    result, pooled = figures["validation"], figures["pooled_validation"]
    log.info(
        "%-10s max |dp| %.2e, label agreement %.4f, pooled max 1-cosine %.1e: %s",
        spec.name,
        result["max_abs_prob_diff"],
        result["label_agreement"],
        1 - pooled["min_cosine"],
        "ok" if validate.passed(figures, spec.precision) else "REFUSED",
    )
    entry: dict[str, Any] = {
        "file": spec.file,
        "precision": spec.precision,
        "form": spec.form,
        "providers": list(spec.providers),
        "size_bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        **figures,
    }
    if spec.form == "fused":
        entry["fusions"] = fusions
    if spec.bucketed:
        entry["sequence_buckets"] = validate.bucket_agreement(session, ids, mask, buckets, spec.precision, outputs.logits)
        log.info("%-10s at each sequence bucket: %s", spec.name, entry["sequence_buckets"]["buckets"])
    return entry


def _describe_failure(name: str, entry: dict[str, Any]) -> str:
    """Why the variant NAME is refused, or "" when it passed."""
    reasons = []
    if not entry["validation"]["passed"]:
        reasons.append(_describe_reference_failure(name, entry["validation"]))
    pooled = entry["pooled_validation"]
    if not pooled["passed"] and entry["precision"] in validate.POOLED_REFUSES:
        reasons.append(
            f"{name}'s pooled output has min cosine {pooled['min_cosine']:.7f} with PyTorch's pooler_output "
            f"(at least {pooled['tolerance']['min_cosine']:g} required)"
        )
    agreement = entry.get("sequence_buckets", {"passed": True})
    if not agreement["passed"]:
        reasons.append(
            f"{name} changes scores with the sequence bucket: {agreement['buckets']} "
            f"(max |prob diff| allowed {agreement['tolerance']:g})"
        )
    return "; ".join(reasons)


def _describe_reference_failure(name: str, result: dict[str, Any]) -> str:
    tol = result["tolerance"]
    return (
        f"{name} has max |prob diff| {result['max_abs_prob_diff']:.3g} (tolerance {tol['max_prob_diff']:g}) "
        f"and {result['label_flips']} label flips of {result['decisions']} "
        f"({result['borderline_flips']} borderline)"
    )


def _versions() -> dict[str, str]:
    names = ("vigil", "torch", "transformers", "onnx", "onnxruntime", "onnxruntime-gpu", "tokenizers")
    return {"python": platform.python_version(), **installed_versions(names)}
