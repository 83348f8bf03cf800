"""The light graph keeps its weights apart, so the fusions load the graph alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
from vigil.export import graphs, validate
from vigil.export.checkpoint import load_checkpoint
from vigil.export.errors import ExportError
from vigil.export.table import light_table, put_back, refer_to, table_name
from vigil.runtime.tokenizer import encode, load_tokenizer


@pytest.fixture(scope="module")
def traced(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny stand-in's light graph twice: whole in one file ("inline/"), and with its
    weights set apart ("apart/"), each beside the saved table; and the graph with its full table."""
    root = tmp_path_factory.mktemp("apart")
    model = load_checkpoint(str(tiny_checkpoint)).model
    graphs.export_fp32(model, root / "full.onnx", 32)
    with light_table(model) as full:
        for folder in ("inline", "apart"):
            (root / folder).mkdir()
            graphs.export_fp32(model, root / folder / "light.onnx", 32)
            np.save(root / folder / "table.npy", full)
    graphs.set_weights_apart(root / "apart" / "light.onnx")
    config = model.config
    return {"root": root, "heads": config.num_attention_heads, "hidden": config.hidden_size, "tokenizer": tiny_checkpoint / "tokenizer.json"}


def _sample(traced: dict) -> tuple[np.ndarray, np.ndarray]:
    return encode(load_tokenizer(traced["tokenizer"], 32, 0), validate.load_sample())


def test_weights_set_apart_leave_a_small_graph_with_the_same_weights(traced: dict) -> None:
    inline, apart = (traced["root"] / folder / "light.onnx" for folder in ("inline", "apart"))
    assert apart.stat().st_size < inline.stat().st_size / 4
    assert apart.with_name("light.onnx.data").is_file()
    weights = [{i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer} for path in (inline, apart)]
    assert weights[0].keys() == weights[1].keys()
    for name, values in weights[0].items():
        np.testing.assert_array_equal(weights[1][name], values)


def test_fusing_a_graph_without_its_weights_makes_the_same_fp32_variant(traced: dict) -> None:
    """The fusions read the weights they merge from the data file: the variant made from the
    weightless graph is byte for byte the one made from the whole graph."""
    made = {}
    for folder in ("inline", "apart"):
        light = traced["root"] / folder / "light.onnx"
        fusions = graphs.fuse(light, light.with_name("fused.onnx"), num_heads=traced["heads"], hidden_size=traced["hidden"])
        assert fusions["Attention"] > 0 and fusions["EmbedLayerNormalization"] == 1, fusions
        put_back(light.with_name("fused.onnx"), light.with_name("fp32.onnx"), table_name(light), light.with_name("table.npy"))
        made[folder] = light.with_name("fp32.onnx").read_bytes()
    assert made["apart"] == made["inline"]
    ids, mask = _sample(traced)
    expected = validate.onnx_logits(traced["root"] / "full.onnx", ids, mask)
    np.testing.assert_allclose(validate.onnx_logits(traced["root"] / "apart" / "fp32.onnx", ids, mask), expected, atol=1e-5)


def test_fuse_takes_relative_paths_and_keeps_the_working_folder(traced: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """`vigil export ./standin artifacts/standin` hands fuse paths relative to where it was run."""
    monkeypatch.chdir(traced["root"])
    light = Path("apart") / "light.onnx"
    graphs.fuse(light, light.with_name("relative.onnx"), num_heads=traced["heads"], hidden_size=traced["hidden"])
    assert Path.cwd() == traced["root"]
    assert (traced["root"] / "apart" / "relative.onnx").is_file()
    put_back(light.with_name("relative.onnx"), light.with_name("relative-fp32.onnx"), table_name(light), light.with_name("table.npy"))
    ids, mask = _sample(traced)
    expected = validate.onnx_logits(traced["root"] / "full.onnx", ids, mask)
    np.testing.assert_allclose(validate.onnx_logits(light.with_name("relative-fp32.onnx"), ids, mask), expected, atol=1e-5)


def test_fuse_refuses_to_write_away_from_its_weights(traced: dict, tmp_path: Path) -> None:
    light = traced["root"] / "apart" / "light.onnx"
    with pytest.raises(ExportError, match="must lie beside light.onnx"):
        graphs.fuse(light, tmp_path / "fused.onnx", num_heads=traced["heads"], hidden_size=traced["hidden"])
    assert not (tmp_path / "fused.onnx").exists()


def test_a_graph_referring_to_the_table_also_refers_to_the_weights_set_apart(traced: dict) -> None:
    folder = traced["root"] / "apart"
    name = table_name(folder / "light.onnx")
    refer_to(folder / "light.onnx", folder / "referring.onnx", name, folder / "table.npy")
    assert (folder / "referring.onnx").stat().st_size < 2 * (folder / "light.onnx").stat().st_size
    ids, mask = _sample(traced)
    expected = validate.onnx_outputs(traced["root"] / "full.onnx", ids, mask)
    actual = validate.onnx_outputs(folder / "referring.onnx", ids, mask)
    np.testing.assert_array_equal(actual.logits, expected.logits)
    np.testing.assert_array_equal(actual.pooled, expected.pooled)


def test_a_graph_may_refer_to_weights_set_apart_only_from_beside_them(traced: dict, tmp_path: Path) -> None:
    """The table copied elsewhere does not make a graph there valid: the other weights stay behind."""
    folder = traced["root"] / "apart"
    shutil.copy(folder / "table.npy", tmp_path / "table.npy")
    with pytest.raises(ExportError, match="must lie beside light.onnx"):
        refer_to(folder / "light.onnx", tmp_path / "referring.onnx", table_name(folder / "light.onnx"), tmp_path / "table.npy")
    assert not (tmp_path / "referring.onnx").exists()
