"""The last encoder layer at the first position only: the same scores, one row of work."""

from __future__ import annotations

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


@pytest.mark.parametrize("form", ["additive [b,1,s,s]", "additive [b,1,1,s]", "boolean keep [b,1,s,s]", "none"])
def test_every_mask_form_an_encoder_passes_masks_the_same_keys(model, form: str) -> None:
    """Position 0's output equals the whole layer's, whichever 4-D mask form transformers
    builds for its attention implementation."""
    torch.manual_seed(0)
    hidden = torch.randn(3, 10, model.config.hidden_size)
    keep = torch.ones(3, 10, dtype=torch.bool)
    keep[1, 4:] = keep[2, 7:] = False
    additive = torch.zeros(3, 1, 10, 10).masked_fill(~keep[:, None, None, :], torch.finfo(torch.float32).min)
    given, expected_mask = {
        "additive [b,1,s,s]": (additive, additive),
        "additive [b,1,1,s]": (additive[:, :, :1], additive),
        "boolean keep [b,1,s,s]": (keep[:, None, None, :].expand(3, 1, 10, 10), additive),
        "none": (None, None),
    }[form]
    layer = model.bert.encoder.layer[-1]
    with torch.no_grad():
        expected = layer(hidden, expected_mask)[:, :1]
        with first_token_last_layer(model):
            got = model.bert.encoder.layer[-1](hidden, given)
    assert got.shape == (3, 1, model.config.hidden_size)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


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

