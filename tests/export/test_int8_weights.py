"""int8's weight types: signed int8 first (fastest), uint8 where AVX2's saturation would cost accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
from onnx import numpy_helper
from vigil.export import graphs, validate
from vigil.export.checkpoint import load_checkpoint
from vigil.runtime.tokenizer import encode, load_tokenizer


@pytest.fixture(scope="module")
def calibrated(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, tuple]:
    """The tiny stand-in's plain fp32 graph, its activation ranges, and tweets to score."""
    out = tmp_path_factory.mktemp("int8-weights")
    graphs.export_fp32(load_checkpoint(str(tiny_checkpoint)).model, out / "plain.onnx", 32)
    tokenizer = load_tokenizer(tiny_checkpoint / "tokenizer.json", 32, 0)
    validation = validate.load_sample()
    graphs.calibrate(out / "plain.onnx", *encode(tokenizer, validate.load_calibration(None, validation)[:32]), out / "ranges.json")
    return out / "plain.onnx", out / "ranges.json", encode(tokenizer, validation[:16])


def _weight_types(path: Path) -> set[np.dtype]:
    """The element types of the quantized weights that MatMuls read."""
    model = onnx.load(str(path))
    initializers = {init.name: init for init in model.graph.initializer}
    producer = {output: node for node in model.graph.node for output in node.output}
    return {
        numpy_helper.to_array(initializers[producer[node.input[1]].input[0]]).dtype
        for node in model.graph.node
        if node.op_type == "MatMul" and node.input[1] in producer and producer[node.input[1]].op_type == "DequantizeLinear"
    }


@pytest.mark.parametrize(("weights", "dtype"), [("int8", np.int8), ("uint8", np.uint8)])
def test_weights_are_quantized_to_the_type_asked_for(calibrated, tmp_path: Path, weights: str, dtype) -> None:
    plain, ranges, (ids, mask) = calibrated
    out = tmp_path / f"{weights}.onnx"
    graphs.quantize_int8(plain, out, ranges, weights=weights)
    assert _weight_types(out) == {np.dtype(dtype)}
    scores = validate.onnx_logits(out, ids, mask)
    reference = validate.onnx_logits(plain, ids, mask)
    assert np.isfinite(scores).all() and not np.array_equal(scores, reference)  # rounded, and runs
    assert np.abs(scores - reference).max() < 0.5 * np.abs(reference).max()  # still the same model


def test_ranges_are_onnx_runtimes_own(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """vigil's calibration reads the weights in place, yet measures exactly what ONNX Runtime's
    MinMax calibrator measures, on the same tweets, and leaves no augmented graph behind."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator
    from onnxruntime.quantization.calibrate import load_tensors_data

    plain = tmp_path / "plain.onnx"
    graphs.export_fp32(load_checkpoint(str(tiny_checkpoint)).model, plain, 32)
    graphs.set_weights_apart(plain)
    tokenizer = load_tokenizer(tiny_checkpoint / "tokenizer.json", 32, 0)
    ids, mask = encode(tokenizer, validate.load_calibration(None, validate.load_sample())[:40])
    graphs.calibrate(plain, ids, mask, tmp_path / "ranges.json")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["plain.onnx", "plain.onnx.data", "ranges.json"]

    calibrator = create_calibrator(
        plain, ["MatMul"], augmented_model_path=str(tmp_path / "augmented.onnx"), calibrate_method=CalibrationMethod.MinMax
    )
    calibrator.collect_data(_Batches(ids, mask))
    expected = calibrator.compute_data().data
    found = load_tensors_data(tmp_path / "ranges.json").data
    assert sorted(found) == sorted(expected) and len(found) > 2 * len(graphs.matmul_nodes(plain))
    for name, data in expected.items():
        np.testing.assert_array_equal(found[name].range_value, data.range_value, err_msg=name)


class _Batches:
    """The calibration tweets as ONNX Runtime's calibrator reads them: 16 of similar length at a
    time, each batch cut to its longest, as vigil's calibration runs them."""

    def __init__(self, ids: np.ndarray, mask: np.ndarray) -> None:
        self._feeds = (
            {"input_ids": ids[rows, :width], "attention_mask": mask[rows, :width]} for rows, width in validate.by_length(mask, 16)
        )

    def get_next(self) -> dict | None:
        return next(self._feeds, None)


def test_quantizing_logs_no_advice_to_preprocess_the_graph(calibrated, tmp_path: Path, caplog) -> None:
    """vigil quantizes the plain graph on purpose; ONNX Runtime's advice otherwise would mislead."""
    plain, ranges, _ = calibrated
    with caplog.at_level("WARNING"):
        graphs.quantize_int8(plain, tmp_path / "int8.onnx", ranges)
    assert not [r for r in caplog.records if "pre-processing" in r.getMessage()]
    assert (tmp_path / "int8.onnx").exists()
