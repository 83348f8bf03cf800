"""The stand-in has the real model's config and tokenizer, and says it is random."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

standin = pytest.importorskip("vigil.export.standin")
transformers = pytest.importorskip("transformers")

VOCAB_SHA256 = "74588ae16972f5892be6fc3635090c8db7432fc617fc25cc024dc57d72e4cc20"


def test_bundled_vocab_is_the_exact_smaller_labse_vocab() -> None:
    data = standin.bundled_vocab().read_bytes()
    assert hashlib.sha256(data).hexdigest() == VOCAB_SHA256
    assert len(data.decode("utf-8").splitlines()) == 173_347


def test_config_matches_the_real_model(tiny_checkpoint: Path) -> None:
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["problem_type"] == "multi_label_classification"
    assert [config["id2label"][str(i)] for i in range(6)] == list(standin.REAL_LABELS)
    assert config["vocab_size"] == 173_347
    assert config["pad_token_id"] == 0
    assert config["max_position_embeddings"] == 512
    assert config[standin.RANDOM_MARKER] == {"seed": 0}


def test_full_size_is_the_real_architecture() -> None:
    assert standin.FULL == standin.StandinSize(layers=12, hidden=768, heads=12, intermediate=3072)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"layers": 0, "hidden": 32, "heads": 4, "intermediate": 64}, ValueError),
        ({"layers": 2, "hidden": 30, "heads": 4, "intermediate": 64}, ValueError),
        ({"layers": True, "hidden": 32, "heads": 4, "intermediate": 64}, ValueError),
    ],
)
def test_bad_sizes_are_refused(kwargs: dict, error: type) -> None:
    with pytest.raises(error):
        standin.StandinSize(**kwargs)


def test_tokenizer_is_cased_wordpiece_with_the_real_vocab(tiny_checkpoint: Path) -> None:
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_checkpoint)
    assert len(tokenizer) == 173_347
    assert tokenizer.model_max_length == 32
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("Héllo Wörld 你好")["input_ids"])
    assert tokens == ["[CLS]", "Hé", "##llo", "W", "##ör", "##ld", "你", "好", "[SEP]"]


def test_says_it_is_random(tiny_checkpoint: Path) -> None:
    assert "RANDOM STAND-IN" in (tiny_checkpoint / "README.md").read_text()


def test_seed_makes_weights_reproducible_and_head_spread(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    a = standin.write_standin(tmp_path / "a", size=standin.TINY, seed=3)
    b = standin.write_standin(tmp_path / "b", size=standin.TINY, seed=3)
    model_a = transformers.BertForSequenceClassification.from_pretrained(a)
    model_b = transformers.BertForSequenceClassification.from_pretrained(b)
    for (name, pa), (_, pb) in zip(model_a.state_dict().items(), model_b.state_dict().items()):
        assert torch.equal(pa, pb), name
    # The widened head spreads logits far beyond BERT's default init (std 0.02).
    assert model_a.classifier.bias.abs().max() > 0.5


def test_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        standin.write_standin(tmp_path, size=standin.TINY)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_tiny_scores_spread_across_tweets_and_both_sides_of_half(tiny_checkpoint: Path) -> None:
    """As a trained model's do: otherwise parity and validation checks cannot tell tweets apart."""
    torch = pytest.importorskip("torch")
    validate = pytest.importorskip("vigil.export.validate")
    model = transformers.BertForSequenceClassification.from_pretrained(tiny_checkpoint).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_checkpoint)
    batch = tokenizer(validate.load_sample(), truncation=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        probabilities = torch.sigmoid(model(**batch).logits).numpy()
    assert probabilities.std(axis=0).min() > 0.1  # the int8 tolerance is 0.1; the old head gave 3e-4
    positive = (probabilities >= 0.5).mean(axis=0)
    assert ((positive > 0.15) & (positive < 0.85)).all(), positive
    # Between two different tweets, most labels move by more than the fp16 tolerance.
    moved = np.abs(probabilities[1:] - probabilities[:-1]) > validate.TOLERANCES["fp16"].max_prob_diff
    assert moved.mean() > 0.9
