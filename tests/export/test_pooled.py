"""The pooled output (the sentence embedding) of every exported variant: declared in the
manifest, validated against PyTorch's `pooler_output` with figures an independent
computation reproduces, and a variant outside its bound refused (int8's recorded)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

artifact = pytest.importorskip("vigil.export.artifact")
validate = pytest.importorskip("vigil.export.validate")

from vigil.export.errors import ValidationError


@pytest.mark.parametrize(("exported", "width"), [("tiny_artifact", 32), ("int8_artifact", 384)], ids=["tiny", "minilm"])
def test_the_manifest_names_the_pooled_output_and_its_width(request: pytest.FixtureRequest, exported: str, width: int) -> None:
    manifest = json.loads((request.getfixturevalue(exported) / "manifest.json").read_text())
    assert manifest["output"] == "logits"
    assert manifest["pooled"] == {"name": "pooled", "width": width}  # the checkpoint's hidden size


@pytest.mark.parametrize(
    ("checkpoint", "exported"), [("tiny_checkpoint", "tiny_artifact"), ("minilm_checkpoint", "int8_artifact")],
    ids=["tiny", "minilm"],
)
def test_pooled_figures_match_an_independent_comparison(
    request: pytest.FixtureRequest, checkpoint: str, exported: str
) -> None:
    """Each variant's recorded cosines, recomputed with transformers' model and tokenizer,
    `model.bert(...).pooler_output` and a plain ONNX Runtime session."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    ort = pytest.importorskip("onnxruntime")
    source, out = request.getfixturevalue(checkpoint), request.getfixturevalue(exported)
    manifest = json.loads((out / "manifest.json").read_text())
    sample = validate.load_sample()
    batch = transformers.AutoTokenizer.from_pretrained(source)(
        sample, truncation=True, max_length=32, padding="max_length", return_tensors="np"
    )
    model = transformers.BertForSequenceClassification.from_pretrained(source).eval()
    with torch.no_grad():
        reference = model.bert(**{k: torch.from_numpy(v) for k, v in batch.items()}).pooler_output.double().numpy()
    feeds = {"input_ids": batch["input_ids"].astype(np.int64), "attention_mask": batch["attention_mask"].astype(np.int64)}
    for name, entry in manifest["variants"].items():
        session = ort.InferenceSession(str(out / entry["file"]), providers=["CPUExecutionProvider"])
        pooled = session.run(["pooled"], feeds)[0].astype(np.float64)
        cosine = (reference * pooled).sum(axis=1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(pooled, axis=1)
        recorded = entry["pooled_validation"]
        assert recorded["samples"] == len(sample) and recorded["width"] == manifest["pooled"]["width"]
        assert recorded["min_cosine"] == pytest.approx(cosine.min(), abs=1e-6), name
        assert recorded["mean_cosine"] == pytest.approx(cosine.mean(), abs=1e-6), name
        bound = validate.POOLED_MIN_COSINE[entry["precision"]]
        assert recorded["tolerance"] == {"min_cosine": bound}
        assert recorded["passed"] == bool(cosine.min() >= bound), name
        if entry["precision"] != "int8":
            assert recorded["passed"], (name, recorded)  # fp32 within float reordering, fp16 its rounding


def test_int8_s_embedding_figures_are_recorded_and_its_scores_decide(int8_artifact: Path) -> None:
    """Real MiniLM weights: int8 scores within tolerance and is kept; its embeddings' verdict is
    recorded for the runtime, whatever it is, and every quantization step records both."""
    manifest = json.loads((int8_artifact / "manifest.json").read_text())
    entry = manifest["variants"]["int8"]
    assert entry["validation"]["passed"]
    assert 0.5 < entry["pooled_validation"]["min_cosine"] < 1.0
    assert all({"validation", "pooled_validation"} <= set(step) for step in entry["quantization"]["steps"])


def test_compare_pooled_refuses_swapped_constant_and_broken_rows() -> None:
    rng = np.random.default_rng(0)
    reference = np.tanh(rng.normal(size=(64, 32))).astype(np.float32)
    close = reference + rng.normal(scale=1e-4, size=reference.shape).astype(np.float32)
    assert validate.compare_pooled(reference, close, 0.9999)["passed"]
    swapped = close.copy()
    swapped[[3, 4]] = swapped[[4, 3]]  # tweet 3 embedded as tweet 4
    constant = np.repeat(reference[:1], len(reference), axis=0)
    broken = close.copy()
    broken[7] = np.nan
    for bad in (swapped, constant, broken, np.zeros_like(reference)):
        figures = validate.compare_pooled(reference, bad, 0.99)
        assert not figures["passed"] and figures["samples"] == 64 and figures["width"] == 32


def test_a_variant_whose_pooled_output_misses_is_refused(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(validate.POOLED_MIN_COSINE, "fp16", 1.0 + 1e-9)  # more than fp16 can
    out = tmp_path / "artifact"
    with pytest.raises(ValidationError, match=r"fp16's pooled output has min cosine 0\.99.* \(at least 1 required\)"):
        artifact.export_artifact(out, str(tiny_checkpoint), variants=("fp16", "fp32"))
    assert not out.exists()
