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
from vigil.export.table import light_table, put_back, table_name
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


def test_put_back_converts_the_table_as_the_fp16_pass_would(exported: dict) -> None:
    folder = exported["dir"]
    name = table_name(folder / "light.onnx")
    graphs.to_fp16_standard(folder / "light.onnx", folder / "light16.onnx", 32)
    put_back(folder / "light16.onnx", folder / "whole16.onnx", name, folder / "table.npy")
    table = _initializer(folder / "whole16.onnx", name)
    assert table.dtype == np.float16
    np.testing.assert_array_equal(table, convert_np_to_float16(exported["full"]))


def test_put_back_refuses_a_graph_without_that_table(exported: dict) -> None:
    folder = exported["dir"]
    with pytest.raises(ExportError, match="no word-embedding table 'nothing'"):
        put_back(folder / "light.onnx", folder / "never.onnx", "nothing", folder / "table.npy")
    assert not (folder / "never.onnx").exists()

