"""Tests for vigil.runtime.engine (the Classifier) and the tokenization it relies on.

The tiny stand-in artifact (2 layers, real tokenizer, 6 labels) runs on the CPU. The
reference for "scored correctly" is computed independently: a plain ONNX Runtime session on
the fp32 file, the artifact's tokenizer without any of vigil's shortcuts, and a float64
sigmoid, with texts cleaned by the model card's own `clean_tweet` (model_card.py).
"""

from __future__ import annotations

import dataclasses
import random
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from model_card import card_clean_tweet

from vigil.runtime import (
    Classifier,
    ClosedError,
    InputError,
    Manifest,
    ProviderError,
    ScoredBatch,
    VigilError,
)
from vigil.runtime import engine as engine_module
from vigil.runtime.tokenizer import encode, load_tokenizer

LABELS = ("post7geo10", "post7geo30", "post7geo50", "pre7geo10", "pre7geo30", "pre7geo50")

EDGE_TEXTS = {
    "empty": "",
    "whitespace": " \t\n  ",
    "mention only": "@someone",
    "link only": "https://t.co/abc123",
    "retweet of a link": "RT @a: http://x.y",
    "lone surrogate": "\ud800",
    "lone low surrogate inside text": "ab\udc80cd",
    "control characters": "\x00\x01\x07\x1b[31m red \x7f",
    "mixed scripts": "hello مرحبا 你好 नमस्ते Привет שלום",
    "emoji": "😀🔥👍🏽 🇫🇷",
    "html entities": "&amp; &lt;3 &#128512;",
    "megabyte": "the weather is nice today " * 40_000,
}


def open_tiny(artifact: Path, **options: object) -> Classifier:
    with pytest.warns(UserWarning, match="random-weight stand-in"):
        return Classifier.open(artifact, **options)


@pytest.fixture(scope="module")
def classifier(tiny_artifact: Path) -> Iterator[Classifier]:
    with open_tiny(tiny_artifact, provider="cpu", variant="fp32") as opened:
        yield opened


@pytest.fixture(scope="module")
def tokenizer(tiny_artifact: Path):
    return load_tokenizer(tiny_artifact / "tokenizer.json", 32, 0)


@pytest.fixture(scope="module")
def reference(tiny_artifact: Path, tokenizer):
    """Probabilities the slow, obvious way: whole-text tokenization, plain session, float64."""
    session = ort.InferenceSession(str(tiny_artifact / "model-fp32.onnx"), providers=["CPUExecutionProvider"])

    def score(texts: list[str], clean: bool = True) -> np.ndarray:
        # Lone surrogates cannot reach the tokenizer: U+FFFD for each, pairs joined.
        texts = [t.encode("utf-16", "surrogatepass").decode("utf-16", "replace") for t in texts]
        texts = [card_clean_tweet(t) if clean else t for t in texts]
        encodings = [tokenizer.encode(t) for t in texts]
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        logits = session.run(None, {"input_ids": ids, "attention_mask": mask})[0].astype(np.float64)
        return 1.0 / (1.0 + np.exp(-logits))

    return score


@pytest.fixture(scope="module")
def tweets(shared_tweets: dict[str, list[str]]) -> list[str]:
    return [t for lines in shared_tweets.values() for t in lines[:100]]


# --- opening ----------------------------------------------------------------------------


def test_auto_on_the_cpu_runs_int8_and_says_so(int8_artifact: Path) -> None:
    with Classifier.open(int8_artifact) as classifier:
        assert classifier.provider == "CPUExecutionProvider"
        assert classifier.variant == "int8"
        assert classifier.random_weights is False


def test_auto_on_the_cpu_runs_fp32_where_export_left_int8_out(tiny_artifact: Path) -> None:
    with open_tiny(tiny_artifact) as classifier:
        assert classifier.provider == "CPUExecutionProvider"
        assert classifier.variant == "fp32"
        assert classifier.labels == LABELS
        assert classifier.random_weights is True
        np.testing.assert_array_equal(classifier.thresholds, np.full(6, 0.5, dtype=np.float32))
        assert classifier.thresholds.dtype == np.float32


@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_an_unavailable_gpu_provider_is_an_error_listing_what_is_available(tiny_artifact: Path, provider: str) -> None:
    with pytest.raises(ProviderError, match="CPUExecutionProvider"):
        Classifier.open(tiny_artifact, provider=provider)


def test_thresholds_of_zero_and_one_are_the_closed_interval_s_ends(tiny_artifact: Path) -> None:
    with open_tiny(tiny_artifact, thresholds={"pre7geo10": 0.0, "post7geo10": 1.0}) as classifier:
        assert classifier.thresholds.tolist() == [1.0, 0.5, 0.5, 0.0, 0.5, 0.5]


def test_the_manifest_s_thresholds_apply_where_no_override_names_the_label(tiny_artifact: Path) -> None:
    manifest = dataclasses.replace(Manifest.load(tiny_artifact), thresholds={"post7geo50": 0.875})
    assert engine_module._resolve_thresholds(manifest).tolist() == [0.5, 0.5, 0.875, 0.5, 0.5, 0.5]
    overridden = engine_module._resolve_thresholds(manifest, {"pre7geo10": 0.25})
    assert overridden.tolist() == [0.5, 0.5, 0.875, 0.25, 0.5, 0.5]


def test_thresholds_override_the_manifest_per_label_or_globally(tiny_artifact: Path) -> None:
    with open_tiny(tiny_artifact, thresholds={"pre7geo10": 0.25, "post7geo50": 1}) as classifier:
        assert classifier.thresholds.tolist() == [0.5, 0.5, 1.0, 0.25, 0.5, 0.5]
    with open_tiny(tiny_artifact, thresholds=0.75) as classifier:
        assert classifier.thresholds.tolist() == [0.75] * 6


@pytest.mark.parametrize(
    ("thresholds", "error", "message"),
    [
        ({"nope": 0.5}, InputError, "unknown labels \\['nope'\\]"),
        ({"nope": 0.5, 3: 0.5}, InputError, "unknown labels \\[3, 'nope'\\]"),  # keys of any type, sorted
        ({"pre7geo10": 1.5}, InputError, "^threshold for 'pre7geo10' .*within \\[0, 1\\], got 1.5"),
        ({"pre7geo10": -0.0001}, InputError, "got -0.0001"),
        (float("nan"), InputError, "got nan"),
        ("0.5", TypeError, "must be a number, got '0.5'"),
        ({"pre7geo10": True}, TypeError, "must be a number"),
    ],
)
def test_bad_thresholds_are_refused_before_the_model_loads(
    tiny_artifact: Path, thresholds: object, error: type[Exception], message: str, monkeypatch
) -> None:
    monkeypatch.setattr(engine_module, "open_model", lambda *a, **k: pytest.fail("model opened"))
    with pytest.raises(error, match=message):
        Classifier.open(tiny_artifact, thresholds=thresholds)


def test_a_closed_classifier_refuses_work_and_closes_twice(tiny_artifact: Path) -> None:
    classifier = open_tiny(tiny_artifact)
    classifier.close()
    classifier.close()
    with pytest.raises(ClosedError, match="this Classifier is closed"):
        classifier.predict(["x"])
    with pytest.raises(ClosedError, match="this Classifier is closed"):
        classifier.iter_predict(["x"])
    with pytest.raises(ClosedError, match="closed"):
        classifier.iter_batches(["x"])
    with pytest.raises(RuntimeError):  # what callers caught before ClosedError
        _ = classifier.model


# --- scoring ----------------------------------------------------------------------------


def test_predict_matches_an_independent_computation(classifier: Classifier, reference, tweets: list[str]) -> None:
    probabilities = classifier.predict(tweets, batch_size=32)
    assert probabilities.shape == (len(tweets), 6) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities, reference(tweets), rtol=0, atol=1e-6)


def test_clean_false_tokenizes_the_raw_text(tiny_artifact: Path, reference) -> None:
    texts = ["RT @bob: look http://t.co/x &amp; more", "@a @b"]
    with open_tiny(tiny_artifact, provider="cpu", variant="fp32", clean=False) as raw:
        np.testing.assert_allclose(raw.predict(texts), reference(texts, clean=False), rtol=0, atol=1e-6)
        assert not np.allclose(raw.predict(texts), reference(texts, clean=True), rtol=0, atol=1e-6)


def test_sigmoid_is_exact_and_never_overflows() -> None:
    logits = np.array([[-1000.0, -30.0, -1.5, 0.0, 1.5, 30.0, 1000.0]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in exp would warn
        probabilities = engine_module.sigmoid(logits)
    expected = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -700, 700)))
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities, expected.astype(np.float32), rtol=1e-6, atol=0)


def test_empty_input_gives_an_empty_result(classifier: Classifier) -> None:
    result = classifier.predict([])
    assert result.shape == (0, 6) and result.dtype == np.float32
    assert list(classifier.iter_predict(iter([]))) == []


def test_iter_predict_streams_one_array_per_batch_in_order(classifier: Classifier, reference, tweets: list[str]) -> None:
    generator = (t for t in tweets[:250])  # unknown length
    parts = list(classifier.iter_predict(generator, batch_size=64))
    assert [len(p) for p in parts] == [64, 64, 64, 58]
    np.testing.assert_allclose(np.concatenate(parts), reference(tweets[:250]), rtol=0, atol=1e-6)


@pytest.mark.parametrize(("count", "starts"), [(130, [0, 50, 100]), (20, [0])])  # prefetched; one batch
def test_iter_batches_gives_each_batch_its_start_in_the_input(
    classifier: Classifier, reference, tweets: list[str], count: int, starts: list[int]
) -> None:
    batches = list(classifier.iter_batches(iter(tweets[:count]), batch_size=50))
    assert all(isinstance(batch, ScoredBatch) for batch in batches)
    assert [batch.start for batch in batches] == starts
    for start, probabilities in batches:
        texts = tweets[:count][start:start + 50]
        np.testing.assert_allclose(probabilities, reference(texts), rtol=0, atol=1e-6)


def test_iter_predict_reads_only_a_bounded_distance_ahead(classifier: Classifier) -> None:
    consumed = 0

    def endless() -> Iterator[str]:
        nonlocal consumed
        while True:
            consumed += 1
            yield f"tweet {consumed}"

    batches = classifier.iter_predict(endless(), batch_size=10)
    for _ in range(5):
        next(batches)
    window = 4090 if classifier.sequence_buckets else 10  # whole batches of 10, up to 4096 texts
    assert consumed <= window * (1 + engine_module._PREFETCH)
    batches.close()


def test_progress_reports_each_finished_batch(classifier: Classifier, tweets: list[str]) -> None:
    reported: list[int] = []
    classifier.predict(tweets[:130], batch_size=50, progress=reported.append)
    assert reported == [50, 50, 30]


def test_batch_size_and_texts_are_checked(classifier: Classifier) -> None:
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        classifier.predict(["x"], batch_size=0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        classifier.predict(["x"], batch_size=2.0)
    with pytest.raises(TypeError, match="got one str"):
        classifier.predict("a tweet")


def test_concurrent_predict_and_encode_share_one_tokenizer_safely(classifier: Classifier, tweets: list[str]) -> None:
    tweets = tweets[::2]
    expected_ids = classifier.encode(tweets)[0]
    expected = classifier.predict(tweets)

    def work(seed: int) -> bool:
        order = list(range(len(tweets)))
        random.Random(seed).shuffle(order)
        shuffled = [tweets[i] for i in order]
        ids_ok = all(
            np.array_equal(classifier.encode(shuffled[i : i + 7])[0], expected_ids[order[i : i + 7]])
            for i in range(0, len(shuffled), 7)
        )
        return ids_ok and np.allclose(classifier.predict(shuffled, batch_size=16), expected[order], rtol=0, atol=1e-6)

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(work, range(8)))


# --- input rules ---------------------------------------------------------------------


@pytest.mark.parametrize(("bad", "type_name"), [(None, "NoneType"), (42, "int"), (b"bytes", "bytes"), (["x"], "list")])
def test_a_non_str_item_is_an_input_error_naming_index_and_type(classifier: Classifier, bad: object, type_name: str) -> None:
    texts = ["fine"] * 70 + [bad] + ["fine"]
    with pytest.raises(InputError, match=f"text 70 is {type_name}, not str") as info:
        classifier.predict(texts, batch_size=32)
    assert isinstance(info.value, ValueError) and isinstance(info.value, VigilError)
    with pytest.raises(InputError, match=f"text 70 is {type_name}"):
        classifier.predict(iter(texts), batch_size=32)


@pytest.mark.parametrize("name", EDGE_TEXTS)
def test_every_kind_of_text_gets_its_score(classifier: Classifier, reference, name: str) -> None:
    (row,) = classifier.predict([EDGE_TEXTS[name]])
    assert row.shape == (6,)
    np.testing.assert_allclose(row, reference([EDGE_TEXTS[name]])[0], rtol=0, atol=1e-6)


def test_texts_that_clean_or_normalize_to_nothing_score_as_the_empty_text(classifier: Classifier) -> None:
    empty = classifier.predict([""])
    nothing = ["   ", "@someone", "https://t.co/abc", "\ud800", "\udfff\ud800", "\x00\x01", "\ufffd"]
    np.testing.assert_array_equal(classifier.predict(nothing), np.repeat(empty, len(nothing), axis=0))


def test_surrogates_become_u_fffd_and_pairs_become_their_character(classifier: Classifier) -> None:
    pair, joined = classifier.predict(["I \ud83d\ude00 it", "I 😀 it"])
    np.testing.assert_array_equal(pair, joined)
    lone, replaced = classifier.predict(["a\ud800b", "a\ufffdb"])
    np.testing.assert_array_equal(lone, replaced)


def test_a_megabyte_text_scores_exactly_like_its_full_tokenization(classifier: Classifier, reference) -> None:
    text = EDGE_TEXTS["megabyte"]
    assert len(text) >= 1_000_000
    np.testing.assert_allclose(classifier.predict([text]), reference([text]), rtol=0, atol=1e-6)


def _long_texts() -> dict[str, str]:
    rng = random.Random(7)
    fragments = ["word", " ", "  ", "中文", "!", "...", "\x01", "\x01 ", "😀", "a" * 150, "مرحبا", "é", "\u0301", "\t", "\n"]
    fuzz = {f"fuzz {i}": "".join(rng.choice(fragments) for _ in range(rng.randrange(500, 20_000))) for i in range(20)}
    return {
        "words": "hello world " * 10_000,
        "cjk without spaces": "中" * 100_000,
        "punctuation without spaces": "!" * 100_000,
        "one huge word": "x" * 100_000,
        "control-character words first": "\x01 " * 5_000 + "real words here " * 5_000,
        "emoji run then words": "😀" * 3_000 + " then words" * 10_000,
        "boundary right at the cut": "a" * 2047 + " b c d e f g h i j k l m n o p q r s t u v w x y z " * 2000,
        "long words": ("a" * 150 + " ") * 10_000,
        "arabic": "مرحبا بالعالم " * 10_000,
        **fuzz,
    }


@pytest.mark.parametrize(("name", "text"), list(_long_texts().items()))
def test_long_text_encoding_equals_tokenizing_the_whole_text(tokenizer, name: str, text: str) -> None:
    ids, mask = encode(tokenizer, [text, "short"])
    whole = tokenizer.encode(text)
    assert ids[0].tolist() == whole.ids and mask[0].tolist() == whole.attention_mask
    assert ids[1].tolist() == tokenizer.encode("short").ids


# --- decisions and output forms -------------------------------------------------------


def test_decide_uses_greater_or_equal_per_label(tiny_artifact: Path) -> None:
    with open_tiny(tiny_artifact, thresholds={"post7geo10": 0.25}) as classifier:
        probabilities = np.array([[0.25, 0.5, 0.49999, 1.0, 0.0, 0.7]], dtype=np.float32)
        assert classifier.decide(probabilities).tolist() == [[True, True, False, True, False, True]]
        with pytest.raises(ValueError, match="shape \\[n, 6\\]"):
            classifier.decide(np.zeros((2, 5)))


def test_pipeline_output_sorts_by_score_keeping_label_order_on_ties(classifier: Classifier) -> None:
    probabilities = np.array([[0.1, 0.9, 0.5, 0.5, 0.2, 0.9]], dtype=np.float32)
    (row,) = classifier.pipeline_output(probabilities)
    assert [entry["label"] for entry in row] == [
        "post7geo30", "pre7geo50", "post7geo50", "pre7geo10", "pre7geo30", "post7geo10"
    ]  # fmt: skip
    assert all(type(entry["score"]) is float and set(entry) == {"label", "score"} for entry in row)
    assert row[0]["score"] == pytest.approx(0.9)


def test_encoding_is_right_padded_to_the_manifest_length(tiny_artifact: Path, classifier: Classifier) -> None:
    manifest = Manifest.load(tiny_artifact)
    ids, mask = classifier.encode(["hello world", "a much longer tweet " * 20])
    assert ids.shape == mask.shape == (2, manifest.sequence_length) and ids.dtype == mask.dtype == np.int64
    real = int(mask[0].sum())
    assert mask[0].tolist() == [1] * real + [0] * (manifest.sequence_length - real)
    assert (ids[0, real:] == manifest.pad_id).all()
    assert mask[1].all()  # truncated to exactly the sequence length


def test_every_thread_shares_one_tokenizer(classifier: Classifier) -> None:
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(classifier._tokenizer.tokenizer)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(t) for t in [*seen, classifier._tokenizer.tokenizer]}) == 1
