"""The tolerance rules that decide whether export accepts a variant."""

from __future__ import annotations

import numpy as np
import pytest

validate = pytest.importorskip("vigil.export.validate")

FP16 = validate.TOLERANCES["fp16"]
INT8 = validate.TOLERANCES["int8"]


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def test_identical_logits_pass() -> None:
    ref = np.random.default_rng(0).normal(0, 2, (50, 6)).astype(np.float32)
    result = validate.compare(ref, ref.copy(), FP16)
    assert result["passed"] and result["label_agreement"] == 1.0 and result["max_abs_prob_diff"] == 0


def test_probability_drift_beyond_tolerance_fails() -> None:
    ref = np.full((4, 6), _logit(0.9), np.float32)
    cand = np.full((4, 6), _logit(0.9 - 2 * FP16.max_prob_diff), np.float32)
    result = validate.compare(ref, cand, FP16)
    assert not result["passed"]
    assert result["max_abs_prob_diff"] == pytest.approx(2 * FP16.max_prob_diff, rel=1e-3)


def test_a_clear_label_flip_fails() -> None:
    ref = np.full((2, 6), _logit(0.7), np.float32)
    cand = ref.copy()
    cand[0, 0] = _logit(0.3)
    result = validate.compare(ref, cand, FP16)
    assert result["label_flips"] == 1 and result["borderline_flips"] == 0
    assert not result["passed"]


def test_a_flip_within_the_borderline_band_is_reported_not_fatal() -> None:
    ref = np.full((3, 6), _logit(0.8), np.float32)
    ref[1, 2] = _logit(0.5 + FP16.max_prob_diff / 4)
    cand = ref.copy()
    cand[1, 2] = _logit(0.5 - FP16.max_prob_diff / 4)
    result = validate.compare(ref, cand, FP16)
    assert result["label_flips"] == 1 and result["borderline_flips"] == 1
    assert result["label_agreement"] < 1.0
    assert result["passed"]


def test_int8_needs_its_label_agreement() -> None:
    # Small shifts across the threshold: within the probability tolerance, so only the
    # agreement rule can refuse them.
    n = 100
    ref = np.full((n, 6), _logit(0.52), np.float32)
    cand = ref.copy()
    flips = int(np.ceil((1 - INT8.min_label_agreement) * n * 6)) + 1
    cand.reshape(-1)[:flips] = _logit(0.48)
    assert not validate.compare(ref, cand, INT8)["passed"]
    cand.reshape(-1)[:flips] = ref.reshape(-1)[:flips]
    assert validate.compare(ref, cand, INT8)["passed"]


@pytest.mark.parametrize(("tweets", "passes"), [(100, False), (1000, True)])
def test_int8_agreement_must_hold_beyond_the_sample(tweets: int, passes: bool) -> None:
    # 99.5 % agreement in both: 3 flips of 600 decisions do not vouch for 99 % beyond them
    # (the 95 % lower bound is 98.8 %); 30 of 6,000 do (99.3 %).
    ref = np.full((tweets, 6), _logit(0.52), np.float32)
    cand = ref.copy()
    cand.reshape(-1)[: ref.size // 200] = _logit(0.48)
    result = validate.compare(ref, cand, INT8)
    assert result["label_agreement"] == pytest.approx(0.995)
    assert result["label_agreement_bound"] < 0.995
    assert result["passed"] is passes


def test_non_finite_outputs_fail() -> None:
    ref = np.zeros((2, 6), np.float32)
    cand = ref.copy()
    cand[0, 0] = np.nan
    assert not validate.compare(ref, cand, validate.TOLERANCES["int8"])["passed"]


def test_bundled_sample_is_cleaned_multilingual_tweets() -> None:
    texts = validate.load_sample()
    assert len(texts) == 256
    assert not any("@user" in t for t in texts)
    assert any("\u0600" <= ch <= "\u06ff" for t in texts for ch in t)  # Arabic script too


@pytest.fixture(scope="module")
def standin_logits(tiny_checkpoint) -> np.ndarray:
    """The tests' stand-in's fp32 logits on the sample export validates with."""
    transformers = pytest.importorskip("transformers")
    model = transformers.BertForSequenceClassification.from_pretrained(tiny_checkpoint).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_checkpoint)
    batch = tokenizer(validate.load_sample(), truncation=True, padding="max_length", max_length=32, return_tensors="np")
    return validate.reference_logits(model, batch["input_ids"], batch["attention_mask"])


@pytest.mark.parametrize("precision", sorted(validate.TOLERANCES))
@pytest.mark.parametrize(
    "bug",
    [
        pytest.param(lambda x: np.roll(x, 1, axis=0), id="tweet-i-scored-as-tweet-j"),
        pytest.param(lambda x: np.broadcast_to(x.mean(axis=0), x.shape), id="constant-row"),
    ],
)
def test_validation_on_the_standin_refuses_mixed_up_or_constant_scores(standin_logits, precision, bug) -> None:
    tolerance = validate.TOLERANCES[precision]
    assert validate.compare(standin_logits, standin_logits.copy(), tolerance)["passed"]
    result = validate.compare(standin_logits, np.ascontiguousarray(bug(standin_logits)), tolerance)
    assert not result["passed"]
    assert result["label_flips"] > (1 - validate.TOLERANCES["int8"].min_label_agreement) * result["decisions"]


def test_batches_by_length_cover_every_row_once_cut_to_their_longest() -> None:
    lengths = np.array([5, 32, 1, 17, 9, 32, 2, 0, 12])
    mask = (np.arange(32) < lengths[:, None]).astype(np.int64)
    batches = list(validate.by_length(mask, batch_size=4))
    rows = np.concatenate([batch for batch, _ in batches])
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    assert (np.diff(lengths[rows]) >= 0).all()  # shortest first
    assert [width for _, width in batches] == [max(int(lengths[batch].max()), 1) for batch, _ in batches]
    assert [width for _, width in batches] == [5, 32, 32]


def test_the_reference_by_length_scores_each_tweet_as_one_full_length_pass(tiny_checkpoint) -> None:
    """Batched by length and cut, yet every row keeps its place and its full-length score."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    model = transformers.BertForSequenceClassification.from_pretrained(tiny_checkpoint).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_checkpoint)
    batch = tokenizer(validate.load_sample()[:100], truncation=True, padding="max_length", max_length=32, return_tensors="np")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert len(set(mask.sum(axis=1))) > 5, "the sample should mix lengths"
    with torch.no_grad():
        full = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    outputs = validate.reference_outputs(model, ids, mask, batch_size=16)
    np.testing.assert_allclose(outputs.logits, full.logits.numpy(), atol=1e-5, rtol=0)
    pooled = model.bert(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).pooler_output
    np.testing.assert_allclose(outputs.pooled, pooled.detach().numpy(), atol=1e-5, rtol=0)
