"""The word-embedding table is set aside for the graph passes and put back exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
from onnx import numpy_helper
from onnxruntime.transformers.float16 import convert_np_to_float16
from vigil.export import graphs, validate
from vigil.export.checkpoint import load_checkpoint
from vigil.export.errors import ExportError
from vigil.export.table import light_table, put_back, refer_to, table_name, to_float16
from vigil.runtime.tokenizer import encode, load_tokenizer


@pytest.fixture(scope="module")
def exported(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny stand-in traced twice: with its full table, and light with the table saved aside."""
    out = tmp_path_factory.mktemp("table")
    model = load_checkpoint(str(tiny_checkpoint)).model
    original = model.bert.embeddings.word_embeddings.weight
    graphs.export_fp32(model, out / "full.onnx", 32)
    with light_table(model) as full:
        cut = model.bert.embeddings.word_embeddings.weight.shape
        graphs.export_fp32(model, out / "light.onnx", 32)
        np.save(out / "table.npy", full)
    restored = model.bert.embeddings.word_embeddings.weight is original
    return {
        "dir": out,
        "full": full,
        "cut": cut,
        "restored": restored,
        "positions": model.config.max_position_embeddings,
        "tokenizer": tiny_checkpoint / "tokenizer.json",
    }


def _initializer(path: Path, name: str) -> np.ndarray:
    (found,) = [init for init in onnx.load(str(path)).graph.initializer if init.name == name]
    return numpy_helper.to_array(found)


def test_the_light_graph_holds_only_the_first_rows_and_the_model_gets_its_table_back(exported: dict) -> None:
    assert exported["cut"] == (exported["positions"] + 1, exported["full"].shape[1])
    assert exported["full"].shape[0] > exported["cut"][0]
    assert exported["restored"]
    light = exported["dir"] / "light.onnx"
    np.testing.assert_array_equal(_initializer(light, table_name(light)), exported["full"][: exported["cut"][0]])


def test_put_back_scores_exactly_as_the_graph_traced_with_the_full_table(exported: dict) -> None:
    folder = exported["dir"]
    name = table_name(folder / "light.onnx")
    put_back(folder / "light.onnx", folder / "whole.onnx", name, folder / "table.npy")
    np.testing.assert_array_equal(_initializer(folder / "whole.onnx", name), exported["full"])
    ids, mask = encode(load_tokenizer(exported["tokenizer"], 32, 0), validate.load_sample())
    expected = validate.onnx_outputs(folder / "full.onnx", ids, mask)
    actual = validate.onnx_outputs(folder / "whole.onnx", ids, mask)
    assert ids.max() >= exported["cut"][0], "the sample should use rows the light table lacks"
    np.testing.assert_array_equal(actual.logits, expected.logits)
    np.testing.assert_array_equal(actual.pooled, expected.pooled)


def test_a_graph_referring_to_the_table_in_place_scores_as_the_full_graph(exported: dict) -> None:
    """The calibration's scratch graph reads the saved table as external data, writing no copy."""
    folder = exported["dir"]
    name = table_name(folder / "light.onnx")
    refer_to(folder / "light.onnx", folder / "referring.onnx", name, folder / "table.npy")
    assert (folder / "referring.onnx").stat().st_size < (folder / "light.onnx").stat().st_size
    ids, mask = encode(load_tokenizer(exported["tokenizer"], 32, 0), validate.load_sample())
    expected = validate.onnx_outputs(folder / "full.onnx", ids, mask)
    actual = validate.onnx_outputs(folder / "referring.onnx", ids, mask)
    np.testing.assert_array_equal(actual.logits, expected.logits)
    np.testing.assert_array_equal(_initializer(folder / "referring.onnx", name), exported["full"])


def test_a_graph_may_refer_to_the_table_only_from_beside_it(exported: dict, tmp_path: Path) -> None:
    folder = exported["dir"]
    with pytest.raises(ExportError, match="must lie beside table.npy"):
        refer_to(folder / "light.onnx", tmp_path / "elsewhere.onnx", table_name(folder / "light.onnx"), folder / "table.npy")
    assert not (tmp_path / "elsewhere.onnx").exists()


def test_put_back_converts_the_table_as_the_fp16_pass_would(exported: dict) -> None:
    folder = exported["dir"]
    name = table_name(folder / "light.onnx")
    graphs.to_fp16_standard(folder / "light.onnx", folder / "light16.onnx", 32)
    put_back(folder / "light16.onnx", folder / "whole16.onnx", name, folder / "table.npy")
    table = _initializer(folder / "whole16.onnx", name)
    assert table.dtype == np.float16
    np.testing.assert_array_equal(table, convert_np_to_float16(exported["full"]))


def test_to_float16_clamps_exactly_as_onnx_runtimes_converter() -> None:
    """Sign and finiteness kept at the edges of fp16's range, as ONNX Runtime's converter keeps them."""
    edges = np.array(
        [0.0, -0.0, 1e-30, -1e-30, 1e-9, -1e-9, 5.96e-8, 3e-8, 6e-8, 1.0, -3.5, 65504.0, 65519.0,
         65520.0, -7e4, 1e5, 3e38, np.inf, -np.inf, np.nan],
        dtype=np.float32,
    )
    values = np.concatenate([edges, np.random.default_rng(0).normal(0, 0.05, 10_000).astype(np.float32)])
    converted = to_float16(values)
    expected = convert_np_to_float16(values)
    assert converted.dtype == np.float16
    np.testing.assert_array_equal(converted, expected)
    np.testing.assert_array_equal(np.signbit(converted), np.signbit(expected))
    assert np.isfinite(converted[np.isfinite(values)]).all(), "a finite weight became infinite"


def test_put_back_refuses_a_graph_without_that_table(exported: dict) -> None:
    folder = exported["dir"]
    with pytest.raises(ExportError, match="no word-embedding table 'nothing'"):
        put_back(folder / "light.onnx", folder / "never.onnx", "nothing", folder / "table.npy")
    assert not (folder / "never.onnx").exists()

