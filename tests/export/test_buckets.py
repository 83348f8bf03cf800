"""Choosing sequence buckets, and export's check that a bucket never changes a score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

buckets = pytest.importorskip("vigil.export.buckets")
validate = pytest.importorskip("vigil.export.validate")

from vigil.runtime.preprocess import clean_tweet
from vigil.runtime.tokenizer import encode, load_tokenizer


def test_the_default_buckets_are_the_rule_applied_to_the_shared_tweets(
    tiny_artifact: Path, shared_tweets: dict[str, list[str]]
) -> None:
    tokenizer = load_tokenizer(tiny_artifact / "tokenizer.json", 32, 0)
    texts = [clean_tweet(line) for lines in shared_tweets.values() for line in lines if line.strip()]
    lengths = buckets.token_lengths(tokenizer, texts)
    assert len(lengths) == 24_248 and lengths.max() == 32
    assert buckets.choose_buckets(lengths, 32) == buckets.DEFAULT_BUCKETS
    # What the module docstring and README quote.
    assert np.median(lengths) == 24
    assert round(buckets.computed_positions(lengths, buckets.DEFAULT_BUCKETS), 1) == 25.9


def test_texts_at_the_cap_need_no_more_buckets() -> None:
    assert buckets.choose_buckets(np.full(100, 32), 32) == (32,)


def test_a_bucket_that_saves_little_is_left_out() -> None:
    # 3 % of the texts at 8 tokens would save 3 % * 24/32 of the positions: under 5 %.
    lengths = np.array([8] * 3 + [32] * 97)
    assert buckets.choose_buckets(lengths, 32) == (32,)


def test_short_texts_get_their_bucket() -> None:
    lengths = np.array([5] * 50 + [15] * 30 + [32] * 20)
    chosen = buckets.choose_buckets(lengths, 32)
    assert chosen == (8, 16, 32)
    assert buckets.computed_positions(lengths, chosen) == pytest.approx((50 * 8 + 30 * 16 + 20 * 32) / 100)


def test_bucket_agreement_passes_right_padding(tiny_artifact: Path) -> None:
    tokenizer = load_tokenizer(tiny_artifact / "tokenizer.json", 32, 0)
    ids, mask = encode(tokenizer, validate.load_sample()[:40])
    result = validate.bucket_agreement(tiny_artifact / "model-fp32.onnx", ids, mask, (16, 24, 32))
    assert result["passed"]
    assert list(result["buckets"]) == ["16", "24"]  # the full length is the yardstick, not a trial
    assert 0 < result["buckets"]["16"]["samples"] < result["buckets"]["24"]["samples"] < 40
    # Logits the caller already has stand in for scoring the sample again.
    full = validate.onnx_logits(tiny_artifact / "model-fp32.onnx", ids, mask)
    again = validate.bucket_agreement(tiny_artifact / "model-fp32.onnx", ids, mask, (16, 24, 32), full=full)
    assert again == result


def test_bucket_agreement_refuses_a_bucket_that_changes_scores(tiny_artifact: Path) -> None:
    """Left padding puts the real tokens past a short bucket's end: cutting them must show."""
    tokenizer = load_tokenizer(tiny_artifact / "tokenizer.json", 32, 0)
    ids, mask = encode(tokenizer, validate.load_sample()[:40])
    result = validate.bucket_agreement(tiny_artifact / "model-fp32.onnx", ids[:, ::-1].copy(), mask[:, ::-1].copy(), (16, 32))
    assert not result["passed"]
    assert result["buckets"]["16"]["max_abs_prob_diff"] > 1e-3
