"""The last encoder layer at the first position only: the same scores, one row of work."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
import onnxruntime as ort
from vigil.export import validate
from vigil.export.checkpoint import load_checkpoint
from vigil.export.first_token import first_token_last_layer
from vigil.runtime.tokenizer import encode, load_tokenizer


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path):
    return load_checkpoint(str(tiny_checkpoint)).model


@pytest.fixture(scope="module")
def padded(tiny_checkpoint: Path) -> tuple:
    """Sample tweets of many lengths, right-padded to 32, as torch tensors."""
    ids, mask = encode(load_tokenizer(tiny_checkpoint / "tokenizer.json", 32, 0), validate.load_sample()[:24])
    assert len(set(mask.sum(axis=1))) > 5, "the sample must mix lengths for the mask to matter"
    return torch.from_numpy(ids), torch.from_numpy(mask)


def test_scores_and_pooled_output_are_the_whole_models(model, padded) -> None:
    with torch.no_grad():
        whole = model.bert(*padded)
        with first_token_last_layer(model) as applied:
            first = model.bert(*padded)
            logits = model(*padded).logits
        assert applied
        np.testing.assert_allclose(first.pooler_output, whole.pooler_output, rtol=0, atol=1e-5)
        np.testing.assert_allclose(logits, model(*padded).logits, rtol=0, atol=1e-5)
    assert first.last_hidden_state.shape[1] == 1  # the other positions were never computed
    assert whole.last_hidden_state.shape[1] == padded[0].shape[1]


def test_the_models_own_layer_comes_back_even_after_an_error(model) -> None:
    own = model.bert.encoder.layer[-1]
    with pytest.raises(RuntimeError), first_token_last_layer(model):
        assert model.bert.encoder.layer[-1] is not own
        raise RuntimeError("a failed trace")
    assert model.bert.encoder.layer[-1] is own
    assert not model.bert._forward_pre_hooks


def test_without_a_mask_every_position_counts_as_in_the_whole_model(model, padded) -> None:
    ids = padded[0][:4]
    with torch.no_grad():
        whole = model.bert(ids).pooler_output
        with first_token_last_layer(model):
            first = model.bert(ids).pooler_output
    np.testing.assert_allclose(first, whole, rtol=0, atol=1e-5)


def test_the_mask_is_the_calls_own_not_a_stale_one(model, padded) -> None:
    """The layer reads each call's mask (kept by a hook on BertModel): a call without one
    after a padded call attends to every position again."""
    ids, mask = padded
    with torch.no_grad():
        with first_token_last_layer(model):
            model.bert(ids, mask)
            unmasked = model.bert(ids).pooler_output
        np.testing.assert_allclose(unmasked, model.bert(ids).pooler_output, rtol=0, atol=1e-5)
        assert not np.allclose(unmasked, model.bert(ids, mask).pooler_output, atol=1e-3)


def test_relative_position_scores_keep_the_whole_layer(model, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model.config, "position_embedding_type", "relative_key", raising=False)
    own = model.bert.encoder.layer[-1]
    with first_token_last_layer(model) as applied:
        assert not applied
        assert model.bert.encoder.layer[-1] is own


def test_the_exported_graph_runs_the_last_feed_forward_on_one_position(int8_artifact: Path) -> None:
    """The artifact's graphs come from the first-position trace: the last layer's
    feed-forward input is [batch, 1, hidden], every other layer's [batch, sequence, hidden]."""
    graph = onnx.load(str(int8_artifact / "model-int8.onnx"))
    feed_forward = {
        int(match.group(1)): node.input[0]
        for node in graph.graph.node
        if (match := re.fullmatch(r"/bert/encoder/layer\.(\d+)/intermediate/dense/MatMul", node.name))
    }
    outputs = [feed_forward[layer] for layer in sorted(feed_forward)]
    assert len(outputs) > 1
    graph.graph.output.extend(onnx.ValueInfoProto(name=tensor) for tensor in outputs)
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    ids = np.ones((2, 16), dtype=np.int64)
    shapes = [result.shape for result in session.run(outputs, {"input_ids": ids, "attention_mask": ids})]
    assert shapes[-1][:2] == (2, 1)
    assert all(shape[:2] == (2, 16) for shape in shapes[:-1]), shapes



def test_the_fused_graphs_fuse_every_other_attention_and_drop_the_4d_mask(tiny_artifact: Path) -> None:
    """The last layer masks with the 2-D input mask, so once the other layers' attentions are
    fused nothing reads transformers' 4-D mask and its subgraph (built with Range) is gone:
    no extra kernels in the CUDA graphs."""
    manifest = json.loads((tiny_artifact / "manifest.json").read_text())
    for variant in ("fp32", "fp16-fused"):
        graph = onnx.load(str(tiny_artifact / manifest["variants"][variant]["file"]), load_external_data=False)
        operators = [node.op_type for node in graph.graph.node]
        layers = 1 + max(int(m.group(1)) for node in graph.graph.node if (m := re.search(r"/encoder/layer\.(\d+)/", node.name)))
        assert operators.count("Attention") == layers - 1, variant
        assert "Range" not in operators, variant
