"""`vigil export` end to end on the tiny stand-in: graphs, manifest and validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
artifact = pytest.importorskip("vigil.export.artifact")
validate = pytest.importorskip("vigil.export.validate")

from vigil.runtime.manifest import Manifest, sha256_file  # noqa: E402
from vigil.runtime.tokenizer import encode, load_tokenizer  # noqa: E402

FUSED_OPS = {"EmbedLayerNormalization", "Attention", "SkipLayerNormalization", "BiasGelu"}


@pytest.fixture(scope="module")
def manifest(tiny_artifact: Path) -> dict:
    return json.loads((tiny_artifact / "manifest.json").read_text())


def _io(model: "onnx.ModelProto") -> dict[str, tuple[int, list]]:
    """Element type and shape (dim_param or dim_value per axis) of each graph input/output."""
    def shape(value) -> list:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    return {v.name: (v.type.tensor_type.elem_type, shape(v)) for v in (*model.graph.input, *model.graph.output)}


def test_manifest_describes_the_artifact(tiny_artifact: Path, manifest: dict) -> None:
    loaded = Manifest.load(tiny_artifact)
    assert loaded.labels == ("post7geo10", "post7geo30", "post7geo50", "pre7geo10", "pre7geo30", "pre7geo50")
    assert loaded.sequence_length == 32 and loaded.pad_id == 0
    assert loaded.random_weights
    assert manifest["schema_version"] == 1
    assert manifest["opset"] == 17
    assert manifest["source"]["revision"] is None
    assert {"torch", "transformers", "onnx", "onnxruntime"} <= set(manifest["versions"])
    assert manifest["tokenizer"]["sha256"] == sha256_file(tiny_artifact / "tokenizer.json")
    assert set(manifest["variants"]) == {"fp16", "fp16-fused", "fp32", "int8"}
    for name, variant in loaded.variants.items():
        loaded.verified_path(variant)  # size and sha256 match the files
        assert variant.validation["passed"] and variant.validation["samples"] == 256, name


@pytest.mark.parametrize(
    "name, precision, form, provider",
    [
        ("fp16", "fp16", "standard", "TensorrtExecutionProvider"),
        ("fp16-fused", "fp16", "fused", "CUDAExecutionProvider"),
        ("fp32", "fp32", "fused", "CPUExecutionProvider"),
        ("int8", "int8", "fused", "CPUExecutionProvider"),
    ],
)
def test_each_variant_is_what_the_manifest_says(
    tiny_artifact: Path, manifest: dict, name: str, precision: str, form: str, provider: str
) -> None:
    entry = manifest["variants"][name]
    assert (entry["precision"], entry["form"]) == (precision, form)
    assert provider in entry["providers"]
    model = onnx.load(tiny_artifact / entry["file"])
    onnx.checker.check_model(model)
    fp32, int64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
    # Static sequence axis, dynamic batch, fp32 logits whatever the precision inside.
    assert _io(model) == {
        "input_ids": (int64, ["batch", 32]),
        "attention_mask": (int64, ["batch", 32]),
        "logits": (fp32, ["batch", 6]),
    }
    ops = {(node.domain or "ai.onnx", node.op_type) for node in model.graph.node}
    contrib = {op for domain, op in ops if domain == "com.microsoft"}
    if form == "standard":
        assert not contrib, "TensorRT cannot parse ONNX Runtime's contrib operators"
        assert ("ai.onnx", "LayerNormalization") in ops
    elif precision == "int8":  # the quantizer swaps in the quantized forms of two of them
        assert {"QEmbedLayerNormalization", "QAttention", "SkipLayerNormalization", "BiasGelu"} <= contrib
        assert ("ai.onnx", "MatMulInteger") in ops
    else:
        assert FUSED_OPS <= contrib
        assert entry["fusions"] == {op: entry["fusions"][op] for op in FUSED_OPS}
        assert all(count > 0 for count in entry["fusions"].values())
    kinds = {init.data_type for init in model.graph.initializer}
    if precision == "fp16":
        assert onnx.TensorProto.FLOAT16 in kinds


def test_fp16_standard_keeps_layer_norm_in_fp32(tiny_artifact: Path) -> None:
    model = onnx.load(tiny_artifact / "model-fp16.onnx")
    layer_norms = [n for n in model.graph.node if n.op_type == "LayerNormalization"]
    weights = {init.name: init.data_type for init in model.graph.initializer}
    assert layer_norms
    for node in layer_norms:
        assert weights.get(node.input[1], onnx.TensorProto.FLOAT) == onnx.TensorProto.FLOAT


def test_tokenizer_json_pads_and_truncates_to_the_graph(tiny_artifact: Path) -> None:
    tokenizer = load_tokenizer(tiny_artifact / "tokenizer.json", 32, 0)
    ids, mask = encode(tokenizer, ["short", "word " * 100, ""])
    assert ids.shape == mask.shape == (3, 32)
    assert ids[0, 0] == 101 and mask[0].sum() < 32 and ids[0, -1] == 0  # [CLS] ..., right-padded
    assert mask[1].all() and ids[1, -1] == 102  # truncated, ends with [SEP]
    assert mask[2].sum() == 2


def test_validation_figures_match_an_independent_comparison(
    tiny_checkpoint: Path, tiny_artifact: Path, manifest: dict
) -> None:
    """The manifest's numbers, recomputed without export's code: transformers' own model and
    tokenizer, a plain ONNX Runtime session, and the figures' definitions in numpy."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")

    sample = validate.load_sample()  # the sample export validates on (cleaned text)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_checkpoint)
    batch = tokenizer(sample, truncation=True, max_length=32, padding="max_length", return_tensors="np")
    model = transformers.BertForSequenceClassification.from_pretrained(tiny_checkpoint).eval()
    with torch.no_grad():
        reference = model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.double().numpy()
    ids, mask = batch["input_ids"].astype(np.int64), batch["attention_mask"].astype(np.int64)
    for name in ("fp32", "int8"):
        session = ort.InferenceSession(
            str(tiny_artifact / manifest["variants"][name]["file"]), providers=["CPUExecutionProvider"]
        )
        # Batches of 64, as export runs them: int8 scales its activations per batch.
        logits = np.concatenate(
            [session.run(None, {"input_ids": ids[i : i + 64], "attention_mask": mask[i : i + 64]})[0]
             for i in range(0, len(ids), 64)]
        ).astype(np.float64)
        p_ref, p_var = 1 / (1 + np.exp(-reference)), 1 / (1 + np.exp(-logits))
        recorded = manifest["variants"][name]["validation"]
        assert recorded["samples"] == len(sample) and recorded["decisions"] == p_ref.size
        assert recorded["max_abs_prob_diff"] == pytest.approx(np.abs(p_ref - p_var).max(), rel=1e-2, abs=1e-7)
        assert recorded["label_flips"] == int(((p_ref >= 0.5) != (p_var >= 0.5)).sum())
