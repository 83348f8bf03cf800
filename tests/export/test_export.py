"""`vigil export` end to end on the tiny stand-in: graphs, manifest and validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
artifact = pytest.importorskip("vigil.export.artifact")
validate = pytest.importorskip("vigil.export.validate")
int8 = pytest.importorskip("vigil.export.int8")

from vigil.runtime.manifest import Manifest, sha256_file
from vigil.runtime.providers import plan_sessions
from vigil.runtime.tokenizer import encode, load_tokenizer

FUSED_OPS = {"EmbedLayerNormalization", "Attention", "SkipLayerNormalization", "BiasGelu"}


@pytest.fixture(scope="module")
def manifest(tiny_artifact: Path) -> dict:
    return json.loads((tiny_artifact / "manifest.json").read_text())


def _io(model: onnx.ModelProto) -> dict[str, tuple[int, list]]:
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
    assert manifest["sequence_buckets"] == [16, 24, 32] and loaded.sequence_buckets == (16, 24, 32)
    assert manifest["source"]["revision"] is None
    assert {"torch", "transformers", "onnx", "onnxruntime"} <= set(manifest["versions"])
    assert manifest["tokenizer"]["sha256"] == sha256_file(tiny_artifact / "tokenizer.json")
    # The tiny random stand-in cannot keep int8 within tolerance: see test_int8_left_out.
    assert set(manifest["variants"]) == {"fp16", "fp16-fused", "fp32"}
    for name, variant in loaded.variants.items():
        loaded.verified_path(variant)  # size and sha256 match the files
        assert variant.validation["passed"] and variant.validation["samples"] == 256, name


@pytest.mark.parametrize(
    "name, precision, form, provider",
    [
        ("fp16", "fp16", "standard", "TensorrtExecutionProvider"),
        ("fp16-fused", "fp16", "fused", "CUDAExecutionProvider"),
        ("fp32", "fp32", "fused", "CPUExecutionProvider"),
        ("int8", "int8", "standard", "CPUExecutionProvider"),
    ],
)
def test_each_variant_is_what_the_manifest_says(
    request: pytest.FixtureRequest, name: str, precision: str, form: str, provider: str
) -> None:
    tiny_artifact = request.getfixturevalue("int8_artifact" if name == "int8" else "tiny_artifact")
    entry = json.loads((tiny_artifact / "manifest.json").read_text())["variants"][name]
    assert (entry["precision"], entry["form"]) == (precision, form)
    assert provider in entry["providers"]
    model = onnx.load(tiny_artifact / entry["file"])
    onnx.checker.check_model(model)
    fp32, int64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
    # Dynamic batch, fp32 logits whatever the precision inside; the graphs the runtime
    # drives have a symbolic sequence axis (run at the buckets), TensorRT's a static one.
    bucketed = name != "fp16"
    sequence = "sequence" if bucketed else 32
    width = json.loads((tiny_artifact / "manifest.json").read_text())["pooled"]["width"]
    assert _io(model) == {
        "input_ids": (int64, ["batch", sequence]),
        "attention_mask": (int64, ["batch", sequence]),
        "logits": (fp32, ["batch", 6]),
        "pooled": (fp32, ["batch", width]),
    }
    assert [output.name for output in model.graph.output] == ["logits", "pooled"]  # logits first, as ever
    if bucketed:
        agreement = entry["sequence_buckets"]
        tolerance = 1e-3 if precision == "fp16" else 1e-5
        assert agreement["passed"] and agreement["tolerance"] == tolerance
        assert list(agreement["buckets"]) == ["16", "24"]  # each shorter bucket against the full length
        assert all(figures["max_abs_prob_diff"] <= tolerance for figures in agreement["buckets"].values())
    else:
        assert "sequence_buckets" not in entry
    ops = {(node.domain or "ai.onnx", node.op_type) for node in model.graph.node}
    contrib = {op for domain, op in ops if domain == "com.microsoft"}
    if precision == "int8":  # static QDQ: the quantizer reads the standard-operator graph
        assert not contrib
        assert {("ai.onnx", "QuantizeLinear"), ("ai.onnx", "DequantizeLinear")} <= ops
        assert validate.passed(entry["quantization"]["steps"][-1], "int8")
    elif form == "standard":
        assert not contrib, "TensorRT cannot parse ONNX Runtime's contrib operators"
        assert ("ai.onnx", "LayerNormalization") in ops
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


@pytest.mark.parametrize(
    "checkpoint, exported, names",
    [("tiny_checkpoint", "tiny_artifact", ("fp32", "fp16")), ("minilm_checkpoint", "int8_artifact", ("int8",))],
    ids=["tiny", "minilm"],
)
def test_validation_figures_match_an_independent_comparison(
    request: pytest.FixtureRequest, checkpoint: str, exported: str, names: tuple[str, ...]
) -> None:
    """The manifest's numbers, recomputed without export's code: transformers' own model and
    tokenizer, a plain ONNX Runtime session, and the figures' definitions in numpy."""
    tiny_checkpoint, tiny_artifact = request.getfixturevalue(checkpoint), request.getfixturevalue(exported)
    manifest = json.loads((tiny_artifact / "manifest.json").read_text())
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
    for name in names:
        session = ort.InferenceSession(
            str(tiny_artifact / manifest["variants"][name]["file"]), providers=["CPUExecutionProvider"]
        )
        logits = np.concatenate(
            [session.run(None, {"input_ids": ids[i : i + 64], "attention_mask": mask[i : i + 64]})[0]
             for i in range(0, len(ids), 64)]
        ).astype(np.float64)
        p_ref, p_var = 1 / (1 + np.exp(-reference)), 1 / (1 + np.exp(-logits))
        recorded = manifest["variants"][name]["validation"]
        assert recorded["samples"] == len(sample) and recorded["decisions"] == p_ref.size
        assert recorded["max_abs_prob_diff"] == pytest.approx(np.abs(p_ref - p_var).max(), rel=1e-2, abs=1e-6)  # fp32: threads reorder sums
        assert recorded["label_flips"] == int(((p_ref >= 0.5) != (p_var >= 0.5)).sum())
    assert not np.allclose(reference, 0, atol=0.05), "the stand-in's head should spread its logits"


def test_int8_score_does_not_depend_on_batch_mates(int8_artifact: Path) -> None:
    """Static calibration fixes activation ranges: a tweet alone scores as in a batch of 64."""
    ids, mask = encode(load_tokenizer(int8_artifact / "tokenizer.json", 32, 0), validate.load_sample()[:64])
    path = int8_artifact / "model-int8.onnx"
    batched = validate.onnx_logits(path, ids, mask, batch_size=64)
    alone = validate.onnx_logits(path, ids, mask, batch_size=1)
    assert not np.allclose(batched, batched[:1], atol=1e-3), "different tweets should score differently"
    np.testing.assert_allclose(alone, batched, atol=1e-5)


def test_int8_rounds_only_what_weight_matmuls_read(int8_artifact: Path) -> None:
    """8-bit activations only on their way into a weight MatMul: the attention's own MatMuls,
    every MatMul output and the residual stream stay fp32."""
    model = onnx.load(str(int8_artifact / "model-int8.onnx"))
    producer = {output: node for node in model.graph.node for output in node.output}
    weights = {init.name for init in model.graph.initializer}

    def rounded(name: str) -> bool:  # the output of a DequantizeLinear of an activation
        node = producer.get(name)
        return node is not None and node.op_type == "DequantizeLinear" and node.input[0] not in weights

    matmuls = [node for node in model.graph.node if node.op_type == "MatMul"]
    weight_matmuls = [node for node in matmuls if node.input[1] in producer and producer[node.input[1]].input[0] in weights]
    assert len(weight_matmuls) == 6 * 6 and all(rounded(node.input[0]) for node in weight_matmuls)
    assert all(not rounded(name) for node in matmuls if node not in weight_matmuls for name in node.input)
    assert all(not rounded(name) for node in model.graph.node if node.op_type != "MatMul" for name in node.input)
    assert all(producer[node.input[0]].op_type != "MatMul" for node in model.graph.node if node.op_type == "QuantizeLinear")


def test_calibration_sample_is_not_the_validation_sample() -> None:
    validation = validate.load_sample()
    calibration = validate.load_calibration(None, validation)
    assert len(calibration) >= 64 and not set(calibration) & set(validation)


def test_int8_left_out_of_the_tiny_stand_in(tiny_artifact: Path, manifest: dict) -> None:
    """No int8 within its tolerance: the artifact has none, says why, and CPUs run fp32."""
    assert "int8" not in manifest["variants"] and not (tiny_artifact / "model-int8.onnx").exists()
    omitted = manifest["int8_omitted"]
    assert "misses its tolerance" in omitted["reason"] and omitted["method"] == int8.METHOD
    assert not any(validate.passed(step, "int8") for step in omitted["steps"])
    (plan,) = plan_sessions(Manifest.load(tiny_artifact), "cpu", available_providers=["CPUExecutionProvider"])
    assert plan.variant == "fp32"


def test_the_fallback_tries_layers_in_fp32_within_the_cap(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With half the FLOPs allowed in fp32, export tries both weight types, measures each layer
    and tries the worst one in fp32; the command still exits 0 with a warning when int8
    cannot pass."""
    from click.testing import CliRunner
    from vigil.cli.main import main

    strict = validate.Tolerance(max_prob_diff=1e-9, min_label_agreement=1.0, borderline_band=0.0)
    monkeypatch.setitem(validate.TOLERANCES, "int8", strict)
    monkeypatch.setattr(int8, "MAX_FP32_FLOP_SHARE", 0.5)
    monkeypatch.setattr(artifact, "_in_child", lambda function, *args, **kwargs: function(*args, **kwargs))
    out = tmp_path / "art"
    result = CliRunner().invoke(main, ["export", str(tiny_checkpoint), str(out)])
    assert result.exit_code == 0, result.output
    assert "WARNING: no int8 variant" in result.output
    omitted = json.loads((out / "manifest.json").read_text())["int8_omitted"]
    assert set(omitted["sensitivity"]) == {"layer.0", "layer.1"}
    worst = max(omitted["sensitivity"], key=omitted["sensitivity"].get)
    assert [step["fp32_layers"] for step in omitted["steps"]] == [[], [], [worst]]
    assert all(f"/encoder/{worst}/" in node for node in omitted["steps"][2]["fp32_nodes"])
    # int8 weights, then uint8; the fallback keeps the more accurate of the two.
    first, second, fallback = omitted["steps"]
    assert [first["weights"], second["weights"]] == ["int8", "uint8"]
    better = max((first, second), key=lambda step: step["validation"]["label_agreement"])
    assert fallback["weights"] == better["weights"]


def test_export_to_a_relative_path(tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As the README runs it (`vigil export ./standin artifacts/standin`): the passes get
    paths relative to where export was started, and one of them changes folder."""
    monkeypatch.chdir(tmp_path)
    manifest = artifact.export_artifact(Path("artifacts") / "tiny", str(tiny_checkpoint), variants=("fp16",))
    assert Path.cwd() == tmp_path
    assert sorted(p.name for p in (tmp_path / "artifacts" / "tiny").iterdir()) == sorted(
        ["manifest.json", "tokenizer.json", *(entry["file"] for entry in manifest["variants"].values())]
    )
